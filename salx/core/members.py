"""K members (seeds and hyperparameter settings) trained at once in one jitted step.

A member is one run: its own params, Adam moments, method state, dropout key and
hyperparameters. The members' step is the single-member `train_step` under
`jax.vmap`: the state carries a leading member axis [K, ...], the batch is
[K, B, T, D] (member m's batch is the one a single run with its seed draws) and
the hyperparameters are the method's pytree with [K] leaves
(`salx.core.hparams.stack`), so members can differ in every float field; the
static fields (T, top-k divisors, widths) are shared.

    stacked = hparams.stack([hp0, hp1, hp2])                              # leaves [K]
    states = create_members_state(method, model, keys, stacked, input_shape=(B, T, D))
    step = jax.jit(make_members_step(method, model))
    states, metrics = step(states, batches, dropout_keys, stacked)        # metrics [K]
"""

from __future__ import annotations

from typing import Any, Callable, Tuple

import jax

from salx.core import train_step as train_step_lib

Array = jax.Array


def create_members_state(method, model, keys: Array, stacked_hp, *,
                         input_shape: Tuple[int, int, int]) -> train_step_lib.TrainState:
  """K fresh TrainStates stacked on a leading member axis.

  Args:
    keys: [K] init keys (member m's: its seed's, as a single run splits it).
    stacked_hp: the members' hyperparameters, leaves [K].
    input_shape: [B, T, D] of the init call.
  """
  def create(key, hp):
    return train_step_lib.create_train_state(method, model, hp, key,
                                             input_shape=input_shape)

  return jax.vmap(create)(keys, stacked_hp)


def make_members_step(method, model) -> Callable[..., Any]:
  """`step(states, batches, keys, stacked_hp) -> (states, metrics)` over K members.

  states: TrainState [K, ...]; batches: {'features' [K, B, T, D], 'labels'
  [K, B, C]}; keys: [K] dropout base keys; stacked_hp: leaves [K]. Metrics [K]
  per name, as the single step's.
  """
  return jax.vmap(train_step_lib.make_train_step(method, model))


def make_members_eval_forward(method, model) -> Callable[..., Any]:
  """`forward(params [K, ...], features [B, T, D], mask [B, T], stacked_hp)`.

  The members' test outputs on the same videos, dropout off: each array with a
  leading member axis [K, B, ...].
  """
  return jax.vmap(train_step_lib.make_eval_forward(method, model),
                  in_axes=(0, None, None, 0))
