"""The run's config: its checks, and the SAL code path and model it describes."""

from __future__ import annotations

import jax.numpy as jnp
import ml_collections

from salx.core import model as model_lib
from salx.core import variants
from salx.datasets import layouts

DATASETS = ("synthetic",) + layouts.DATASETS
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}


class ConfigError(ValueError):
  """The config cannot be used (the message names the field)."""


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for a config the run cannot use, naming the field."""
  problems = []
  if config.dataset not in DATASETS:
    problems.append(f"dataset {config.dataset!r} is not one of {DATASETS}")
  if config.variant not in variants.VARIANTS:
    problems.append(f"variant {config.variant!r} is not one of "
                    f"{sorted(variants.VARIANTS)}")
  if config.compute_dtype not in COMPUTE_DTYPES:
    problems.append(f"compute_dtype {config.compute_dtype!r} is not one of "
                    f"{sorted(COMPUTE_DTYPES)}")
  if config.check_data not in ("full", "quick", "none"):
    problems.append(f"check_data {config.check_data!r} is not 'full', 'quick' or 'none'")
  if config.eval_checkpoint not in ("best", "latest"):
    problems.append(f"eval_checkpoint {config.eval_checkpoint!r} is not 'best' or "
                    "'latest'")
  for field in ("num_steps", "batch_size", "eval_batch_size", "num_segments",
                "eval_every", "checkpoint_every", "keep_checkpoints", "log_every",
                "hidden_dim", "feature_dim"):
    if config[field] < 1:
      problems.append(f"{field} must be positive, got {config[field]}")
  if config.seed < 0:
    problems.append(f"seed must be non-negative, got {config.seed}")
  if problems:
    raise ConfigError("invalid config: " + "; ".join(problems))


def make_variant(config: ml_collections.ConfigDict) -> variants.Variant:
  """The SAL code path of the config, with its T."""
  return variants.get_variant(config.variant).replace(num_segments=config.num_segments)


def make_model(config: ml_collections.ConfigDict, num_classes: int,
               variant: variants.Variant) -> model_lib.SAL:
  return model_lib.build_model(
      num_classes, variant, feature_dim=config.feature_dim,
      hidden_dim=config.hidden_dim, dropout_rate=config.dropout_rate,
      dtype=COMPUTE_DTYPES[config.compute_dtype], param_dtype=jnp.float32)
