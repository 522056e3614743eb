"""What a WTAL method is to salx: the seam every method plugs into.

A method bundles
  - its hyperparameters: one frozen dataclass that is a JAX pytree
    (`salx.core.hparams.pytree_dataclass`; floats are leaves members vmap over,
    what fixes shapes is static), and named presets of it;
  - its model, parameter initialisation and method state (running statistics that
    travel with the train state, e.g. SAL's adaptive-mask statistics);
  - its loss, every term, as a pure function of (params, method state, batch, hp,
    step, dropout key);
  - its data handling: how training videos and snippets are sampled, and how test
    videos are fed (resampled to T, or whole);
  - its inference: model outputs on the test split, and their localization into
    the one `Detections` type (`salx.postprocess.localization.Localization`).

The trainer, the evaluator, checkpoints, members and the report use only this
interface; `salx.core.train_step` builds the jitted step from it. A new method is
a subclass in its own folder, registered in `salx.methods.registry`.
"""

from __future__ import annotations

import abc
from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


class Method(abc.ABC):
  """Base class of a WTAL method (subclass it; the defaults suit most methods).

  Attributes:
    name: the method's name, also its config field (`config.<name>` holds its
      hyperparameters) and its registry key.
    hparams_type: the pytree dataclass of its hyperparameters.
    presets: {preset name: hyperparameters}.
    output_names: the keys of `eval_outputs` (arrays the host localizes).
    video_level_outputs: those of them with no time axis ([B, C]).
    default_protocol: the evaluation protocol its authors report
      (`salx.postprocess.protocols`).
  """
  name: str = ""
  hparams_type: type = type(None)
  presets: Mapping[str, Any] = {}
  output_names: Tuple[str, ...] = ()
  video_level_outputs: Tuple[str, ...] = ()
  default_protocol: str = "activitynet"

  # -------------------------------------------------------------- hyperparameters

  def num_segments(self, hp) -> int:
    """T, the snippets of one training video."""
    return int(hp.num_segments)

  def describe(self, hp) -> str:
    """A short description of the model for the console header."""
    del hp
    return self.name

  def hparams_problems(self, hp) -> Sequence[str]:
    """Problems of a hyperparameter object, one line each naming the field (after
    the dataclass is built; types are checked by the app)."""
    del hp
    return ()

  # ---------------------------------------------------------------------- model

  @abc.abstractmethod
  def build_model(self, hp, *, num_classes: int, feature_dim: int,
                  dtype: Any = None, param_dtype: Any = jnp.float32):
    """The Flax module; `model.apply({'params': p}, x, hp, train=, mask=)`."""

  def init_params(self, model, hp, rng: Array, input_shape: Tuple[int, int, int]):
    """Fresh params for features of shape [B, T, D]."""
    x = jnp.zeros(input_shape, model.param_dtype)
    params_rng, dropout_rng = jax.random.split(rng)
    return model.init({"params": params_rng, "dropout": dropout_rng}, x, hp)["params"]

  def init_method_state(self, hp, *, num_classes: int, dtype: Any = jnp.float32) -> Any:
    """The method's own training state (a pytree; () when it has none)."""
    del hp, num_classes, dtype
    return ()

  def method_state_metrics(self, method_state) -> Dict[str, Array]:
    """Scalars of the method state to log each step ({} when none)."""
    del method_state
    return {}

  # ---------------------------------------------------------------------- loss

  def check_batch_shapes(self, model, hp, features_shape, labels_shape) -> None:
    """Raises ValueError for a training batch the loss cannot take (while tracing)."""
    feature_dim, num_classes = model.feature_dim, model.num_classes
    if len(features_shape) != 3 or features_shape[-1] != feature_dim:
      raise ValueError(f"features must be [B, T, {feature_dim}] (the configured "
                       f"feature_dim), got {tuple(features_shape)}")
    if tuple(labels_shape) != (features_shape[0], num_classes):
      raise ValueError(f"labels must be [B, C] = [{features_shape[0]}, "
                       f"{num_classes}], got {tuple(labels_shape)}")

  @abc.abstractmethod
  def loss(self, model, params, method_state, batch: Mapping[str, Array], hp,
           step: Array, dropout_rng: Array) -> Tuple[Array, Tuple[Dict[str, Array], Any]]:
    """(total, (unweighted terms {name: scalar}, new method state)), differentiable
    in `params`. batch: {'features': [B, T, D], 'labels': [B, C]}."""

  # ---------------------------------------------------------------------- data

  def train_sampling(self, hp) -> str:
    """The snippet sampling of training videos (`salx.datasets.sampling`)."""
    return getattr(hp, "sampling", "thumos14")

  def eval_sampling(self, hp) -> str:
    """The snippet sampling of test videos (`salx.datasets.sampling`)."""
    return getattr(hp, "sampling", "thumos14")

  def eval_keeps_whole_videos(self, hp) -> bool:
    """True when test videos go through the model whole (T = the longest test
    video, padded and masked) instead of resampled to T."""
    del hp
    return False

  def video_sampler(self, hp):
    """None for uniform epochs over the training videos, or a function
    `(seed, step, labels [N, C], batch_size) -> [B] video indices`, a pure
    function of its arguments (a method that pairs videos by class)."""
    del hp
    return None

  # ----------------------------------------------------------------- inference

  @abc.abstractmethod
  def eval_outputs(self, model, params, features: Array, mask: Optional[Array],
                   hp) -> Dict[str, Array]:
    """{name in output_names: array} of a test batch [B, T, D] (dropout off),
    each [B, T, ...] or [B, C], float32."""

  @abc.abstractmethod
  def localize(self, outputs: Mapping[str, np.ndarray], valid_lengths: np.ndarray,
               num_snippets: np.ndarray, hp, *, video_names: Sequence[str],
               class_names: Sequence[str]):
    """`salx.postprocess.localization.Localization` of one batch's real rows."""

  def timeline_arrays(self, outputs: Mapping[str, np.ndarray], num_snippets: int, hp, *,
                      labels: Optional[np.ndarray] = None,
                      method_state: Any = None) -> Dict[str, Any]:
    """What a timeline picture of one video draws, from its outputs [T_b, ...]:
    {'seconds_per_snippet', 'cas' (the per-class score [T_b, C] localization
    thresholds), 'actionness' [T_b], 'action_flow', 'action_rgb' [T_b] (the
    streams, or the actionness again), 'thresholds'}; with `labels` (a training
    video) also what the method trains the actionness towards."""
    del labels, method_state
    cas = np.asarray(outputs["cas"], np.float64)
    seconds = num_snippets * 16.0 / 25.0 / max(1, cas.shape[0])
    actionness = cas.max(axis=-1)
    return {"seconds_per_snippet": seconds, "cas": cas, "actionness": actionness,
            "action_flow": actionness, "action_rgb": actionness, "thresholds": []}

  def load_authors_checkpoint(self, path: str) -> Optional[Any]:
    """The params of the method's authors' checkpoint file at `path`, or None when
    the method reads none (raises ValueError naming the file when it is damaged)."""
    del path
    return None

  def tiou_thresholds(self, hp) -> Tuple[float, ...]:
    """The tIoU thresholds its evaluation reports."""
    return tuple(hp.tiou_thresholds)
