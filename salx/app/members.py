"""The members of a run: K seeds (`config.num_seeds`) and per-member overrides
(`config.members`), trained at once by `salx.core.members`, reported as mean ± std.

Member m has the seed `config.seed + m` and the config's values, changed by
`config.members[m]` when that list is set: a dict of dotted config fields to
values, limited to the floats that enter the arithmetic (the optimizer's and the
training step's, which differ per member inside the one jitted step, and the
localization's, which each member's own variant holds on the host) and `seed`.
Fields that change shapes (T, top-k divisors, widths) are shared by all members.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
from typing import Any, Dict, List, Mapping, Optional, Sequence

import ml_collections
import jax
import jax.numpy as jnp
import numpy as np

from salx.app import run_config
from salx.app.run_config import ConfigError
from salx.core import members as members_lib
from salx.core import sharding
from salx.core import variants

OVERRIDABLE = (("seed", "learning_rate", "weight_decay")
               + tuple(f"sal.{name}" for name in members_lib.STEP_VARIANT_FIELDS
                       + members_lib.INFERENCE_FIELDS))


@dataclasses.dataclass(frozen=True)
class Member:
  """One member: its index, seed, overrides, config and SAL code path."""
  index: int
  seed: int
  overrides: Dict[str, Any]
  config: ml_collections.ConfigDict
  variant: variants.Variant


def _set(config: ml_collections.ConfigDict, dotted: str, value) -> None:
  *parents, leaf = dotted.split(".")
  node = config
  for key in parents:
    node = node[key]
  if leaf == "seed":
    if not isinstance(value, int) or isinstance(value, bool):
      raise ConfigError(f"config.members: seed must be an integer, got {value!r}")
    node[leaf] = value
  else:
    if not isinstance(value, (int, float)) or isinstance(value, bool):
      raise ConfigError(f"config.members: {dotted} must be a number, got {value!r}")
    node[leaf] = float(value)


def members_of(config: ml_collections.ConfigDict) -> List[Member]:
  """The run's members, each with its checked config.

  Raises:
    ConfigError: a members list whose length disagrees with num_seeds, an entry
      that is not a dict, a field no member may change, or a bad value.
  """
  overrides = list(config.get("members") or [])
  count = config.num_seeds
  if overrides and count not in (1, len(overrides)):
    raise ConfigError(f"config.num_seeds = {count} but config.members lists "
                      f"{len(overrides)} members; set one of them")
  count = max(count, len(overrides))
  out = []
  for m in range(count):
    change = overrides[m] if overrides else {}
    if not isinstance(change, Mapping):
      raise ConfigError(f"config.members[{m}] must be a dict of field: value, got "
                        f"{change!r}")
    change = dict(change)
    member_config = copy.deepcopy(config)
    with member_config.unlocked():
      member_config.seed = config.seed + m
      member_config.num_seeds, member_config.members = 1, None
      for field, value in change.items():
        if field not in OVERRIDABLE:
          raise ConfigError(
              f"config.members[{m}].{field} cannot differ between members (members "
              "share shapes: T, top-k divisors, widths); a member may change "
              f"{', '.join(OVERRIDABLE)}")
        _set(member_config, field, value)
    problems = run_config.config_problems(member_config)
    if problems:
      raise ConfigError(f"config.members[{m}]: " + "; ".join(problems))
    out.append(Member(m, member_config.seed, change, member_config,
                      run_config.make_variant(member_config)))
  return out


def hparams_of(members: Sequence[Member]) -> Dict[str, np.ndarray]:
  """{name: [K]} of the members' step hyperparameters (salx.core.members)."""
  return members_lib.stack_hparams([
      members_lib.member_hparams(m.variant, m.config.learning_rate,
                                 m.config.weight_decay) for m in members])


def mean_std(values: Sequence[float]) -> Dict[str, Any]:
  """{mean, std (sample, ddof 1; 0 for one value), n}."""
  values = [float(v) for v in values]
  n = len(values)
  if not n:
    return {"mean": None, "std": None, "n": 0}
  std = float(np.std(values, ddof=1)) if n > 1 else 0.0
  return {"mean": float(np.mean(values)), "std": std, "n": n}


def summary_of(records: Sequence[Optional[Mapping[str, Any]]]) -> Optional[Dict[str, Any]]:
  """Mean ± std over members of one row's records: average mAP, each tIoU's mAP,
  the named averages and accuracy (None when no member has the record)."""
  records = [r for r in records if r is not None]
  if not records:
    return None
  out = {"average_mAP": mean_std([r["average_mAP"] for r in records]),
         "accuracy": mean_std([r["accuracy"] for r in records])}
  for i, t in enumerate(records[0]["tiou_thresholds"]):
    out[f"mAP@{t:g}"] = mean_std([r["mAP"][i] for r in records])
  for name in records[0]["averages"]:
    out[name] = mean_std([r["averages"][name] for r in records])
  return out


def init_members(model, variant, config, members, mesh):
  """(states [K, ...], dropout keys [K], hparams {name: [K]}) on the mesh."""
  keys = [jax.random.split(jax.random.key(m.seed)) for m in members]
  init_keys = jnp.stack([k[0] for k in keys])
  dropout_keys = jnp.stack([k[1] for k in keys])
  hparams = hparams_of(members)
  member = sharding.member_sharded(mesh)
  create = jax.jit(functools.partial(
      members_lib.create_members_state, model, variant,
      input_shape=(2, config.num_segments, config.feature_dim)),
      out_shardings=member)
  states = create(init_keys, hparams)
  return (states, jax.device_put(dropout_keys, member),
          jax.device_put(hparams, member))
