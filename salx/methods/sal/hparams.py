"""SAL's hyperparameters, and its two presets (the THUMOS14 and ActivityNet code paths).

Every number of the method (docs/sal.md sections 1 to 5) lives in one frozen
`SALHparams`, a JAX pytree: its float fields are leaves, so K members trained in
one step each have their own (`jax.vmap` over a stacked `SALHparams`), while the
fields that fix shapes or control flow (T, top-k divisors, widths, threshold lists)
are static and shared. Model, losses, pseudo labels, localization and evaluation
read their settings from it; nothing branches on a dataset name.
"""

from __future__ import annotations

from typing import Optional, Tuple

import numpy as np

from salx.core import constants
from salx.core import hparams as hparams_lib


# The activation thresholds as the authors' code computes them.
ACT_THRESHOLDS = tuple(np.arange(0.1, 1.0, 0.1).tolist())


@hparams_lib.pytree_dataclass
class LossWeights:
  """Weights of the loss terms: total = sum of weight * term (SPEC 2.7, 4)."""
  mil: float = 1.0
  mc: float = 5.0
  bg: float = 10.0
  act: float = 1.0
  se: float = 3.0
  mix: float = 1.0


@hparams_lib.pytree_dataclass
class SALHparams:
  """Hyperparameters of SAL (one code path: a preset, possibly changed).

  Attributes:
    name: the preset it started from: 'thumos14' or 'activitynet'.
    learning_rate, weight_decay: Adam's step size and its coupled L2 decay (SPEC 2.8).
    hidden_dim: H, the embedding width (512).
    dropout_rate: dropout after each embedding (0.5).
    encoder_kernel: kernel of the main embedding conv (3 THUMOS, 7 ActivityNet).
    rgb_weight: lam in a = (1 - lam) * a_flow + lam * a_rgb.
    num_segments: T, snippets per sampled video.
    mil_topk_divisor: k = T // divisor for the MIL top-k (8 THUMOS, 4 ActivityNet).
    mil_on_combined: select MIL snippets by the combined score (THUMOS) or by cas itself.
    bg_topk_divisor: k = T // divisor for the background top-k.
    pseudo_topk_extra: THUMOS pseudo label takes the top T // r + extra actionness snippets.
    pseudo_topk_fixed: ActivityNet takes a fixed number of snippets (40); None for THUMOS.
    confidence_gate: multiply by the top T // 2 snippets of sum_c relu(cas) (THUMOS only).
    mask_ema: momentum of the running (mu, var) of the adaptive mask.
    mask_var_factor: w = exp(-min(m - mu, 0)^2 / (mask_var_factor * var)).
    gce_q: q of the generalized cross-entropy.
    loss_weights: weights of the loss terms.
    combine_weights: (softmax(cas), a_flow, a_rgb) weights of the combined score used
      to select snippets at inference (and in THUMOS training).
    inference_topk_divisor: k = T // divisor for the inference video score.
    beta: s = softmax(beta * cas_top + (1 - beta) * video_logits).
    class_thresh: classes with s >= class_thresh are predicted (argmax if none).
    upsample_scale: linear upsampling factor of the curves before thresholding.
    act_thresholds: activation thresholds for proposals.
    outer_lambda: relative width of the outer region of the OIC score.
    gamma: weight of the video score added to each proposal score.
    nms_thresh: soft-NMS IoU threshold.
    nms_alpha: soft-NMS Gaussian decay.
    soft_nms: soft-NMS (True) or hard NMS.
    tiou_thresholds: evaluation tIoU thresholds.
    feature_fps, frames_per_segment: 25 fps and 16 frames per snippet.
    sampling: how snippets are sampled to T in training and testing: 'thumos14'
      (SPEC 2.9 and 3) or 'activitynet' (SPEC 4).
  """
  name: str
  encoder_kernel: int
  rgb_weight: float
  num_segments: int
  mil_topk_divisor: int
  mil_on_combined: bool
  bg_topk_divisor: int
  pseudo_topk_extra: int
  pseudo_topk_fixed: Optional[int]
  confidence_gate: bool
  mask_ema: float
  mask_var_factor: float
  gce_q: float
  loss_weights: LossWeights
  combine_weights: Tuple[float, float, float]
  inference_topk_divisor: int
  beta: float
  class_thresh: float
  upsample_scale: int = 24
  act_thresholds: Tuple[float, ...] = ACT_THRESHOLDS
  outer_lambda: float = 0.2
  gamma: float = 0.2
  nms_thresh: float = 0.4
  nms_alpha: float = 0.3
  soft_nms: bool = True
  tiou_thresholds: Tuple[float, ...] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
  feature_fps: float = hparams_lib.static(default=constants.FEATURE_FPS)
  frames_per_segment: int = constants.SNIPPET_FRAMES
  sampling: str = "thumos14"
  learning_rate: float = 1e-4
  weight_decay: float = 5e-4
  hidden_dim: int = 512
  dropout_rate: float = hparams_lib.static(default=0.5)

  def mil_topk(self, num_segments: int) -> int:
    return max(1, num_segments // self.mil_topk_divisor)

  def bg_topk(self, num_segments: int) -> int:
    return max(1, num_segments // self.bg_topk_divisor)

  def pseudo_topk(self, num_segments: int) -> int:
    if self.pseudo_topk_fixed is not None:
      return self.pseudo_topk_fixed
    return num_segments // self.mil_topk_divisor + self.pseudo_topk_extra

  def inference_topk(self, num_segments: int) -> int:
    return max(1, num_segments // self.inference_topk_divisor)

  def largest_topk(self, num_segments: int) -> int:
    """The largest top-k the training step takes over T snippets."""
    ks = [self.mil_topk(num_segments), self.bg_topk(num_segments),
          self.pseudo_topk(num_segments), self.inference_topk(num_segments)]
    if self.confidence_gate:
      ks.append(num_segments // 2)
    return max(ks)


THUMOS14 = SALHparams(
    name="thumos14",
    encoder_kernel=3,
    rgb_weight=0.1,
    num_segments=750,
    mil_topk_divisor=8,
    mil_on_combined=True,
    bg_topk_divisor=8,
    pseudo_topk_extra=17,
    pseudo_topk_fixed=None,
    confidence_gate=True,
    mask_ema=0.7,
    mask_var_factor=0.5,
    gce_q=0.5,
    loss_weights=LossWeights(mil=1.0, mc=5.0, bg=10.0, act=1.0, se=3.0, mix=1.0),
    combine_weights=(1.0 / 3.0, 1.0 / 3.0, 1.0 / 3.0),
    inference_topk_divisor=8,
    beta=0.35,
    class_thresh=0.25,
    nms_thresh=0.4,
    nms_alpha=0.3,
    tiou_thresholds=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
)

ACTIVITYNET = SALHparams(
    name="activitynet",
    encoder_kernel=7,
    rgb_weight=0.3,
    num_segments=50,
    mil_topk_divisor=4,
    mil_on_combined=False,
    bg_topk_divisor=8,
    pseudo_topk_extra=0,
    pseudo_topk_fixed=40,
    confidence_gate=False,
    mask_ema=0.99,
    mask_var_factor=6.0,
    gce_q=0.5,
    loss_weights=LossWeights(mil=1.0, mc=20.0, bg=1.0, act=1.0, se=3.0, mix=1.0),
    combine_weights=(0.6, 0.2, 0.2),
    inference_topk_divisor=4,
    beta=0.5,
    class_thresh=0.1,
    nms_thresh=0.7,
    nms_alpha=0.35,
    tiou_thresholds=tuple(np.linspace(0.5, 0.95, 10).tolist()),
    sampling="activitynet",
)

PRESETS = {"thumos14": THUMOS14, "activitynet": ACTIVITYNET}
SAMPLINGS = ("thumos14", "activitynet")

# Field -> (check, what a good value is), as `SALMethod.hparams_problems` applies them.
RULES = (
    ("encoder_kernel", lambda x: hparams_lib.whole(1)(x) and x % 2 == 1, "an odd positive integer"),
    ("rgb_weight", hparams_lib.PROBABILITY, "in [0, 1]"),
    ("mil_topk_divisor", hparams_lib.whole(1), "a positive integer"),
    ("mil_on_combined", hparams_lib.is_bool, "True or False"),
    ("bg_topk_divisor", hparams_lib.whole(1), "a positive integer"),
    ("pseudo_topk_extra", hparams_lib.whole(0), "a non-negative integer"),
    ("pseudo_topk_fixed", lambda x: x is None or hparams_lib.whole(1)(x), "None or a positive integer"),
    ("confidence_gate", hparams_lib.is_bool, "True or False"),
    ("mask_ema", hparams_lib.within(0.0, 1.0, high_open=True), "in [0, 1)"),
    ("mask_var_factor", hparams_lib.POSITIVE, "positive"),
    ("gce_q", hparams_lib.within(0.0, 1.0, low_open=True), "in (0, 1]"),
    ("combine_weights", hparams_lib.sequence_of(hparams_lib.NON_NEGATIVE, 3), "3 non-negative numbers"),
    ("inference_topk_divisor", hparams_lib.whole(1), "a positive integer"),
    ("beta", hparams_lib.PROBABILITY, "in [0, 1]"),
    ("class_thresh", hparams_lib.PROBABILITY, "in [0, 1]"),
    ("upsample_scale", hparams_lib.whole(1), "a positive integer"),
    ("act_thresholds", hparams_lib.sequence_of(hparams_lib.within(0.0, 1.0, low_open=True, high_open=True)),
     "numbers in (0, 1)"),
    ("outer_lambda", hparams_lib.NON_NEGATIVE, "non-negative"),
    ("gamma", hparams_lib.is_number, "a number"),
    ("nms_thresh", hparams_lib.within(0.0, 1.0, low_open=True), "in (0, 1]"),
    ("nms_alpha", hparams_lib.POSITIVE, "positive"),
    ("soft_nms", hparams_lib.is_bool, "True or False"),
    ("tiou_thresholds", hparams_lib.sequence_of(hparams_lib.within(0.0, 1.0, low_open=True)), "numbers in (0, 1]"),
    ("feature_fps", hparams_lib.POSITIVE, "positive"),
    ("frames_per_segment", hparams_lib.whole(1), "a positive integer"),
    ("sampling", lambda x: x in SAMPLINGS, f"one of {SAMPLINGS}"),
) + tuple((f"loss_weights.{name}", hparams_lib.NON_NEGATIVE, "non-negative")
          for name in ("mil", "mc", "bg", "act", "se", "mix")) + (
    ("learning_rate", hparams_lib.POSITIVE, "positive"),
    ("weight_decay", hparams_lib.NON_NEGATIVE, "non-negative"),
    ("hidden_dim", hparams_lib.whole(1), "a positive integer"),
    ("num_segments", hparams_lib.whole(1), "a positive integer"),
    ("dropout_rate", hparams_lib.within(0.0, 1.0, high_open=True), "in [0, 1)"),
)
