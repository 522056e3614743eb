"""Hyperparameters as one frozen dataclass that is also a JAX pytree.

A method's hyperparameters live in one place: a frozen dataclass whose float
fields are pytree leaves (members `jax.vmap` over them, each member with its own
value) and whose other fields (what fixes shapes or control flow: T, top-k
divisors, counts, names, tuples) are static metadata.

    @hparams.pytree_dataclass
    class MyHparams:
      lr: float = 1e-4                                   # a leaf
      topk_divisor: int = hparams.static(default=8)      # static

    stacked = hparams.stack([h0, h1, h2])   # MyHparams whose leaves are [K] arrays
    jax.vmap(step, in_axes=(0, 0, 0, 0))(states, batches, keys, stacked)

A field is a leaf exactly when its type annotation is `float`; `static()` is only
needed for a default on a non-float field when the annotation would not say it.
"""

from __future__ import annotations

import dataclasses
import math
import sys
import typing
from typing import Any, Dict, Mapping, Sequence, Tuple, TypeVar

import jax
import numpy as np

T = TypeVar("T")

_STATIC = "salx_static"


def static(**kwargs) -> Any:
  """A dataclass field that is pytree metadata, not a leaf (shapes, counts, names)."""
  metadata = dict(kwargs.pop("metadata", {}) or {}, **{_STATIC: True})
  return dataclasses.field(metadata=metadata, **kwargs)


def field_types(cls: type) -> Dict[str, Any]:
  """{field name: its resolved type annotation} of a dataclass."""
  module = sys.modules.get(cls.__module__)
  return typing.get_type_hints(cls, vars(module) if module else None)


def _is_leaf_field(field: dataclasses.Field, hints: Dict[str, Any]) -> bool:
  """A float field, or a nested hyperparameter dataclass (a group of floats)."""
  if field.metadata.get(_STATIC):
    return False
  kind = hints.get(field.name, field.type)
  return kind is float or hasattr(kind, "leaf_fields")


def pytree_dataclass(cls: type) -> type:
  """Makes `cls` a frozen dataclass registered as a pytree (float fields are leaves;
  a field holding another such dataclass is a subtree)."""
  cls = dataclasses.dataclass(frozen=True)(cls)
  fields = dataclasses.fields(cls)
  hints = field_types(cls)
  data = [f.name for f in fields if _is_leaf_field(f, hints)]
  meta = [f.name for f in fields if not _is_leaf_field(f, hints)]
  cls.leaf_fields = tuple(data)
  cls.static_fields = tuple(meta)
  cls.replace = lambda self, **changes: dataclasses.replace(self, **changes)
  return jax.tree_util.register_dataclass(cls, data_fields=data, meta_fields=meta)


def leaf_fields(hp: Any) -> Tuple[str, ...]:
  """Names of the fields that members may set each to their own value."""
  return type(hp).leaf_fields


def as_dict(hp: Any) -> Dict[str, Any]:
  """Every field as JSON-ready Python values (tuples become lists, nested
  hyperparameter dataclasses dicts)."""
  def plain(v):
    if dataclasses.is_dataclass(v):
      return as_dict(v)
    if isinstance(v, (tuple, list)):
      return [plain(x) for x in v]
    if isinstance(v, (np.generic, np.ndarray)):
      return v.tolist()
    return v
  return {f.name: plain(getattr(hp, f.name)) for f in dataclasses.fields(hp)}


def from_dict(cls: type, values: Mapping[str, Any], where: str = "hparams") -> Any:
  """`cls` from a dict of its fields (nested dicts for nested dataclasses; lists
  become tuples, whole numbers in float fields floats).

  Raises:
    ValueError: a missing or unknown field, named with `where` (e.g. 'config.sal').
  """
  hints = field_types(cls)
  names = {f.name for f in dataclasses.fields(cls)}
  unknown = sorted(set(values) - names)
  if unknown:
    raise ValueError(f"{where}.{unknown[0]} is not a field of {cls.__name__} "
                     f"(fields: {', '.join(sorted(names))})")
  out = {}
  for f in dataclasses.fields(cls):
    if f.name not in values:
      if f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING:
        raise ValueError(f"{where}.{f.name} is missing")
      continue
    value, kind = values[f.name], hints.get(f.name)
    if hasattr(kind, "leaf_fields") and isinstance(value, Mapping):
      value = from_dict(kind, value, f"{where}.{f.name}")
    elif isinstance(value, list):
      value = tuple(value)
    elif kind is float and isinstance(value, int) and not isinstance(value, bool):
      value = float(value)
    out[f.name] = value
  return cls(**out)


def leaf_paths(hp: Any, prefix: str = "") -> Tuple[str, ...]:
  """Dotted names of every leaf ('learning_rate', 'loss_weights.mil', ...)."""
  out = []
  for name in type(hp).leaf_fields:
    value = getattr(hp, name)
    if hasattr(type(value), "leaf_fields"):
      out += leaf_paths(value, f"{prefix}{name}.")
    else:
      out.append(prefix + name)
  return tuple(out)


def replace_path(hp: Any, dotted: str, value: Any) -> Any:
  """`hp` with the field at `dotted` ('loss_weights.mil') set to `value`."""
  head, _, rest = dotted.partition(".")
  if rest:
    return dataclasses.replace(hp, **{head: replace_path(getattr(hp, head), rest, value)})
  return dataclasses.replace(hp, **{head: value})


def stack(members: Sequence[T]) -> T:
  """One hyperparameter object whose leaves are [K] float32 arrays.

  Raises ValueError when the members differ in a static field (those fix shapes
  or control flow and are shared by all members).
  """
  if not members:
    raise ValueError("no members to stack")
  first = members[0]
  for m, hp in enumerate(members[1:], start=1):
    if type(hp) is not type(first):
      raise ValueError(f"member {m} has {type(hp).__name__}, member 0 "
                       f"{type(first).__name__}")
    if jax.tree_util.tree_structure(hp) != jax.tree_util.tree_structure(first):
      static = [n for n in type(first).static_fields if getattr(hp, n) != getattr(first, n)]
      name = static[0] if static else "a nested field"
      raise ValueError(
          f"member {m}: {name} = {getattr(hp, name, '?')!r} differs from member 0's "
          f"{getattr(first, name, '?')!r}; only float fields may differ between "
          f"members ({', '.join(leaf_paths(first))})")
  return jax.tree_util.tree_map(lambda *xs: np.asarray(xs, np.float32), *members)


# ------------------------------------------------------------------ value checks
# Rules are (dotted field, check, what a good value is); `rule_problems` applies
# them. The same predicates check the run's own config fields.


def is_number(x) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def whole(low: int):
  return lambda x: isinstance(x, int) and not isinstance(x, bool) and x >= low


def within(low: float, high: float, low_open: bool = False, high_open: bool = False):
  def check(x):
    return (is_number(x) and (x > low if low_open else x >= low)
            and (x < high if high_open else x <= high))
  return check


def sequence_of(item, length: int = 0):
  def check(x):
    return (isinstance(x, (tuple, list)) and len(x) > 0
            and (not length or len(x) == length) and all(item(v) for v in x))
  return check


def is_bool(x) -> bool:
  return isinstance(x, bool)


NON_NEGATIVE = within(0.0, math.inf)
POSITIVE = within(0.0, math.inf, low_open=True)
PROBABILITY = within(0.0, 1.0)


def get_path(hp: Any, dotted: str) -> Any:
  node = hp
  for key in dotted.split("."):
    node = getattr(node, key)
  return node


def rule_problems(hp: Any, rules) -> list:
  """'field must be ..., got ...' for every rule `hp` breaks."""
  problems = []
  for field, check, good in rules:
    value = get_path(hp, field)
    if not check(value):
      problems.append(f"{field} must be {good}, got {value!r}")
  return problems
