"""The members of a run: K seeds (`config.num_seeds`) and per-member overrides
(`config.members`), trained at once by `salx.core.members`, reported as mean ± std.

Member m has the seed `config.seed + m` and the method's hyperparameters of the
config, changed by `config.members[m]` when that list is set: a dict of config
names to values, limited to the method's float fields (`config.sal.rgb_weight`
is "sal.rgb_weight"), which differ per member inside the one jitted step and in
each member's localization on the host, and "seed". The other fields (T, top-k
divisors, widths) fix shapes and are shared by all members.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, Dict, List, Mapping, Optional, Sequence

import ml_collections
import jax
import jax.numpy as jnp
import numpy as np

from salx.app import run_config
from salx.app.run_config import ConfigError
from salx.core import hparams as hparams_lib
from salx.core import members as core_members
from salx.core import sharding


@dataclasses.dataclass(frozen=True)
class Member:
  """One member: its index, seed, overrides (config name: value) and hyperparameters."""
  index: int
  seed: int
  overrides: Dict[str, Any]
  hp: Any


def overridable(config: ml_collections.ConfigDict) -> tuple:
  """The names a `config.members` entry may set."""
  hp = run_config.make_hparams(config)
  return ("seed",) + tuple(f"{config.method}.{p}" for p in hparams_lib.leaf_paths(hp))


def members_of(config: ml_collections.ConfigDict) -> List[Member]:
  """The run's members, each with its checked hyperparameters.

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
  method = run_config.method_of(config)
  base = run_config.make_hparams(config)
  allowed = overridable(config)
  prefix = f"{config.method}."
  out = []
  for m in range(count):
    change = overrides[m] if overrides else {}
    if not isinstance(change, Mapping):
      raise ConfigError(f"config.members[{m}] must be a dict of field: value, got "
                        f"{change!r}")
    change = dict(change)
    seed, hp = config.seed + m, base
    for field, value in change.items():
      if field not in allowed:
        raise ConfigError(
            f"config.members[{m}].{field} cannot differ between members (members "
            "share shapes: T, top-k divisors, widths); a member may change "
            f"{', '.join(allowed)}")
      if field == "seed":
        if not isinstance(value, int) or isinstance(value, bool) or value < 0:
          raise ConfigError(f"config.members[{m}].seed must be a non-negative integer, "
                            f"got {value!r}")
        seed = value
        continue
      if not hparams_lib.is_number(value):
        raise ConfigError(f"config.members[{m}].{field} must be a number, got {value!r}")
      hp = hparams_lib.replace_path(hp, field[len(prefix):], float(value))
    problems = method.hparams_problems(hp)
    if problems:
      raise ConfigError(f"config.members[{m}]: " + "; ".join(
          f"config.{config.method}.{p}" for p in problems))
    out.append(Member(m, seed, change, hp))
  return out


def stacked_hparams(members: Sequence[Member]) -> Any:
  """The members' hyperparameters with [K] leaves (`salx.core.hparams.stack`)."""
  return hparams_lib.stack([m.hp for m in members])


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


def init_members(method, model, config, members: Sequence[Member], mesh):
  """(states [K, ...], dropout keys [K], stacked hyperparameters) on the mesh."""
  keys = [jax.random.split(jax.random.key(m.seed)) for m in members]
  init_keys = jnp.stack([k[0] for k in keys])
  dropout_keys = jnp.stack([k[1] for k in keys])
  stacked = stacked_hparams(members)
  member = sharding.member_sharded(mesh)
  hp = members[0].hp
  create = jax.jit(functools.partial(
      core_members.create_members_state, method, model,
      input_shape=(2, method.num_segments(hp), config.feature_dim)),
      out_shardings=member)
  states = create(init_keys, stacked)
  return (states, jax.device_put(dropout_keys, member),
          jax.device_put(stacked, member))
