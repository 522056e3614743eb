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
from typing import Any, Dict, Sequence, Tuple, TypeVar

import jax
import numpy as np

T = TypeVar("T")

_STATIC = "salx_static"


def static(**kwargs) -> Any:
  """A dataclass field that is pytree metadata, not a leaf (shapes, counts, names)."""
  metadata = dict(kwargs.pop("metadata", {}) or {}, **{_STATIC: True})
  return dataclasses.field(metadata=metadata, **kwargs)


def _is_leaf_field(field: dataclasses.Field) -> bool:
  if field.metadata.get(_STATIC):
    return False
  return field.type in (float, "float")


def pytree_dataclass(cls: type) -> type:
  """Makes `cls` a frozen dataclass registered as a pytree (float fields are leaves)."""
  cls = dataclasses.dataclass(frozen=True)(cls)
  fields = dataclasses.fields(cls)
  data = [f.name for f in fields if _is_leaf_field(f)]
  meta = [f.name for f in fields if not _is_leaf_field(f)]
  cls.leaf_fields = tuple(data)
  cls.static_fields = tuple(meta)
  cls.replace = lambda self, **changes: dataclasses.replace(self, **changes)
  return jax.tree_util.register_dataclass(cls, data_fields=data, meta_fields=meta)


def leaf_fields(hp: Any) -> Tuple[str, ...]:
  """Names of the fields that members may set each to their own value."""
  return type(hp).leaf_fields


def as_dict(hp: Any) -> Dict[str, Any]:
  """Every field as JSON-ready Python values (tuples become lists)."""
  def plain(v):
    if isinstance(v, (tuple, list)):
      return [plain(x) for x in v]
    if isinstance(v, (np.generic, np.ndarray)):
      return v.tolist()
    return v
  return {f.name: plain(getattr(hp, f.name)) for f in dataclasses.fields(hp)}


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
    for name in type(first).static_fields:
      if getattr(hp, name) != getattr(first, name):
        raise ValueError(
            f"member {m}: {name} = {getattr(hp, name)!r} differs from member 0's "
            f"{getattr(first, name)!r}; only float fields may differ between members "
            f"({', '.join(type(first).leaf_fields)})")
  return jax.tree_util.tree_map(
      lambda *xs: np.asarray(xs, np.float32), *members)


def member(stacked: T, m: int) -> T:
  """Member m's hyperparameters (Python floats) out of a stacked object."""
  return jax.tree_util.tree_map(lambda x: float(np.asarray(x)[m]), stacked)
