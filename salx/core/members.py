"""K members (seeds and hyperparameter variants) trained at once in one jitted step.

A member is one SAL run: its own params, Adam moments, adaptive-mask statistics,
dropout key and float hyperparameters. The members' step is the single-member
`train_step` under `jax.vmap`: the state carries a leading member axis [K, ...],
the batch is [K, B, T, D] (member m's batch is the one a single run with its seed
draws) and the hyperparameters are [K] arrays, so members can differ in every
float that enters the arithmetic (`HPARAM_FIELDS`); shapes (T, top-k divisors,
widths) are shared.

    hparams = stack_hparams([member_hparams(variant, 1e-4, 5e-4), ...])   # {name: [K]}
    states = create_members_state(model, variant, keys, hparams, input_shape=(B, T, D))
    step = jax.jit(make_members_step(model, variant))
    states, metrics = step(states, batches, dropout_keys, hparams)        # metrics [K]
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable, Dict, Mapping, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from salx.core import train_step as train_step_lib
from salx.core import variants as variants_lib

Array = jax.Array

# The optimizer's floats, and the variant's floats that the training step uses.
OPTIMIZER_FIELDS = ("learning_rate", "weight_decay")
LOSS_WEIGHT_FIELDS = tuple(f"loss_weights.{f.name}"
                           for f in dataclasses.fields(variants_lib.LossWeights))
STEP_VARIANT_FIELDS = ("rgb_weight", "mask_ema", "mask_var_factor", "gce_q") + \
    LOSS_WEIGHT_FIELDS
HPARAM_FIELDS = OPTIMIZER_FIELDS + STEP_VARIANT_FIELDS
# Floats used only by localization on the host: each member's own variant holds them.
INFERENCE_FIELDS = ("beta", "class_thresh", "outer_lambda", "gamma", "nms_thresh",
                    "nms_alpha")


def member_hparams(variant: variants_lib.Variant, learning_rate: float,
                   weight_decay: float) -> Dict[str, float]:
  """{HPARAM_FIELDS name: float} of one member."""
  values = {"learning_rate": float(learning_rate), "weight_decay": float(weight_decay)}
  for name in STEP_VARIANT_FIELDS:
    node = variant
    for key in name.split("."):
      node = getattr(node, key)
    values[name] = float(node)
  return values


def stack_hparams(members: Sequence[Mapping[str, float]]) -> Dict[str, np.ndarray]:
  """{name: [K] float32} from K members' hyperparameters."""
  return {name: np.asarray([m[name] for m in members], np.float32)
          for name in HPARAM_FIELDS}


def with_hparams(variant: variants_lib.Variant, hparams: Mapping[str, Any]
                 ) -> variants_lib.Variant:
  """`variant` with its step floats taken from `hparams` (scalars or tracers)."""
  weights = variants_lib.LossWeights(**{
      name.split(".")[1]: hparams[name] for name in LOSS_WEIGHT_FIELDS})
  return variant.replace(
      loss_weights=weights,
      **{name: hparams[name] for name in STEP_VARIANT_FIELDS if "." not in name})


def create_members_state(model, variant: variants_lib.Variant, keys: Array,
                         hparams: Mapping[str, Any], *,
                         input_shape: Tuple[int, int, int]
                         ) -> train_step_lib.TrainState:
  """K fresh TrainStates stacked on a leading member axis.

  Args:
    keys: [K] init keys (member m's: its seed's, as a single run splits it).
    hparams: {name: [K]} (`stack_hparams`); the optimizer's learning rate and
      decay of member m are written into its optimizer state.
    input_shape: [B, T, D] of the init call.
  """
  tx = train_step_lib.make_optimizer()

  def create(key, learning_rate, weight_decay):
    state = train_step_lib.create_train_state(model, variant, key,
                                              input_shape=input_shape, tx=tx)
    opt_state = state.opt_state._replace(hyperparams={
        "learning_rate": jnp.asarray(learning_rate, jnp.float32),
        "weight_decay": jnp.asarray(weight_decay, jnp.float32)})
    return state.replace(opt_state=opt_state)

  return jax.vmap(create)(keys, jnp.asarray(hparams["learning_rate"]),
                          jnp.asarray(hparams["weight_decay"]))


def make_members_step(model, variant: variants_lib.Variant) -> Callable[..., Any]:
  """`step(states, batches, keys, hparams) -> (states, metrics)` over K members.

  states: TrainState [K, ...]; batches: {'features' [K, B, T, D], 'labels'
  [K, B, C]}; keys: [K] dropout base keys; hparams: {name: [K]}. Metrics [K] per
  name, as the single step's.
  """

  def member_step(state, batch, key, hparams):
    member_model = model.clone(rgb_weight=hparams["rgb_weight"])
    step = train_step_lib.make_train_step(member_model, with_hparams(variant, hparams))
    return step(state, batch, key)

  return jax.vmap(member_step)


def make_members_eval_forward(model) -> Callable[..., Any]:
  """`forward(params [K, ...], rgb_weight [K], features [B, T, D], mask [B, T])`.

  The members' outputs on the same videos, dropout off: SALOutputs with a leading
  member axis [K, B, ...].
  """

  def member_forward(params, rgb_weight, features, mask):
    member_model = model.clone(rgb_weight=rgb_weight)
    return member_model.apply({"params": params}, features, train=False, mask=mask)

  return jax.vmap(member_forward, in_axes=(0, 0, None, None))
