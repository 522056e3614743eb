"""CO2-Net as a salx method (docs/co2net_delu.md); DELU is this with two more terms.

    from salx.methods.co2net.method import CO2NET_METHOD
    hp = CO2NET_METHOD.presets["thumos14"]
    model = CO2NET_METHOD.build_model(hp, num_classes=20, feature_dim=2048)

Training batches pair videos by class (SPEC-CO2NET-DELU 4.2: `video_sampler`) and
resample each video to T = max_seqlen with `random_perturb` (4.3: salx's
'thumos14' snippet sampling draws from the same distribution). Test videos go
through the model whole (5.1): the evaluator pads them to the longest test video
and masks the padding. Test outputs are cas [B, T, C+1] and the fused attention
[B, T]; localization is their multi-threshold OIC proposals with Gaussian soft-NMS
(5.2-5.5) and DELU's length filter (5.6); the Ambiguous filter belongs to the
W-TALC evaluation protocol (`salx.postprocess.protocols`, 6).
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from salx.core import hparams as hparams_lib
from salx.methods import method as method_lib
from salx.methods.co2net import hparams as co2net_hparams
from salx.methods.co2net import losses
from salx.methods.co2net import model as model_lib
from salx.methods.co2net import sampling
from salx.methods.co2net import torch_names
from salx.postprocess import localization
from salx.postprocess import wtalc_proposals

Array = jax.Array

# Field -> (check, what a good value is), as `hparams_problems` applies them.
RULES = tuple((name, hparams_lib.NON_NEGATIVE, "non-negative") for name in (
    "weight_decay", "alpha1", "alpha2", "alpha3", "alpha4", "alpha_edl",
    "alpha_uct_guide", "amplitude")) + (
    ("learning_rate", hparams_lib.POSITIVE, "positive"),
    ("dropout_ratio", hparams_lib.within(0.0, 1.0, high_open=True), "in [0, 1)"),
    ("attention_hidden", hparams_lib.whole(1), "a positive integer"),
    ("max_seqlen", hparams_lib.whole(1), "a positive integer"),
    ("mil_topk_divisor", hparams_lib.whole(1), "a positive integer"),
    ("rat_atn", hparams_lib.whole(1), "a positive integer"),
    ("max_iter", hparams_lib.whole(1), "a positive integer"),
    ("num_similar", hparams_lib.whole(3), "an integer of at least 3 (the contrastive "
     "loss reads three same-class pairs)"),
    ("num_thresholds", hparams_lib.whole(1), "a positive integer"),
    ("cls_topk_divisor", hparams_lib.whole(1), "a positive integer"),
    ("class_threshold", hparams_lib.PROBABILITY, "in [0, 1]"),
    ("oic_outer_ratio", hparams_lib.NON_NEGATIVE, "non-negative"),
    ("gamma_oic", hparams_lib.is_number, "a number"),
    ("soft_nms_sigma", hparams_lib.POSITIVE, "positive"),
    ("feature_fps", hparams_lib.POSITIVE, "positive"),
    ("frames_per_segment", hparams_lib.whole(1), "a positive integer"),
    ("tiou_thresholds", hparams_lib.sequence_of(hparams_lib.within(0.0, 1.0, low_open=True)),
     "numbers in (0, 1]"),
)


def pair_sampler(num_similar: int):
  """Their batch layout (SPEC-CO2NET-DELU 4.2) as a salx video sampler:
  `(rng, labels [N, C], B) -> [B]`: `num_similar` classes drawn with replacement,
  two distinct videos of each, then B - 2 num_similar videos of any class. A class
  with fewer than two training videos is never drawn (every THUMOS14 class has 10
  to 20)."""

  def sample(rng: np.random.Generator, labels: np.ndarray, batch_size: int) -> np.ndarray:
    videos = np.arange(labels.shape[0])
    classwise = [c for c in sampling.classwise_videos(videos, labels) if len(c) >= 2]
    if not classwise:
      raise ValueError("no class has two training videos: CO2-Net's batches need "
                       "same-class pairs")
    return sampling.sample_videos(rng, classwise, videos, batch_size=batch_size,
                                  num_similar=num_similar)[:batch_size]

  return sample


class CO2NetMethod(method_lib.Method):
  """CO2-Net: cross-modal consensus network (ACM MM 2021)."""
  name = "co2net"
  hparams_type = co2net_hparams.CO2NetHparams
  presets = {"thumos14": co2net_hparams.CO2NET_THUMOS14}
  output_names = ("cas", "attn")
  default_protocol = "wtalc"
  title = "CO2-Net"

  def num_segments(self, hp) -> int:
    return int(hp.max_seqlen)

  def describe(self, hp) -> str:
    return (f"{self.title}, attention width {hp.attention_hidden}, T {hp.max_seqlen}, "
            f"{hp.num_thresholds} thresholds")

  def hparams_problems(self, hp) -> Sequence[str]:
    return hparams_lib.rule_problems(hp, RULES)

  def build_model(self, hp, *, num_classes: int, feature_dim: int,
                  dtype: Any = None, param_dtype: Any = jnp.float32):
    return model_lib.build_model(num_classes, hp, feature_dim=feature_dim, dtype=dtype,
                                 param_dtype=param_dtype)

  def check_batch_shapes(self, model, hp, features_shape, labels_shape) -> None:
    super().check_batch_shapes(model, hp, features_shape, labels_shape)
    if features_shape[0] < 2 * hp.num_similar:
      raise ValueError(f"a batch of {features_shape[0]} videos is smaller than the "
                       f"{hp.num_similar} same-class pairs the contrastive loss reads")

  def loss(self, model, params, method_state, batch, hp, step, dropout_rng):
    outputs = model.apply({"params": params}, batch["features"], hp, train=True,
                          rngs={"dropout": dropout_rng})
    dtype = jnp.promote_types(outputs.cas.dtype, jnp.float32)
    outputs = jax.tree_util.tree_map(lambda a: a.astype(dtype), outputs)
    total, terms = losses.co2net_loss(outputs, batch["labels"].astype(dtype), hp, step)
    return total, (terms, method_state)

  def video_sampler(self, hp):
    return pair_sampler(hp.num_similar)

  def train_sampling(self, hp) -> str:
    del hp
    return "thumos14"

  def eval_sampling(self, hp) -> str:
    del hp
    return "thumos14"

  def eval_keeps_whole_videos(self, hp) -> bool:
    del hp
    return True

  def eval_outputs(self, model, params, features, mask, hp) -> Dict[str, Array]:
    o = model.apply({"params": params}, features, hp, train=False, mask=mask)
    return {"cas": o.cas.astype(jnp.float32), "attn": o.attn.astype(jnp.float32)}

  def localize(self, outputs: Mapping[str, np.ndarray], valid_lengths: np.ndarray,
               num_snippets: np.ndarray, hp, *, video_names: Sequence[str],
               class_names: Sequence[str]) -> localization.Localization:
    del num_snippets   # Whole videos: the valid length is the snippet count.
    lengths = np.asarray(valid_lengths, np.int64)
    cas = [np.asarray(outputs["cas"][b, :n], np.float64) for b, n in enumerate(lengths)]
    attn = [np.asarray(outputs["attn"][b, :n], np.float64) for b, n in enumerate(lengths)]
    names = [str(n) for n in video_names]
    if not names:
      empty = wtalc_proposals.to_detections(
          wtalc_proposals.WtalcProposals(*(np.zeros(0),) * 5, np.zeros((0, len(class_names))),
                                         np.zeros((0, len(class_names)), bool)),
          names, class_names)
      return localization.Localization(empty, np.zeros((0, len(class_names))),
                                       np.zeros((0, len(class_names)), bool))
    proposals = wtalc_proposals.propose(
        cas, attn, num_thresholds=hp.num_thresholds, class_threshold=hp.class_threshold,
        top_k_divisor=hp.cls_topk_divisor, outer_lambda=hp.oic_outer_ratio,
        gamma=hp.gamma_oic, sigma=hp.soft_nms_sigma)
    proposals = wtalc_proposals.filter_rows(
        proposals, names, min_length=1.0 if hp.length_filter else None)
    detections = wtalc_proposals.to_detections(
        proposals, names, class_names, frames_per_snippet=hp.frames_per_segment,
        fps=hp.feature_fps)
    return localization.Localization(detections, proposals.class_scores,
                                     proposals.predicted)

  def timeline_arrays(self, outputs, num_snippets: int, hp, *, labels=None,
                      method_state=None) -> Dict[str, Any]:
    del labels, method_state
    cas = np.asarray(outputs["cas"], np.float64)
    attn = np.asarray(outputs["attn"], np.float64)
    return {"seconds_per_snippet": hp.frames_per_segment / hp.feature_fps,
            "cas": (cas * attn[:, None])[:, :-1], "actionness": attn,
            "action_flow": attn, "action_rgb": attn,
            "thresholds": wtalc_proposals.activation_thresholds(hp.num_thresholds).tolist()}

  def load_authors_checkpoint(self, path: str):
    return torch_names.load_checkpoint(path)


CO2NET_METHOD = CO2NetMethod()
