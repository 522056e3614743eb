"""SAL as a salx method (docs/sal.md): model, loss, data handling and localization.

    from salx.methods.sal.method import SAL_METHOD
    hp = SAL_METHOD.presets["thumos14"]          # or "activitynet"
    model = SAL_METHOD.build_model(hp, num_classes=20, feature_dim=2048)

The method state is the adaptive mask's running statistics (`MaskState`, SPEC 2.5).
Test outputs are the four arrays SPEC 3 localizes: cas [B, T, C], the two
actionness streams [B, T] and the semantic video logits [B, C].
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import jax
import jax.numpy as jnp
import numpy as np

from salx.methods import method as method_lib
from salx.core import hparams as hparams_lib
from salx.methods.sal import hparams as sal_hparams
from salx.core import topk
from salx.methods.sal import convert
from salx.methods.sal import losses
from salx.methods.sal import model as model_lib
from salx.methods.sal import pseudo_labels
from salx.methods.sal.pseudo_labels import MaskState
from salx.postprocess import localization

Array = jax.Array


def _loss_dtype(dtype) -> Any:
  """Losses run in at least float32 (bf16 outputs are upcast)."""
  return jnp.promote_types(dtype, jnp.float32)


class SALMethod(method_lib.Method):
  """SAL: multilevel semantic and adaptive actionness learning."""
  name = "sal"
  hparams_type = sal_hparams.SALHparams
  presets = sal_hparams.PRESETS
  output_names = ("cas", "action_flow", "action_rgb", "video_logits")
  video_level_outputs = ("video_logits",)

  def describe(self, hp) -> str:
    return f"SAL, {hp.name} code path, hidden {hp.hidden_dim}, T {hp.num_segments}"

  def hparams_problems(self, hp) -> Sequence[str]:
    problems = hparams_lib.rule_problems(hp, sal_hparams.RULES)
    if problems:
      return problems
    largest = hp.largest_topk(hp.num_segments)
    if largest > hp.num_segments:
      problems.append(
          f"num_segments = {hp.num_segments} is smaller than the largest top-k of "
          f"the {hp.name} code path ({largest} snippets); raise it or lower "
          "pseudo_topk_fixed / pseudo_topk_extra")
    return problems

  def build_model(self, hp, *, num_classes: int, feature_dim: int,
                  dtype: Any = None, param_dtype: Any = jnp.float32):
    return model_lib.build_model(num_classes, hp, feature_dim=feature_dim,
                                 dtype=dtype, param_dtype=param_dtype)

  def init_method_state(self, hp, *, num_classes: int, dtype: Any = jnp.float32):
    del hp
    return MaskState.initial(num_classes, dtype)

  def method_state_metrics(self, method_state) -> Dict[str, Array]:
    return {"mask_mu": method_state.mu, "mask_var": method_state.var}

  def check_batch_shapes(self, model, hp, features_shape, labels_shape) -> None:
    super().check_batch_shapes(model, hp, features_shape, labels_shape)
    batch, num_segments = features_shape[:2]
    if batch < 2:
      raise ValueError(f"the cross-batch mix-up needs a batch of at least 2, got {batch}")
    needed = hp.largest_topk(num_segments)
    if needed > num_segments:
      raise ValueError(f"T = {num_segments} snippets is smaller than the largest top-k "
                       f"of the {hp.name} variant ({needed}); sample more snippets")

  def loss(self, model, params, method_state, batch, hp, step, dropout_rng):
    del step
    outputs = model.apply({"params": params}, batch["features"], hp, train=True,
                          rngs={"dropout": dropout_rng})
    dtype = _loss_dtype(outputs.cas.dtype)
    outputs = jax.tree_util.tree_map(lambda a: a.astype(dtype), outputs)
    total, (terms, aux) = losses.sal_loss(outputs, batch["labels"].astype(dtype),
                                          method_state, hp)
    return total, (terms, aux.mask_state)

  def eval_outputs(self, model, params, features, mask, hp) -> Dict[str, Array]:
    o = model.apply({"params": params}, features, hp, train=False, mask=mask)
    return {name: getattr(o, name).astype(jnp.float32) for name in self.output_names}

  def localize(self, outputs: Mapping[str, np.ndarray], valid_lengths: np.ndarray,
               num_snippets: np.ndarray, hp, *, video_names: Sequence[str],
               class_names: Sequence[str]) -> localization.Localization:
    return localization.localize(
        outputs["cas"], outputs["action_flow"], outputs["action_rgb"],
        outputs["video_logits"], valid_lengths, num_snippets, hp,
        video_names=video_names, class_names=class_names)


  def timeline_arrays(self, outputs, num_snippets: int, hp, *, labels=None,
                      method_state=None) -> Dict[str, Any]:
    cas, flow, rgb = (np.asarray(outputs[k], np.float64)
                      for k in ("cas", "action_flow", "action_rgb"))
    length = cas.shape[0]
    seconds = float(localization.seconds_per_position(
        np.asarray([num_snippets]), np.asarray([length]), hp)[0] * hp.upsample_scale)
    out = {"seconds_per_snippet": seconds,
           "cas": np.asarray(topk.combined_score(cas, flow, rgb, hp.combine_weights)),
           "actionness": np.asarray(model_lib.fused_actionness(flow, rgb, hp.rgb_weight)),
           "action_flow": flow, "action_rgb": rgb,
           "thresholds": list(hp.act_thresholds)}
    if labels is not None and method_state is not None:
      one = tuple(x[None].astype(np.float32) for x in (cas, flow, rgb))
      g = pseudo_labels.pseudo_label(*one, np.asarray(labels)[None], hp)
      w, _ = pseudo_labels.adaptive_mask(one[0], method_state, hp)
      out.update(pseudo_label=np.asarray(g)[0], mask=np.asarray(w)[0])
    return out

  def load_authors_checkpoint(self, path: str):
    return convert.load_official_checkpoint(path)


SAL_METHOD = SALMethod()
