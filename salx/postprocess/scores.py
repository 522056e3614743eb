"""Video-level scores of inference (SPEC 3.1-3.3, 4), in NumPy.

The host twins of `salx.core.scores` (which the jitted training step uses):
the selection score comb, top-k means, the video class scores s and the
predicted classes. Every function takes snippets on one axis and classes on
another, so that localization can work class-major ([..., C, T]).
"""

from __future__ import annotations

from typing import Any, Tuple

import numpy as np



def softmax(x: np.ndarray, axis: int = -1) -> np.ndarray:
  """Numerically stable softmax along `axis`."""
  e = np.subtract(x, np.max(x, axis=axis, keepdims=True))
  np.exp(e, out=e)
  e /= np.sum(e, axis=axis, keepdims=True)
  return e


def combined_score(cas: np.ndarray, action_flow: np.ndarray,
                   action_rgb: np.ndarray, weights: Tuple[float, float, float],
                   class_axis: int = -1) -> np.ndarray:
  """Snippet selection score comb  [..., T, C] (SPEC 2.1, 3.1, 4).

  Args:
    cas: [..., T, C] class activation logits ([..., C, T] with class_axis=-2).
    action_flow, action_rgb: [..., T] actionness.
    weights: (softmax(cas), a_flow, a_rgb) weights: THUMOS14 (1/3, 1/3, 1/3),
      ActivityNet (0.6, 0.2, 0.2).
    class_axis: -1 for [..., T, C], -2 for class-major [..., C, T].
  Returns:
    comb in the layout of `cas`.
  """
  w_s, w_f, w_r = weights
  p = softmax(cas, axis=class_axis)
  expand = (..., None) if class_axis == -1 else (..., None, slice(None))
  a_flow, a_rgb = action_flow[expand], action_rgb[expand]
  if w_s == w_f == w_r:
    # Equal weights in the THUMOS14 code's own arithmetic: (p + a_flow + a_rgb) / 3.
    p += a_flow
    p += a_rgb
    p *= 3 * w_s
    p /= 3
    return p
  # The ActivityNet code's order: 0.6 softmax + 0.2 a_rgb + 0.2 a_flow.
  return w_s * p + w_r * a_rgb + w_f * a_flow


def topk_mean(values: np.ndarray, select_by: np.ndarray, k: int,
              axis: int = -2) -> np.ndarray:
  """Mean of `values` over the top-k entries of `select_by` along `axis`.

  Args:
    values, select_by: [..., T, C] (or any layout, T on `axis`).
    k: number of snippets, 1 <= k <= T.
  Returns:
    The mean, `axis` removed ([..., C]).
  """
  n = select_by.shape[axis]
  if not 1 <= k <= n:
    raise ValueError(f"top-k needs 1 <= k <= T, got k={k} for T={n}")
  kth = np.take(np.partition(select_by, n - k, axis=axis), [n - k], axis=axis)
  chosen = select_by >= kth
  if np.all(np.sum(chosen, axis=axis) == k):
    return np.sum(np.where(chosen, values, 0), axis=axis) / k
  # Ties at the k-th value: take exactly k of them.
  index = np.take(np.argpartition(-select_by, k - 1, axis=axis), np.arange(k), axis=axis)
  return np.take_along_axis(values, index, axis=axis).mean(axis=axis)


def video_class_scores(cas: np.ndarray, comb: np.ndarray,
                       video_logits: np.ndarray, variant: Any,
                       class_axis: int = -1) -> np.ndarray:
  """s = softmax(beta * cas_top + (1 - beta) * video_logits)  [..., C] (SPEC 3.2).

  cas_top is the mean of cas over the top k = T // inference_topk_divisor
  snippets of comb per class. When k is 0 (T shorter than the divisor) the
  authors' code averages nothing: the scores are NaN.

  Args:
    cas, comb: [..., T, C] ([..., C, T] with class_axis=-2); video_logits: [..., C].
  """
  time_axis = -2 if class_axis == -1 else -1
  k = cas.shape[time_axis] // variant.inference_topk_divisor
  if k == 0:
    return np.full(video_logits.shape, np.nan, np.result_type(cas, video_logits))
  cas_top = topk_mean(cas, comb, k, axis=time_axis)
  return softmax(variant.beta * cas_top + (1 - variant.beta) * video_logits)


def predict_classes(video_scores: np.ndarray, class_thresh: float) -> np.ndarray:
  """Predicted-class mask [..., C] (SPEC 3.3).

  s >= class_thresh, else the argmax class alone; a video whose scores are
  NaN (too short to score) predicts no class.
  """
  mask = video_scores >= class_thresh
  rows = mask.reshape(-1, mask.shape[-1])
  scores = video_scores.reshape(rows.shape)
  none = np.flatnonzero(~rows.any(axis=1) & ~np.isnan(scores).any(axis=1))
  if none.size:
    rows[none, np.argmax(scores[none], axis=1)] = True
  return mask
