"""A tiny WTAL method defined outside salx, to show the method seam holds.

A linear class-activation head over the features, trained with a top-k MIL loss,
localized with SAL's localizer (its THUMOS14 inference settings, the actionness
taken as the sigmoid of the best class logit). Importing this module registers it
as "tiny_linear"; `get_config()` makes a run of it from configs/tiny.py, so
`python -m salx.main --config=tests/methods/tiny_method.py` trains it.
"""

from __future__ import annotations

from typing import Any, Dict, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from configs import base
from configs import tiny
from salx.core import hparams
from salx.core import topk
from salx.methods import method as method_lib
from salx.methods import registry
from salx.methods.sal import hparams as sal_hparams
from salx.postprocess import localization


@hparams.pytree_dataclass
class TinyHparams:
  learning_rate: float = 1e-2
  weight_decay: float = 0.0
  class_thresh: float = 0.25
  num_segments: int = 32
  topk_divisor: int = 8
  tiou_thresholds: tuple = (0.1, 0.3, 0.5)


class LinearCas(nn.Module):
  num_classes: int
  feature_dim: int
  param_dtype: Any = jnp.float32

  @nn.compact
  def __call__(self, x, hp=None, *, train=False, mask=None):
    del hp, train, mask
    return nn.Dense(self.num_classes, param_dtype=self.param_dtype, name="head")(x)


def _video_logits(cas, k):
  return topk.topk_mean(cas, cas, k)


class TinyLinear(method_lib.Method):
  name = "tiny_linear"
  hparams_type = TinyHparams
  presets = {"default": TinyHparams()}
  output_names = ("cas", "video_logits")
  video_level_outputs = ("video_logits",)

  def build_model(self, hp, *, num_classes, feature_dim, dtype=None,
                  param_dtype=jnp.float32):
    return LinearCas(num_classes, feature_dim, param_dtype)

  def loss(self, model, params, method_state, batch, hp, step, dropout_rng):
    cas = model.apply({"params": params}, batch["features"], hp)
    logits = _video_logits(cas, max(1, cas.shape[1] // hp.topk_divisor))
    labels = batch["labels"] / jnp.sum(batch["labels"], axis=-1, keepdims=True)
    mil = -jnp.mean(jnp.sum(labels * jax.nn.log_softmax(logits, axis=-1), axis=-1))
    return mil, ({"mil": mil}, method_state)

  def eval_outputs(self, model, params, features, mask, hp) -> Dict[str, Any]:
    cas = model.apply({"params": params}, features, hp)
    logits = _video_logits(cas, max(1, cas.shape[1] // hp.topk_divisor))
    return {"cas": cas.astype(jnp.float32), "video_logits": logits.astype(jnp.float32)}

  def localize(self, outputs, valid_lengths, num_snippets, hp, *,
               video_names: Sequence[str], class_names: Sequence[str]):
    actionness = 1.0 / (1.0 + np.exp(-np.max(outputs["cas"], axis=-1)))
    inference = sal_hparams.THUMOS14.replace(class_thresh=float(hp.class_thresh),
                                             tiou_thresholds=tuple(hp.tiou_thresholds))
    return localization.localize(outputs["cas"], actionness, actionness,
                                 outputs["video_logits"], valid_lengths, num_snippets,
                                 inference, video_names=video_names,
                                 class_names=class_names)


TINY_LINEAR = registry.register(TinyLinear())


def get_config():
  """configs/tiny.py with this method (data: --config.data_dir)."""
  config = tiny.get_config()
  base.use_method(config, TINY_LINEAR.name, "default")
  return config
