"""The two SAL variants (THUMOS14 and ActivityNet) as data.

Every number that differs between the authors' THUMOS14 and ActivityNet code paths
(SPEC sections 2 to 4) lives in one frozen `Variant`. Model, losses, pseudo labels,
localization and evaluation read their settings from it; nothing branches on a
dataset name.
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Tuple

import numpy as np

from salx.core import constants


# The activation thresholds as the authors' code computes them.
ACT_THRESHOLDS = tuple(np.arange(0.1, 1.0, 0.1).tolist())


@dataclasses.dataclass(frozen=True)
class LossWeights:
  """Weights of the loss terms: total = sum of weight * term (SPEC 2.7, 4)."""
  mil: float = 1.0
  mc: float = 5.0
  bg: float = 10.0
  act: float = 1.0
  se: float = 3.0
  mix: float = 1.0


@dataclasses.dataclass(frozen=True)
class Variant:
  """Hyperparameters of one SAL code path.

  Attributes:
    name: 'thumos14' or 'activitynet'.
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
  feature_fps: float = constants.FEATURE_FPS
  frames_per_segment: int = constants.SNIPPET_FRAMES
  sampling: str = "thumos14"

  def replace(self, **changes) -> "Variant":
    return dataclasses.replace(self, **changes)

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


THUMOS14 = Variant(
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

ACTIVITYNET = Variant(
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

VARIANTS = {"thumos14": THUMOS14, "activitynet": ACTIVITYNET}


def get_variant(name: str) -> Variant:
  try:
    return VARIANTS[name]
  except KeyError:
    raise ValueError(
        f"Unknown SAL variant {name!r}; expected one of {sorted(VARIANTS)}") from None
