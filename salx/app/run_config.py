"""The run's config: its checks, and the method, hyperparameters and model it describes.

`check_config` finds every mistake a config can hold before any data is read, any
folder is made or any device work starts, and names each field; `make_hparams`
builds the method's frozen hyperparameter dataclass from `config.<method>` (the
same field names).
"""

from __future__ import annotations

import math
import os
from typing import Any, Callable, List, Mapping, Tuple

import jax.numpy as jnp
import ml_collections

from salx.core import hparams as hparams_lib
from salx.datasets import layouts
from salx.postprocess import protocols
from salx.methods import method as method_lib
from salx.methods import registry

DATASETS = ("synthetic",) + layouts.DATASETS
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class ConfigError(ValueError):
  """The config cannot be used (the message names the field)."""


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
