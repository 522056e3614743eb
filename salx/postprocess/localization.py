"""Localization: a batch of model outputs -> scored, suppressed detections.

SPEC sections 3 (THUMOS14) and 4 (ActivityNet). For each video b of the batch,
from its first T_b = valid_lengths[b] snippets of the class activation sequence
`cas` [T_b, C] (logits), the actionness `action_flow`, `action_rgb` [T_b], the
semantic video logits [C] and the video's original snippet count L_b:

  1. combined score comb = w_s * softmax(cas) + w_f * a_flow + w_r * a_rgb  [T_b, C],
  2. video class scores s = softmax(beta * cas_top + (1 - beta) * video_logits)  [C],
     cas_top = mean of cas over the top k = T_b // divisor snippets of comb per
     class (k = 0: NaN scores, no class, no detection),
  3. predicted classes: s >= class_thresh, else the argmax class alone,
  4. comb[:, c] of every predicted class upsampled linearly by `scale`,
  5. proposals: runs of positions >= th for every activation threshold th, scored
     by the outer-inner contrast (OIC) plus gamma * s[c], timed in seconds with
     t_factor = 16 L_b / (scale * T_b * 25) (a video kept whole, T_b = L_b, has
     a fixed step of 16 frames at 25 fps),
  6. per predicted class, soft-NMS (or plain NMS) over the proposals of all
     thresholds; output: the kept list, then the set-aside list.

NumPy throughout, vectorized over videos, positions and proposals: one "curve"
is one (video, predicted class), and every step works on all curves of videos
of equal T_b at once. The curves are computed in `dtype`; sums of curve values
accumulate in float64 and comparisons with thresholds are made in float64.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Optional, Sequence

import numpy as np

from salx.postprocess import curves as curves_lib
from salx.postprocess import nms
from salx.postprocess import scores as scores_lib
from salx.postprocess.detections import Detections

# Videos localized together: large enough to keep numpy calls few, small
# enough for the [V, C, T] score arrays to stay in cache (measured best).
_CHUNK_VIDEOS = 32


@dataclasses.dataclass(frozen=True)
class Localization:
  """Localization of a batch of B videos.

  Attributes:
    detections: the detections of the B videos (video index = batch row), each
      video's in the authors' output order: per predicted class, the soft-NMS
      kept list then the set-aside list.
    video_scores: [B, C] video class scores s (NaN for a video too short to
      score).
    predicted: [B, C] bool predicted classes, the argmax fallback included.
  """
  detections: Detections
  video_scores: np.ndarray
  predicted: np.ndarray

  @staticmethod
  def concatenate(parts: Sequence["Localization"]) -> "Localization":
    """The localizations of consecutive batches as one."""
    return Localization(Detections.concatenate([p.detections for p in parts]),
                        np.concatenate([p.video_scores for p in parts]),
                        np.concatenate([p.predicted for p in parts]))


def oic_contrast(curves: curves_lib.UpsampledCurves, runs: curves_lib.Runs,
                 outer_lambda: float) -> np.ndarray:
  """Outer-inner contrast inner - outer of each run  [R] float64 (SPEC 3.5).

  inner = mean of the curve over [i0, i1], n = i1 - i0 + 1; outer = mean of the
  curve over max(0, int(i0 - lam * n)) .. i0 - 1 and i1 + 1 .. min(N - 1,
  int(i1 + lam * n)), 0 when that is empty. Both read the upsampled curve
  itself, not the thresholded one.

  Args:
    curves: K upsampled curves; runs: their runs; outer_lambda: lam.
  """
  n_pos = curves.num_positions
  k, s, e = runs.curve, runs.start, runs.end
  n = e - s + 1
  outer_s = np.maximum(0, np.trunc(s - outer_lambda * n).astype(np.int64))
  outer_e = np.minimum(n_pos - 1, np.trunc(e + outer_lambda * n).astype(np.int64))
  at = curves.prefix_sum
  sum_s, sum_e = at(k, s), at(k, e + 1)
  inner = (sum_e - sum_s) / n
  outer_n = (s - outer_s) + (outer_e - e)
  outer_sum = (sum_s - at(k, outer_s)) + (at(k, outer_e + 1) - sum_e)
  outer = np.where(outer_n > 0, outer_sum / np.maximum(outer_n, 1), 0.0)
  return inner - outer


def seconds_per_position(num_snippets, num_segments: int, variant: Any):
  """t_factor = (16 * L) / (scale * T * 25): seconds per upsampled position."""
  return ((variant.frames_per_segment * np.asarray(num_snippets, np.int64))
          / (variant.upsample_scale * num_segments * variant.feature_fps))


def _no_detections(dtype):
  """Empty video [0], class [0], score [0], start [0], end [0]."""
  return (np.zeros(0, np.int64), np.zeros(0, np.int64), np.zeros(0, dtype),
          np.zeros(0), np.zeros(0))


def _localize_stack(cas: np.ndarray, action_flow: np.ndarray,
                    action_rgb: np.ndarray, video_logits: np.ndarray,
                    num_snippets: np.ndarray, variant: Any):
  """Localize V videos of equal T.

  Args:
    cas: [V, T, C]; action_flow, action_rgb: [V, T]; video_logits: [V, C];
    num_snippets: [V] original snippet counts L.
  Returns:
    video_scores [V, C], predicted [V, C] bool, and per output detection (in
    output order, videos in order): video [M], class [M], score [M], start [M],
    end [M].
  """
  t = cas.shape[1]
  cas = np.ascontiguousarray(cas.transpose(0, 2, 1))  # class-major [V, C, T]
  comb = scores_lib.combined_score(cas, action_flow, action_rgb,
                                   variant.combine_weights, class_axis=-2)
  scores = scores_lib.video_class_scores(cas, comb, video_logits, variant, class_axis=-2)
  predicted = scores_lib.predict_classes(scores, variant.class_thresh)
  video, klass = np.nonzero(predicted)  # one curve per (video, predicted class)
  if video.size == 0:
    return (scores, predicted, *_no_detections(cas.dtype))
  curves = curves_lib.UpsampledCurves(comb[video, klass], variant.upsample_scale)
  runs = curves_lib.curve_runs(curves, variant.act_thresholds)
  contrast = oic_contrast(curves, runs, variant.outer_lambda)
  r_video, r_class = video[runs.curve], klass[runs.curve]
  score = contrast + variant.gamma * scores[r_video, r_class].astype(np.float64)
  score = score.astype(cas.dtype)
  t_factor = seconds_per_position(num_snippets, t, variant)[r_video]
  start = runs.start * t_factor
  end = (runs.end + 1) * t_factor
  index, score = nms.suppress(runs.curve, score, start, end, variant.nms_thresh,
                              variant.nms_alpha, soft=variant.soft_nms)
  return (scores, predicted, r_video[index], r_class[index], score,
          start[index], end[index])


def _batch_array(name: str, x, dtype, shape) -> np.ndarray:
  x = np.asarray(x, dtype)
  if x.shape != shape:
    raise ValueError(f"localize: {name} must have shape {list(shape)}, got {list(x.shape)}")
  return x


def localize(cas: np.ndarray, action_flow: np.ndarray, action_rgb: np.ndarray,
             video_logits: np.ndarray, valid_lengths: Optional[np.ndarray],
             num_snippets: np.ndarray, variant: Any, *,
             video_names: Sequence[str], class_names: Sequence[str],
             dtype=np.float64) -> Localization:
  """Localize the actions of a batch of videos (SPEC 3, 4).

  Args:
    cas: [B, T, C] class activation logits (not background-suppressed).
    action_flow, action_rgb: [B, T] actionness.
    video_logits: [B, C] semantic video logits sc.
    valid_lengths: [B] snippets of each row that are real, T_b <= T (the rest
      is padding, never read); None: all T.
    num_snippets: [B] L, each video's snippet count before sampling.
    variant: the inference settings of a `SALHparams` (read by attribute).
    video_names: the B video names; class_names: the C class names.
    dtype: float dtype of the computation.
  Returns:
    Localization: detections (video index = batch row), video_scores [B, C],
    predicted [B, C].
  """
  cas = np.asarray(cas, dtype)
  if cas.ndim != 3 or cas.shape[2] != len(class_names):
    raise ValueError(f"localize: cas must have shape [B, T, {len(class_names)}], "
                     f"got {list(cas.shape)}")
  b, t, c = cas.shape
  flow = _batch_array("action_flow", action_flow, dtype, (b, t))
  rgb = _batch_array("action_rgb", action_rgb, dtype, (b, t))
  logits = _batch_array("video_logits", video_logits, dtype, (b, c))
  lengths = np.full(b, t, np.int64) if valid_lengths is None else _batch_array(
      "valid_lengths", valid_lengths, np.int64, (b,))
  snippets = _batch_array("num_snippets", num_snippets, np.int64, (b,))
  if len(video_names) != b:
    raise ValueError(f"localize: {len(video_names)} video names for a batch of {b}")
  if np.any((lengths < 0) | (lengths > t)):
    raise ValueError(f"localize: valid_lengths must lie in [0, {t}], got "
                     f"{lengths[(lengths < 0) | (lengths > t)][0]}")
  video_scores = np.empty((b, c), dtype)
  predicted = np.empty((b, c), bool)
  parts = [_no_detections(dtype)]
  # Videos of equal T_b together, `_CHUNK_VIDEOS` at a time.
  for length in np.unique(lengths):
    rows = np.flatnonzero(lengths == length)
    for i in range(0, rows.size, _CHUNK_VIDEOS):
      r = rows[i:i + _CHUNK_VIDEOS]
      s, p, *found = _localize_stack(cas[r, :length], flow[r, :length], rgb[r, :length],
                                     logits[r], snippets[r], variant)
      video_scores[r], predicted[r] = s, p
      found[0] = r[found[0]]
      parts.append(found)
  video, label, score, start, end = (np.concatenate(x) for x in zip(*parts))
  if np.any(np.diff(video) < 0):  # rows of several lengths: back to batch order
    order = np.argsort(video, kind="stable")
    video, label, score, start, end = (x[order] for x in (video, label, score, start, end))
  detections = Detections(tuple(str(v) for v in video_names), tuple(class_names),
                          video, label, score, start, end)
  return Localization(detections, video_scores, predicted)
