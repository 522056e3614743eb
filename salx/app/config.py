"""The run a config describes: its checks, its members, and the method, model and
states they train.

`check_config` finds every mistake a config can hold before any data is read, any
folder is made or any device work starts, and names each field; `preflight` adds
what can be told before a run starts (seeds, batch sizes, the workdir, the data
folder, `config.init_checkpoint`), so that the common mistakes cost seconds.
`make_hparams` builds the method's frozen hyperparameter dataclass from
`config.<method>` (the same field names).

The members of a run are K seeds (`config.num_seeds`) and per-member overrides
(`config.members`), trained at once by `salx.core.members`, reported as mean ±
std. Member m has the seed `config.seed + m` and the method's hyperparameters of
the config, changed by `config.members[m]` when that list is set: a dict of config
names to values, limited to the method's float fields (`config.sal.rgb_weight` is
"sal.rgb_weight"), which differ per member inside the one jitted step and in each
member's localization on the host, and "seed". The other fields (T, top-k
divisors, widths) fix shapes and are shared by all members. A single run is K = 1.

`open_run` is the one way a run is opened, for training, `--mode=evaluate` and
the pictures: the data, the method, the members, the model, the mesh and the
members' initial states.
"""

from __future__ import annotations

import dataclasses
import functools
import os
import types
from typing import Any, Dict, List, Mapping, Optional, Sequence

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from salx.app import data as data_lib
from salx.app import runtime
from salx.app.runtime import ConfigError
from salx.core import hparams as hparams_lib
from salx.core import members as core_members
from salx.core import sharding
from salx.datasets import layouts
from salx.datasets import source as source_lib
from salx.datasets.errors import DataError
from salx.methods import method as method_lib
from salx.methods import registry
from salx.postprocess import protocols

DATASETS = ("synthetic",) + layouts.DATASETS
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
# Seeds feed numpy's and JAX's generators; JAX takes them as 32-bit integers.
MAX_SEED = 2 ** 31 - 1


# ----------------------------------------------------------------------------
# The config's fields.


_number = hparams_lib.is_number
_whole = hparams_lib.whole
_within = hparams_lib.within
_NON_NEGATIVE = hparams_lib.NON_NEGATIVE


# Run fields -> (check, what a good value is).
RUN_RULES = (
    ("dataset", lambda x: x in DATASETS, f"one of {DATASETS}"),
    ("data_source", lambda x: x in ("folder", "tfds"), "'folder' or 'tfds'"),
    ("method", lambda x: x in registry.METHODS, f"one of {sorted(registry.METHODS)}"),
    ("protocol", lambda x: x in protocols.PROTOCOLS, f"one of {sorted(protocols.PROTOCOLS)}"),
    ("extra_protocols", lambda x: isinstance(x, (tuple, list)) and all(
        p in protocols.PROTOCOLS for p in x), f"a list of {sorted(protocols.PROTOCOLS)}"),
    ("protocol_ground_truth", lambda x: hasattr(x, "keys") and set(x.keys()) == set(
        protocols.PROTOCOLS) and all(isinstance(v, str) for v in x.values()),
     f"a path or '' for each of {sorted(protocols.PROTOCOLS)}"),
    ("ambiguous_file", lambda x: isinstance(x, str), "a path or ''"),
    ("compute_dtype", lambda x: x in COMPUTE_DTYPES, f"one of {sorted(COMPUTE_DTYPES)}"),
    ("check_data", lambda x: x in ("full", "quick", "none"), "'full', 'quick' or 'none'"),
    ("eval_checkpoint", lambda x: x in ("best", "latest"), "'best' or 'latest'"),
    ("seed", _whole(0), "a non-negative integer"),
    ("num_classes", _whole(0), "a non-negative integer (0: from the data)"),
    ("eval_start_step", _whole(0), "a non-negative integer"),
    ("num_seeds", _whole(1), "a positive integer"),
    ("holdout_fraction", _within(0.0, 1.0, high_open=True), "in [0, 1)"),
    ("eval_workers", _whole(0), "a non-negative integer"),
    ("timeline_videos", _whole(0), "a non-negative integer"),
) + tuple((field, _whole(1), "a positive integer") for field in (
    "num_steps", "batch_size", "eval_batch_size", "eval_every",
    "checkpoint_every", "keep_checkpoints", "log_every", "feature_dim"))


def _value(config: ml_collections.ConfigDict, dotted: str):
  node = config
  for key in dotted.split("."):
    node = node[key]
  return node


def _type_problems(hp_type: type, values: Any, where: str) -> List[str]:
  """Fields of `values` (a dict) whose type does not fit the dataclass field."""
  problems = []
  hints = hparams_lib.field_types(hp_type)
  for name, kind in hints.items():
    if name not in values:
      continue
    value, field = values[name], f"{where}.{name}"
    if hasattr(kind, "leaf_fields"):
      if isinstance(value, Mapping):
        problems += _type_problems(kind, value, field)
      else:
        problems.append(f"config.{field} must be a group of fields, got {value!r}")
    elif kind is float and not _number(value):
      problems.append(f"config.{field} must be a finite number, got {value!r}")
    elif kind is int and not (isinstance(value, int) and not isinstance(value, bool)):
      problems.append(f"config.{field} must be an integer, got {value!r}")
    elif kind is bool and not isinstance(value, bool):
      problems.append(f"config.{field} must be True or False, got {value!r}")
    elif kind is str and not isinstance(value, str):
      problems.append(f"config.{field} must be a string, got {value!r}")
  return problems


def method_of(config: ml_collections.ConfigDict) -> method_lib.Method:
  """The method `config.method` names."""
  try:
    return registry.get_method(config.method)
  except ValueError as e:
    raise ConfigError(f"config.method: {e}") from None


def hparams_problems(config: ml_collections.ConfigDict) -> List[str]:
  """Problems of `config.<method>`, one line each naming the field."""
  method = method_of(config)
  values = config.get(method.name)
  if values is None:
    return [f"config.{method.name} is missing: the hyperparameters of the "
            f"{method.name} method (start from a config file that uses it)"]
  values = values.to_dict() if hasattr(values, "to_dict") else values
  problems = _type_problems(method.hparams_type, values, method.name)
  if problems:
    return problems
  try:
    hp = hparams_lib.from_dict(method.hparams_type, values, f"config.{method.name}")
  except (TypeError, ValueError) as e:
    return [str(e)]
  return [f"config.{method.name}.{p}" for p in method.hparams_problems(hp)]


def config_problems(config: ml_collections.ConfigDict) -> List[str]:
  """Every problem of `config`, one line each naming its field."""
  problems = []
  for field, check, good in RUN_RULES:
    try:
      value = _value(config, field)
    except (KeyError, AttributeError):
      problems.append(f"config.{field} is missing")
      continue
    if not check(value):
      problems.append(f"config.{field} must be {good}, got {value!r}")
  if problems:
    return problems
  problems = hparams_problems(config)
  if problems:
    return problems
  hp = make_hparams(config)
  if config.feature_dim % 2:
    problems.append(f"config.feature_dim must be even (RGB | flow), got {config.feature_dim}")
  if getattr(hp, "sampling", None) == "activitynet" and not config.eval_keep_all_if_shorter:
    problems.append("config.eval_keep_all_if_shorter must be True with the activitynet "
                    "sampling (its test videos shorter than T are always kept whole)")
  official = protocols.THUMOS14_OFFICIAL.name
  if official in (config.protocol, *config.extra_protocols) \
      and not config.protocol_ground_truth[official]:
    problems.append(f"config.protocol_ground_truth.{official} must name the official "
                    "per-class annotation folder (the protocol reads it)")
  paths = {f"protocol_ground_truth.{k}": v for k, v in config.protocol_ground_truth.items()}
  paths["ambiguous_file"] = config.ambiguous_file
  for field, path in paths.items():
    if path and not os.path.exists(os.path.expanduser(path)):
      problems.append(f"config.{field}: {path} does not exist")
  if config.data_source == "tfds" and not config.tfds_data_dir:
    problems.append("config.data_source is 'tfds' but config.tfds_data_dir is empty")
  return problems


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for a config the run cannot use, naming every bad field."""
  problems = config_problems(config)
  if problems:
    raise ConfigError("invalid config: " + "; ".join(problems))


def make_hparams(config: ml_collections.ConfigDict) -> Any:
  """The method's hyperparameters `config.<method>` describes."""
  method = method_of(config)
  return hparams_lib.from_dict(method.hparams_type, config[method.name].to_dict(),
                               f"config.{method.name}")


def make_model(config: ml_collections.ConfigDict, num_classes: int,
               method: method_lib.Method, hp: Any):
  return method.build_model(hp, num_classes=num_classes, feature_dim=config.feature_dim,
                            dtype=COMPUTE_DTYPES[config.compute_dtype],
                            param_dtype=jnp.float32)


# ----------------------------------------------------------------------------
# Before a run starts.


def preflight(config: ml_collections.ConfigDict, workdir: str, mode: str = "train") -> None:
  """Raises ConfigError, DataError or WorkdirError for a run that cannot start."""
  check_config(config)
  count = max(config.num_seeds, len(config.get("members") or []))
  if config.seed + count - 1 > MAX_SEED:
    raise ConfigError(f"config.seed = {config.seed}: the members' seeds seed .. seed + "
                      f"{count - 1} must stay at most {MAX_SEED}")
  members = members_of(config)
  workdir = os.path.abspath(os.path.expanduser(workdir))
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise runtime.WorkdirError(f"the workdir {workdir} is a file, not a folder")
  runtime.WorkdirLock(workdir).check_free()
  method = method_of(config)
  source = _open_existing_data(config)
  num_classes = len(source.class_names) if source is not None else config.num_classes
  if mode == "train":
    shapes = types.SimpleNamespace(feature_dim=config.feature_dim,
                                   num_classes=max(num_classes, 1))
    try:
      method.check_batch_shapes(
          shapes, members[0].hp,
          (config.batch_size, method.num_segments(members[0].hp), config.feature_dim),
          (config.batch_size, max(num_classes, 1)))
    except ValueError as e:
      raise ConfigError(f"config.batch_size = {config.batch_size}: {e}") from None
  if config.init_checkpoint:
    _check_init_checkpoint(config, method, members[0].hp, num_classes)
  if source is None:
    return
  num_train = len(source.video_names("train"))
  num_test = len(source.video_names("test"))
  for split, count in (("train", num_train), ("test", num_test)):
    if count == 0:
      raise DataError(f"{source.split_file(split)} lists no video: the {split} split "
                      "is empty")
  if mode == "train":
    kept = num_train - int(num_train * config.holdout_fraction)
    if config.batch_size > kept:
      raise ConfigError(f"config.batch_size = {config.batch_size} is larger than the "
                        f"{kept} training videos of {source.data_dir}")


def _open_existing_data(config):
  """The data source, when it is a folder that exists (a synthetic dataset not yet
  generated, or a TFDS dataset, is checked by the run)."""
  if config.data_source != "folder":
    return None
  if config.dataset == "synthetic":
    folder = config.data_dir or data_lib.default_synthetic_dir(data_lib.synthetic_spec(config))
    if not os.path.isdir(folder):
      return None
  elif config.data_dir and os.path.exists(config.data_dir) \
      and not os.path.isdir(config.data_dir):
    raise DataError(f"config.data_dir: {config.data_dir} is a file, not a folder")
  return data_lib.open_data(config)


def _check_init_checkpoint(config, method, hp, num_classes: int) -> None:
  """An authors' file: readable, the method's, and of the config's shapes when the
  number of classes is known (0: the data is not there yet)."""
  path = os.path.abspath(os.path.expanduser(config.init_checkpoint))
  if os.path.isdir(path):
    return   # A salx run folder: its checkpoints are checked when restored.
  if not os.path.isfile(path):
    raise ConfigError(f"config.init_checkpoint: {path} does not exist")
  try:
    params = method.load_authors_checkpoint(path)
  except (ValueError, TypeError) as e:
    raise ConfigError(f"config.init_checkpoint: {e}") from None
  if params is None:
    raise ConfigError(f"config.init_checkpoint: {path} is a file, but the "
                      f"{method.name} method reads no authors' checkpoint files")
  if not num_classes:
    return
  model = make_model(config, num_classes, method, hp)
  template = jax.eval_shape(
      lambda key: method.init_params(model, hp, key,
                                     (2, method.num_segments(hp), config.feature_dim)),
      jax.random.key(0))
  differences = sorted(shape_differences(params, template),
                       key=lambda d: "fc1/" not in d)   # SAL's FC1 holds H^3: first.
  if differences:
    more = f" (and {len(differences) - 4} more)" if len(differences) > 4 else ""
    raise ConfigError(f"config.init_checkpoint: {path} does not fit the config: "
                      + "; ".join(differences[:4]) + more
                      + f"; set the widths in config.{method.name}, config.feature_dim "
                      "and num_classes to the file's")


def shape_differences(loaded, template) -> list:
  """'<path>: checkpoint [..], config [..]' (or 'missing in the checkpoint') for
  each array of `template` whose counterpart in `loaded` differs in shape."""
  flat_loaded = dict(jax.tree_util.tree_flatten_with_path(loaded)[0])
  out = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(template)[0]:
    name = "/".join(str(getattr(k, "key", k)) for k in path)
    got = flat_loaded.get(path)
    if got is None:
      out.append(f"{name}: missing in the checkpoint")
    elif tuple(np.shape(got)) != tuple(leaf.shape):
      out.append(f"{name}: checkpoint {list(np.shape(got))}, config {list(leaf.shape)}")
  return out


# ----------------------------------------------------------------------------
# The members.


@dataclasses.dataclass(frozen=True)
class Member:
  """One member: its index, seed, overrides (config name: value) and hyperparameters."""
  index: int
  seed: int
  overrides: Dict[str, Any]
  hp: Any


def overridable(config: ml_collections.ConfigDict) -> tuple:
  """The names a `config.members` entry may set."""
  hp = make_hparams(config)
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
  method = method_of(config)
  base = make_hparams(config)
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


# ----------------------------------------------------------------------------
# Opening a run.


@dataclasses.dataclass
class Run:
  """An opened run: what training, `--mode=evaluate` and the pictures share.

  Attributes:
    config: the run's config.
    method: the method `config.method` names.
    members: the K members (`members_of`).
    source: the data (`salx.app.data.open_data`).
    num_classes: C, from the data.
    model: the method's model (shared by the members).
    mesh: the ('member', 'data') mesh of all devices.
    state: the members' initial train states [K, ...] on the mesh.
    dropout_keys: [K] keys on the mesh.
    stacked_hp: the members' hyperparameters, leaves [K], on the mesh.
  """
  config: ml_collections.ConfigDict
  method: method_lib.Method
  members: List[Member]
  source: source_lib.FeatureSource
  num_classes: int
  model: Any
  mesh: Any
  state: Any
  dropout_keys: Any
  stacked_hp: Any

  @property
  def hp(self) -> Any:
    """Member 0's hyperparameters (the shared, static fields are read from them)."""
    return self.members[0].hp

  @property
  def seeds(self) -> List[int]:
    return [m.seed for m in self.members]

  def title(self) -> str:
    """The report's first line: the method, the model size and the data."""
    return (f"{self.method.describe(self.hp)}, batch {self.config.batch_size} on "
            f"{self.config.dataset} at {self.source.data_dir}")


def open_run(config: ml_collections.ConfigDict, *, members: Optional[Sequence[Member]] = None,
             check_data: bool = False) -> Run:
  """Opens the data, builds the model and the members' initial states.

  Args:
    config: a checked config (`check_config`).
    members: the members to open (default: all of the config's).
    check_data: check the data folder first (`config.check_data`), so that a
      broken folder stops a run before anything trains.

  Raises:
    ConfigError, DataError: the config or the data cannot be used.
  """
  source = data_lib.open_data(config)
  if check_data:
    data_lib.check_data(source, config.check_data,
                        "thumos14" if config.dataset == "synthetic" else config.dataset)
  method = method_of(config)
  members = list(members_of(config) if members is None else members)
  num_classes = data_lib.num_classes_of(config, source)
  model = make_model(config, num_classes, method, members[0].hp)
  mesh = sharding.make_mesh(num_members=len(members))
  state, dropout_keys, stacked_hp = init_members(method, model, config, members, mesh)
  return Run(config, method, members, source, num_classes, model, mesh, state,
             dropout_keys, stacked_hp)
