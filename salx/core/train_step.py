"""Train state, optimizer and the pure train step of any method.

    method = salx.methods.get_method("sal")
    hp = method.presets["thumos14"]
    model = method.build_model(hp, num_classes=20, feature_dim=2048)
    state = create_train_state(method, model, hp, jax.random.key(0),
                               input_shape=(2, hp.num_segments, 2048))
    step = jax.jit(make_train_step(method, model), donate_argnums=0)
    state, metrics = step(state, {'features': x, 'labels': y}, jax.random.key(1), hp)

`train_step(state, batch, rng, hp)` is pure: dropout masks come from `rng` folded
with the step number, the method's own state (SAL's mask statistics) travels in
the train state, the hyperparameters are an argument (a pytree: members pass
theirs stacked under `jax.vmap`, `salx.core.members`), and nothing leaves the
device. The global batch is one array, so when it is sharded over a mesh the
cross-batch terms (mix-up, pairs, top-k selections, running statistics) stay
those of the whole batch (see `salx.core.sharding`).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import flax.struct
import jax
import jax.numpy as jnp
import numpy as np
import optax

Array = jax.Array
Batch = Mapping[str, Array]


def make_optimizer(learning_rate: float = 1e-4, weight_decay: float = 5e-4,
                   b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
                   ) -> optax.GradientTransformation:
  """PyTorch Adam with COUPLED L2 weight decay (SPEC 2.8), not AdamW.

  The decay term wd * param is added to the gradient before the moment updates.
  The learning rate and the decay live in the optimizer state
  (`opt_state.hyperparams`); the train step sets them from the hyperparameters
  (`hp.learning_rate`, `hp.weight_decay`) every step, so they have one source.
  """
  def coupled_adam(learning_rate, weight_decay):
    return optax.chain(optax.add_decayed_weights(weight_decay),
                       optax.adam(learning_rate, b1=b1, b2=b2, eps=eps))

  return optax.inject_hyperparams(coupled_adam)(learning_rate=learning_rate,
                                                weight_decay=weight_decay)


class TrainState(flax.struct.PyTreeNode):
  """What a training run carries from step to step.

  Attributes:
    step: the number of steps taken (int32 scalar).
    params: the model's params.
    opt_state: Adam's state (moments, count, the injected lr and decay).
    method_state: the method's own state (SAL: the adaptive-mask statistics).
  """
  step: Array
  params: Any
  opt_state: Any
  method_state: Any


def with_optimizer_hparams(opt_state, hp) -> Any:
  """`opt_state` with its learning rate and decay taken from `hp`."""
  dtype = opt_state.hyperparams["learning_rate"].dtype
  return opt_state._replace(hyperparams={
      "learning_rate": jnp.asarray(hp.learning_rate, dtype),
      "weight_decay": jnp.asarray(hp.weight_decay, dtype)})


def create_train_state(method, model, hp, rng: Array, *,
                       input_shape: Optional[Tuple[int, int, int]] = None,
                       params: Any = None) -> TrainState:
  """A fresh TrainState from `rng` (or from given `params`, e.g. converted ones).

  Args:
    method: a `salx.methods.method.Method`.
    model: its module (`method.build_model`).
    hp: its hyperparameters.
    rng: key for the parameter init.
    input_shape: [B, T, D] used to initialise; default (2, method T, D).
    params: use these params instead of initialising.
  """
  if params is None:
    if input_shape is None:
      input_shape = (2, method.num_segments(hp), model.feature_dim)
    params = method.init_params(model, hp, rng, input_shape)
  dtype = jax.tree_util.tree_leaves(params)[0].dtype
  opt_state = with_optimizer_hparams(make_optimizer().init(params), hp)
  return TrainState(step=jnp.zeros((), jnp.int32), params=params, opt_state=opt_state,
                    method_state=method.init_method_state(
                        hp, num_classes=model.num_classes, dtype=dtype))


def check_batch(batch: Mapping[str, np.ndarray], method, model, hp,
                source: str = "batch") -> None:
  """Host-side check of a training batch before it goes to the device.

  Raises ValueError naming `source` for a batch of the wrong shape, a video with
  no positive label, or NaN / inf features.
  """
  features, labels = np.asarray(batch["features"]), np.asarray(batch["labels"])
  try:
    method.check_batch_shapes(model, hp, features.shape, labels.shape)
  except ValueError as e:
    raise ValueError(f"{source}: {e}") from None
  names = batch.get("names")

  def which(rows):
    return [str(names[i]) if names is not None else int(i) for i in rows]

  no_label = np.flatnonzero(~np.any(labels > 0, axis=-1))
  if no_label.size:
    raise ValueError(f"{source}: training video(s) {which(no_label)} have no positive label; "
                     "weak supervision needs at least one class per video")
  if not np.all(np.isfinite(features)):
    bad = np.flatnonzero(~np.all(np.isfinite(features), axis=(1, 2)))
    raise ValueError(f"{source}: NaN or infinite feature values in video(s) {which(bad)}")


def make_train_step(method, model) -> Callable[..., Tuple[TrainState, Dict[str, Array]]]:
  """Returns the pure `train_step(state, batch, rng, hp) -> (state, metrics)`.

  batch: {'features': [B, T, D], 'labels': [B, C]} (extra keys ignored).
  rng: a key; the dropout key of a step is `fold_in(rng, state.step)`, so one base
  key can be passed every step. hp: the method's hyperparameters (the optimizer's
  lr and decay among them). Metrics: 'loss', the method's unweighted terms, its
  state's scalars, and 'bad_videos': how many videos of the batch have NaN / inf
  features or no positive label (their loss terms are meaningless; 0 in a
  healthy run).
  """
  tx = make_optimizer()

  def train_step(state: TrainState, batch: Batch, rng: Array, hp):
    features, labels = batch["features"], batch["labels"]
    method.check_batch_shapes(model, hp, features.shape, labels.shape)
    dropout_rng = jax.random.fold_in(rng, state.step)

    def loss_fn(params):
      total, (terms, method_state) = method.loss(
          model, params, state.method_state, batch, hp, state.step, dropout_rng)
      return total, (terms, method_state)

    (total, (terms, method_state)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    opt_state = with_optimizer_hparams(state.opt_state, hp)
    updates, opt_state = tx.update(grads, opt_state, state.params)
    params = optax.apply_updates(state.params, updates)
    new_state = state.replace(step=state.step + 1, params=params, opt_state=opt_state,
                              method_state=method_state)
    # Videos that break the step's assumptions, counted on the device (no host
    # round trip); the training loop stops the run when it reads a non-zero count.
    bad_videos = jnp.sum(~jnp.all(jnp.isfinite(features), axis=(1, 2))
                         | ~jnp.any(labels > 0, axis=-1))
    metrics = dict(terms, loss=total, bad_videos=bad_videos.astype(total.dtype),
                   **method.method_state_metrics(method_state))
    return new_state, metrics

  return train_step


def make_eval_forward(method, model) -> Callable[..., Dict[str, Array]]:
  """Returns `eval_forward(params, features [B, T, D], mask [B, T] | None, hp)`:
  the method's test outputs, dropout off."""

  def eval_forward(params, features, mask, hp):
    return method.eval_outputs(model, params, features, mask, hp)

  return eval_forward
