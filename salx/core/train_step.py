"""Train state, optimizer and the pure SAL train step (SPEC 2.7-2.8).

    model = model_lib.build_model(num_classes, variants.THUMOS14)
    state = create_train_state(model, variants.THUMOS14, jax.random.key(0),
                               input_shape=(2, 750, 2048))
    step = jax.jit(make_train_step(model, variants.THUMOS14), donate_argnums=0)
    state, metrics = step(state, {'features': x, 'labels': y}, jax.random.key(1))

`train_step(state, batch, rng)` is pure: dropout masks come from `rng` folded with
the step number, the mask statistics travel in the state, and nothing leaves the
device. The global batch is one array, so when it is sharded over a mesh the
cross-batch mix-up, top-k selections and mask statistics stay those of the whole
batch (see `salx.core.sharding`).
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Mapping, Optional, Tuple

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax.training import train_state

from salx.core import losses
from salx.core.model import SAL, SALOutputs
from salx.core.pseudo_labels import MaskState

Array = jax.Array
Batch = Mapping[str, Array]


def make_optimizer(learning_rate: float = 1e-4, weight_decay: float = 5e-4,
                   b1: float = 0.9, b2: float = 0.999, eps: float = 1e-8
                   ) -> optax.GradientTransformation:
  """PyTorch Adam with COUPLED L2 weight decay (SPEC 2.8), not AdamW.

  The decay term wd * param is added to the gradient before the moment updates.
  The learning rate and the decay live in the optimizer state
  (`opt_state.hyperparams`), so that members trained together under `jax.vmap`
  can each have their own (`salx.core.members`).
  """
  def coupled_adam(learning_rate, weight_decay):
    return optax.chain(optax.add_decayed_weights(weight_decay),
                       optax.adam(learning_rate, b1=b1, b2=b2, eps=eps))

  return optax.inject_hyperparams(coupled_adam)(learning_rate=learning_rate,
                                                weight_decay=weight_decay)


class TrainState(train_state.TrainState):
  """Flax TrainState plus the running statistics of the adaptive mask."""
  mask_state: MaskState


def init_params(model: SAL, rng: Array, input_shape: Tuple[int, int, int]) -> Any:
  """Initialises the model's params for features of shape [B, T, D]."""
  x = jnp.zeros(input_shape, model.param_dtype)
  params_rng, dropout_rng = jax.random.split(rng)
  return model.init({"params": params_rng, "dropout": dropout_rng}, x)["params"]


def create_train_state(model: SAL, variant, rng: Array, *,
                       input_shape: Optional[Tuple[int, int, int]] = None,
                       params: Any = None,
                       tx: Optional[optax.GradientTransformation] = None
                       ) -> TrainState:
  """A fresh TrainState from `rng` (or from given `params`, e.g. converted ones).

  Args:
    model: the SAL module.
    variant: `salx.core.variants.Variant` (gives the mask's initial statistics via C).
    rng: key for the parameter init.
    input_shape: [B, T, D] used to initialise; default (2, variant T, D).
    params: use these params instead of initialising.
    tx: optimizer; default `make_optimizer()`.
  """
  if params is None:
    if input_shape is None:
      input_shape = (2, variant.num_segments, model.feature_dim)
    params = init_params(model, rng, input_shape)
  dtype = jax.tree_util.tree_leaves(params)[0].dtype
  return TrainState.create(
      apply_fn=model.apply, params=params, tx=tx or make_optimizer(),
      mask_state=MaskState.initial(model.num_classes, dtype))


def check_static_shapes(model: SAL, variant, features_shape, labels_shape) -> None:
  """Shape errors that can be told before running: raised while tracing."""
  if len(features_shape) != 3 or features_shape[-1] != model.feature_dim:
    raise ValueError(f"features must be [B, T, {model.feature_dim}] (the configured "
                     f"feature_dim), got {tuple(features_shape)}")
  if tuple(labels_shape) != (features_shape[0], model.num_classes):
    raise ValueError(f"labels must be [B, C] = [{features_shape[0]}, "
                     f"{model.num_classes}], got {tuple(labels_shape)}")
  batch, num_segments = features_shape[:2]
  if batch < 2:
    raise ValueError(f"the cross-batch mix-up needs a batch of at least 2, got {batch}")
  needed = variant.largest_topk(num_segments)
  if needed > num_segments:
    raise ValueError(f"T = {num_segments} snippets is smaller than the largest top-k "
                     f"of the {variant.name} variant ({needed}); sample more snippets")


def check_batch(batch: Mapping[str, np.ndarray], model: SAL, variant,
                source: str = "batch") -> None:
  """Host-side check of a training batch before it goes to the device.

  Raises ValueError naming `source` for a wrong feature dim, T smaller than the
  largest top-k, a video with no positive label, or NaN / inf features.
  """
  features, labels = np.asarray(batch["features"]), np.asarray(batch["labels"])
  try:
    check_static_shapes(model, variant, features.shape, labels.shape)
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


def _loss_dtype(dtype) -> Any:
  """Losses run in at least float32 (bf16 outputs are upcast)."""
  return jnp.promote_types(dtype, jnp.float32)


def make_train_step(model: SAL, variant) -> Callable[..., Tuple[TrainState, Dict[str, Array]]]:
  """Returns the pure `train_step(state, batch, rng) -> (state, metrics)`.

  batch: {'features': [B, T, D], 'labels': [B, C]} (extra keys ignored).
  rng: a key; the dropout key of a step is `fold_in(rng, state.step)`, so one base
  key can be passed every step. Metrics: 'loss' and the unweighted terms 'mil',
  'bg', 'act', 'mix', 'mc', 'se', the mask statistics 'mask_mu', 'mask_var', and
  'bad_videos': how many videos of the batch have NaN / inf features or no
  positive label (their loss terms are meaningless; 0 in a healthy run).
  """

  def train_step(state: TrainState, batch: Batch, rng: Array):
    features, labels = batch["features"], batch["labels"]
    check_static_shapes(model, variant, features.shape, labels.shape)
    dropout_rng = jax.random.fold_in(rng, state.step)

    def loss_fn(params):
      outputs = model.apply({"params": params}, features, train=True,
                            rngs={"dropout": dropout_rng})
      dtype = _loss_dtype(outputs.cas.dtype)
      outputs = jax.tree_util.tree_map(lambda a: a.astype(dtype), outputs)
      total, (terms, aux) = losses.sal_loss(outputs, labels.astype(dtype),
                                            state.mask_state, variant)
      return total, (terms, aux.mask_state)

    (total, (terms, mask_state)), grads = jax.value_and_grad(
        loss_fn, has_aux=True)(state.params)
    new_state = state.apply_gradients(grads=grads, mask_state=mask_state)
    # Videos that break the step's assumptions, counted on the device (no host
    # round trip); the training loop stops the run when it reads a non-zero count.
    bad_videos = jnp.sum(~jnp.all(jnp.isfinite(features), axis=(1, 2))
                         | ~jnp.any(labels > 0, axis=-1))
    metrics = dict(terms, loss=total, mask_mu=mask_state.mu, mask_var=mask_state.var,
                   bad_videos=bad_videos.astype(total.dtype))
    return new_state, metrics

  return train_step


def make_eval_forward(model: SAL) -> Callable[[Any, Array, Optional[Array]], SALOutputs]:
  """Returns `eval_forward(params, features [B, T, D], mask [B, T] | None)`.

  Dropout off; the mask leaves padded snippets out of the second-order pooling so
  padded evaluation batches give each video's own outputs.
  """

  def eval_forward(params, features, mask=None):
    return model.apply({"params": params}, features, train=False, mask=mask)

  return eval_forward
