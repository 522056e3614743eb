"""The run's config: its checks, and the SAL code path and model it describes.

`check_config` finds every mistake a config can hold before any data is read, any
folder is made or any device work starts, and names each field; `make_variant`
builds the frozen `Variant` the core reads from `config.sal` (with T from
`config.num_segments`).
"""

from __future__ import annotations

import math
from typing import Any, Callable, List, Tuple

import jax.numpy as jnp
import ml_collections

from salx.core import model as model_lib
from salx.core import variants
from salx.datasets import layouts

DATASETS = ("synthetic",) + layouts.DATASETS
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
SAMPLINGS = ("thumos14", "activitynet")


class ConfigError(ValueError):
  """The config cannot be used (the message names the field)."""


def _number(x) -> bool:
  return isinstance(x, (int, float)) and not isinstance(x, bool) and math.isfinite(x)


def _whole(low: int) -> Callable[[Any], bool]:
  return lambda x: isinstance(x, int) and not isinstance(x, bool) and x >= low


def _within(low: float, high: float, low_open=False, high_open=False):
  def check(x):
    return (_number(x) and (x > low if low_open else x >= low)
            and (x < high if high_open else x <= high))
  return check


def _sequence(item: Callable[[Any], bool], length: int = 0):
  def check(x):
    return (isinstance(x, (tuple, list)) and len(x) > 0
            and (not length or len(x) == length) and all(item(v) for v in x))
  return check


_BOOL = lambda x: isinstance(x, bool)  # noqa: E731
_NON_NEGATIVE = _within(0.0, math.inf)
_PROBABILITY = _within(0.0, 1.0)

# config.sal field -> (check, what a good value is).
SAL_RULES: Tuple[Tuple[str, Callable[[Any], bool], str], ...] = (
    ("encoder_kernel", lambda x: _whole(1)(x) and x % 2 == 1, "an odd positive integer"),
    ("rgb_weight", _PROBABILITY, "in [0, 1]"),
    ("mil_topk_divisor", _whole(1), "a positive integer"),
    ("mil_on_combined", _BOOL, "True or False"),
    ("bg_topk_divisor", _whole(1), "a positive integer"),
    ("pseudo_topk_extra", _whole(0), "a non-negative integer"),
    ("pseudo_topk_fixed", lambda x: x is None or _whole(1)(x), "None or a positive integer"),
    ("confidence_gate", _BOOL, "True or False"),
    ("mask_ema", _within(0.0, 1.0, high_open=True), "in [0, 1)"),
    ("mask_var_factor", _within(0.0, math.inf, low_open=True), "positive"),
    ("gce_q", _within(0.0, 1.0, low_open=True), "in (0, 1]"),
    ("combine_weights", _sequence(_NON_NEGATIVE, 3), "3 non-negative numbers"),
    ("inference_topk_divisor", _whole(1), "a positive integer"),
    ("beta", _PROBABILITY, "in [0, 1]"),
    ("class_thresh", _PROBABILITY, "in [0, 1]"),
    ("upsample_scale", _whole(1), "a positive integer"),
    ("act_thresholds", _sequence(_within(0.0, 1.0, low_open=True, high_open=True)),
     "numbers in (0, 1)"),
    ("outer_lambda", _NON_NEGATIVE, "non-negative"),
    ("gamma", _number, "a number"),
    ("nms_thresh", _within(0.0, 1.0, low_open=True), "in (0, 1]"),
    ("nms_alpha", _within(0.0, math.inf, low_open=True), "positive"),
    ("soft_nms", _BOOL, "True or False"),
    ("tiou_thresholds", _sequence(_within(0.0, 1.0, low_open=True)), "numbers in (0, 1]"),
    ("feature_fps", _within(0.0, math.inf, low_open=True), "positive"),
    ("frames_per_segment", _whole(1), "a positive integer"),
    ("sampling", lambda x: x in SAMPLINGS, f"one of {SAMPLINGS}"),
) + tuple((f"loss_weights.{name}", _NON_NEGATIVE, "non-negative")
          for name in ("mil", "mc", "bg", "act", "se", "mix"))

# Run fields -> (check, what a good value is).
RUN_RULES = (
    ("dataset", lambda x: x in DATASETS, f"one of {DATASETS}"),
    ("data_source", lambda x: x in ("folder", "tfds"), "'folder' or 'tfds'"),
    ("variant", lambda x: x in variants.VARIANTS, f"one of {sorted(variants.VARIANTS)}"),
    ("compute_dtype", lambda x: x in COMPUTE_DTYPES, f"one of {sorted(COMPUTE_DTYPES)}"),
    ("check_data", lambda x: x in ("full", "quick", "none"), "'full', 'quick' or 'none'"),
    ("eval_checkpoint", lambda x: x in ("best", "latest"), "'best' or 'latest'"),
    ("learning_rate", _within(0.0, math.inf, low_open=True), "positive"),
    ("weight_decay", _NON_NEGATIVE, "non-negative"),
    ("dropout_rate", _within(0.0, 1.0, high_open=True), "in [0, 1)"),
    ("seed", _whole(0), "a non-negative integer"),
    ("num_classes", _whole(0), "a non-negative integer (0: from the data)"),
    ("eval_start_step", _whole(0), "a non-negative integer"),
    ("num_seeds", _whole(1), "a positive integer"),
    ("holdout_fraction", _within(0.0, 1.0, high_open=True), "in [0, 1)"),
    ("eval_workers", _whole(0), "a non-negative integer"),
    ("timeline_videos", _whole(0), "a non-negative integer"),
) + tuple((field, _whole(1), "a positive integer") for field in (
    "num_steps", "batch_size", "eval_batch_size", "num_segments", "eval_every",
    "checkpoint_every", "keep_checkpoints", "log_every", "hidden_dim", "feature_dim"))


def _value(config: ml_collections.ConfigDict, dotted: str):
  node = config
  for key in dotted.split("."):
    node = node[key]
  return node


def config_problems(config: ml_collections.ConfigDict) -> List[str]:
  """Every problem of `config`, one line each naming its field."""
  problems = []
  for prefix, node, rules in (("", config, RUN_RULES), ("sal.", config.sal, SAL_RULES)):
    for field, check, good in rules:
      try:
        value = _value(node, field)
      except (KeyError, AttributeError):
        problems.append(f"config.{prefix}{field} is missing")
        continue
      if not check(value):
        problems.append(f"config.{prefix}{field} must be {good}, got {value!r}")
  if problems:
    return problems
  if config.sal.name != config.variant:
    problems.append(
        f"config.sal holds the {config.sal.name!r} code path but config.variant is "
        f"{config.variant!r}: start from the config file of that dataset")
  if config.feature_dim % 2:
    problems.append(f"config.feature_dim must be even (RGB | flow), got {config.feature_dim}")
  variant = make_variant(config)
  largest = variant.largest_topk(config.num_segments)
  if largest > config.num_segments:
    problems.append(
        f"config.num_segments = {config.num_segments} is smaller than the largest top-k "
        f"of the {variant.name} code path ({largest} snippets); raise it or lower "
        "config.sal.pseudo_topk_fixed / pseudo_topk_extra")
  if variant.sampling == "activitynet" and not config.eval_keep_all_if_shorter:
    problems.append("config.eval_keep_all_if_shorter must be True with the activitynet "
                    "sampling (its test videos shorter than T are always kept whole)")
  if config.data_source == "tfds" and not config.tfds_data_dir:
    problems.append("config.data_source is 'tfds' but config.tfds_data_dir is empty")
  return problems


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for a config the run cannot use, naming every bad field."""
  problems = config_problems(config)
  if problems:
    raise ConfigError("invalid config: " + "; ".join(problems))


def make_variant(config: ml_collections.ConfigDict) -> variants.Variant:
  """The SAL code path `config.sal` describes, with T = config.num_segments."""
  fields = config.sal.to_dict()
  fields["loss_weights"] = variants.LossWeights(
      **{k: float(v) for k, v in fields["loss_weights"].items()})
  for name in ("combine_weights", "act_thresholds", "tiou_thresholds"):
    fields[name] = tuple(float(v) for v in fields[name])
  return variants.Variant(num_segments=config.num_segments, **fields)


def make_model(config: ml_collections.ConfigDict, num_classes: int,
               variant: variants.Variant) -> model_lib.SAL:
  return model_lib.build_model(
      num_classes, variant, feature_dim=config.feature_dim,
      hidden_dim=config.hidden_dim, dropout_rate=config.dropout_rate,
      dtype=COMPUTE_DTYPES[config.compute_dtype], param_dtype=jnp.float32)
