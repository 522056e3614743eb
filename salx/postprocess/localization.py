"""Inference and localization: model outputs -> scored, suppressed detections.

SPEC sections 3 (THUMOS14) and 4 (ActivityNet). For each video, from the class
activation sequence `cas` [T, C] (logits), the actionness `action_flow`,
`action_rgb` [T], the semantic video logits [C] and the video's original snippet
count L:

  1. combined score comb = w_s * softmax(cas) + w_f * a_flow + w_r * a_rgb  [T, C],
  2. video class scores s = softmax(beta * cas_top + (1 - beta) * video_logits)  [C],
     cas_top = mean of cas over the top k = T // divisor snippets of comb per class,
  3. predicted classes: s >= class_thresh, else the argmax class alone,
  4. comb[:, c] of every predicted class upsampled linearly by `scale`  [P, T * scale],
  5. proposals: runs of positions >= th for every activation threshold th, scored
     by the outer-inner contrast (OIC) plus gamma * s[c], timed in seconds,
  6. per predicted class, soft-NMS (or plain NMS) over the proposals of all
     thresholds; output: the kept list, then the set-aside list.

NumPy throughout, vectorized over videos, positions and proposals: one "curve"
is one (video, predicted class), and every step works on all curves of a batch
at once. The curves are computed in `dtype`; sums of curve values accumulate in
float64 and comparisons with thresholds are made in float64.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Dict, List, Mapping, Sequence, Tuple

import numpy as np

from salx.core.variants import Variant

# Videos localized together: large enough to keep numpy calls few, small
# enough for the [V, C, T] score arrays to stay in cache (measured best).
_CHUNK_VIDEOS = 32


@dataclasses.dataclass(frozen=True)
class Proposals:
  """Flat proposals (detections) as arrays.

  Attributes:
    class_index: [N] int, index into the class names.
    score: [N] float, OIC score (after soft-NMS: the possibly decayed score).
    start, end: [N] float64, segment in seconds.
  """
  class_index: np.ndarray
  score: np.ndarray
  start: np.ndarray
  end: np.ndarray

  def __len__(self) -> int:
    return int(self.score.shape[0])

  def take(self, index) -> "Proposals":
    return Proposals(self.class_index[index], self.score[index],
                     self.start[index], self.end[index])

  @staticmethod
  def concatenate(parts: Sequence["Proposals"]) -> "Proposals":
    if not parts:
      return Proposals(np.zeros(0, np.int64), np.zeros(0), np.zeros(0), np.zeros(0))
    return Proposals(*(np.concatenate([getattr(p, f.name) for p in parts])
                       for f in dataclasses.fields(Proposals)))


@dataclasses.dataclass(frozen=True)
class VideoLocalization:
  """Localization result of one video.

  Attributes:
    video_scores: [C] video class scores s (softmax).
    predicted_classes: [P] int, predicted class indices (ascending, or the
      argmax class alone).
    proposals: the detections in the authors' output order: per predicted
      class, the soft-NMS kept list then the set-aside list.
    class_names: the C class names; class index c has label class_names[c].
  """
  video_scores: np.ndarray
  predicted_classes: np.ndarray
  proposals: Proposals
  class_names: Tuple[str, ...]

  @property
  def detections(self) -> List[dict]:
    """The detections as ActivityNet JSON entries {label, score, segment}."""
    p, names = self.proposals, self.class_names
    return [{"label": names[c], "score": s, "segment": [a, b]}
            for c, s, a, b in zip(p.class_index.tolist(), p.score.tolist(),
                                  p.start.tolist(), p.end.tolist())]


# ---------------------------------------------------------------------------
# Video-level scores (SPEC 3.1-3.3).


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
  k = min(k, n)
  kth = np.take(np.partition(select_by, n - k, axis=axis), [n - k], axis=axis)
  chosen = select_by >= kth
  if np.all(np.sum(chosen, axis=axis) == k):
    return np.sum(np.where(chosen, values, 0), axis=axis) / k
  # Ties at the k-th value: take exactly k of them.
  index = np.take(np.argpartition(-select_by, k - 1, axis=axis), np.arange(k), axis=axis)
  return np.take_along_axis(values, index, axis=axis).mean(axis=axis)


def video_class_scores(cas: np.ndarray, comb: np.ndarray,
                       video_logits: np.ndarray, variant: Variant,
                       class_axis: int = -1) -> np.ndarray:
  """s = softmax(beta * cas_top + (1 - beta) * video_logits)  [..., C] (SPEC 3.2).

  Args:
    cas, comb: [..., T, C] ([..., C, T] with class_axis=-2); video_logits: [..., C].
  """
  time_axis = -2 if class_axis == -1 else -1
  k = variant.inference_topk(cas.shape[time_axis])
  cas_top = topk_mean(cas, comb, k, axis=time_axis)
  return softmax(variant.beta * cas_top + (1 - variant.beta) * video_logits)


def predict_classes(video_scores: np.ndarray, class_thresh: float) -> np.ndarray:
  """Predicted-class mask [..., C]: s >= class_thresh, else the argmax alone."""
  mask = video_scores >= class_thresh
  rows = mask.reshape(-1, mask.shape[-1])
  none = np.flatnonzero(~rows.any(axis=1))
  if none.size:
    rows[none, np.argmax(video_scores.reshape(rows.shape)[none], axis=1)] = True
  return mask


# ---------------------------------------------------------------------------
# Curves and proposals (SPEC 3.4-3.5).


@functools.lru_cache(maxsize=32)
def _upsample_plan(num_segments: int, scale: int) -> Tuple[np.ndarray, np.ndarray]:
  """Interval (lower sample index) and offset from it of every upsampled position."""
  x = np.arange(0, num_segments, 1 / scale)
  lo = np.clip(np.searchsorted(np.arange(num_segments), x), 1, num_segments - 1) - 1
  offset = x - lo
  lo.setflags(write=False)
  offset.setflags(write=False)
  return lo, offset


def upsample_linear(curves: np.ndarray, scale: int) -> np.ndarray:
  """Linear upsampling with linear extrapolation past the last sample (dense).

  Sample points x = 0, 1/scale, 2/scale, ... < T (np.arange(0, T, 1 / scale));
  x in (j - 1, j] interpolates between samples j - 1 and j (x = 0 uses 0 and 1),
  and points past T - 1 extrapolate from the last two samples, as
  (y_j - y_{j-1}) * (x - (j - 1)) + y_{j-1}: scipy interp1d's arithmetic, bit
  for bit. `UpsampledCurves` gives the same values without materializing them.

  Args:
    curves: [K, T], one curve per row, T >= 2.
    scale: upsampling factor.
  Returns:
    [K, N] in the dtype of `curves`, N = len(np.arange(0, T, 1 / scale)).
  """
  t = curves.shape[-1]
  if t < 2:
    raise ValueError(f"linear upsampling needs at least 2 snippets, got {t}")
  lo, offset = _upsample_plan(t, int(scale))
  y_lo = curves[:, lo]
  out = curves[:, lo + 1]
  out -= y_lo
  out *= offset.astype(curves.dtype, copy=False)
  out += y_lo
  return out


@dataclasses.dataclass(frozen=True)
class _IntervalPlan:
  """Upsampled positions grouped by interval j = [sample j, sample j + 1].

  Attributes:
    lo: [N + 1] interval of each position (T - 1 for the end position N).
    offset: [N] x - lo.
    first, last: [T - 1] first and last position of each interval.
    before: [N + 1] positions before p in its interval.
    offset_before: [N + 1] sum of the offsets before p in its interval.
    count, offset_sum: [T - 1] positions and sum of offsets per interval.
  """
  lo: np.ndarray
  offset: np.ndarray
  first: np.ndarray
  last: np.ndarray
  before: np.ndarray
  offset_before: np.ndarray
  count: np.ndarray
  offset_sum: np.ndarray


@functools.lru_cache(maxsize=32)
def _interval_plan(num_segments: int, scale: int) -> _IntervalPlan:
  lo, offset = _upsample_plan(num_segments, scale)
  intervals = np.arange(num_segments - 1)
  first = np.searchsorted(lo, intervals, "left")
  last = np.searchsorted(lo, intervals, "right") - 1
  if np.any(last < first):
    raise ValueError(f"scale {scale} leaves an interval without positions")
  cum = np.concatenate([[0.0], np.cumsum(offset)])
  position = np.arange(lo.size)
  before = np.append(position - first[lo], 0)
  offset_before = np.append(cum[position] - cum[first[lo]], 0.0)
  return _IntervalPlan(np.append(lo, num_segments - 1), offset, first, last,
                       before, offset_before, last - first + 1,
                       cum[last + 1] - cum[first])


class UpsampledCurves:
  """Coarse curves [K, T] read as their linear upsampling [K, N].

  The upsampled values (those of `upsample_linear`, bit for bit) are computed
  only where asked; sums over positions come from closed forms per interval.
  Within an interval the upsampled values are monotone (each step of
  (y_{j+1} - y_j) * offset + y_j rounds monotonically), which lets
  `curve_runs` find threshold crossings by bisection.
  """

  def __init__(self, coarse: np.ndarray, scale: int):
    """coarse: [K, T] with T >= 2."""
    k, t = coarse.shape
    if t < 2:
      raise ValueError(f"linear upsampling needs at least 2 snippets, got {t}")
    self.coarse = coarse
    self.plan = _interval_plan(t, int(scale))
    self.num_positions = self.plan.offset.size
    self.slope = coarse[:, 1:] - coarse[:, :-1]  # [K, T - 1], as upsample_linear
    self._offset = self.plan.offset.astype(coarse.dtype, copy=False)
    y64 = coarse.astype(np.float64)
    d64 = np.diff(y64, axis=1)
    totals = d64 * self.plan.offset_sum + self.plan.count * y64[:, :-1]
    self._cumulative = np.zeros((k, t))  # sum over the intervals before j
    np.cumsum(totals, axis=1, out=self._cumulative[:, 1:])
    self._y64 = y64
    self._d64 = np.concatenate([d64, np.zeros((k, 1))], axis=1)

  def value_at(self, curve: np.ndarray, interval: np.ndarray,
               position: np.ndarray) -> np.ndarray:
    """Upsampled value of `curve` at `position` (lying in `interval`)."""
    return (self.slope[curve, interval] * self._offset[position]
            + self.coarse[curve, interval])

  def prefix_sum(self, curve: np.ndarray, position: np.ndarray) -> np.ndarray:
    """float64 sum of the upsampled values of `curve` over [0, position)."""
    plan = self.plan
    j = plan.lo[position]
    return (self._cumulative[curve, j] + self._d64[curve, j] * plan.offset_before[position]
            + plan.before[position] * self._y64[curve, j])


@dataclasses.dataclass(frozen=True)
class Runs:
  """Runs of consecutive positions at or above an activation threshold.

  Ordered by (curve, threshold, start): for each curve the runs of the first
  threshold, then the second, ... (the order in which the authors pool them).

  Attributes:
    curve: [R] int, row of the curve.
    threshold: [R] int, index into the thresholds.
    start, end: [R] int, first and last position (inclusive).
  """
  curve: np.ndarray
  threshold: np.ndarray
  start: np.ndarray
  end: np.ndarray


def _check_thresholds(thresholds: Sequence[float]) -> np.ndarray:
  th = np.asarray(thresholds, dtype=np.float64)
  if th.size == 0 or np.any(np.diff(th) <= 0) or th[0] <= 0:
    raise ValueError(f"activation thresholds must be positive and ascending, got "
                     f"{list(thresholds)}")
  return th


def threshold_levels(values: np.ndarray, thresholds: np.ndarray) -> np.ndarray:
  """Number of thresholds th <= value  (uint8, shape of `values`).

  With positive ascending thresholds a position belongs to the runs of
  thresholds 0 .. level - 1 (the authors zero values below th, then keep the
  positive ones). Comparisons are made in float64.
  """
  level = np.zeros(values.shape, np.uint8)
  above = np.empty(values.shape, bool)
  for th in thresholds:  # np.float64 scalars
    np.greater_equal(values, th, out=above)
    level += above
  return level


def _spread(curve, low, high, position):
  """One event (curve, threshold, position) per threshold index in [low, high)."""
  count = (high - low).astype(np.int64)
  low = low.astype(np.int64)
  if count.size and count.max() > 1:
    event = np.repeat(np.arange(count.size), count)
    threshold = low[event] + (np.arange(event.size) - (np.cumsum(count) - count)[event])
    return curve[event], threshold, position[event]
  one = count == 1
  return curve[one], low[one], position[one]


def _sorted_events(parts, num_thresholds: int, num_positions: int):
  """Concatenated events sorted by (curve, threshold, position)."""
  curve, threshold, position = (np.concatenate(x) for x in zip(*parts))
  key = (curve * num_thresholds + threshold) * num_positions + position
  order = np.argsort(key)
  return curve[order], threshold[order], position[order]


def _make_runs(starts, ends, num_thresholds: int, num_positions: int) -> Runs:
  """Pair start and end events into runs; drop the authors' lone [0, 0]."""
  curve, threshold, start = _sorted_events(starts, num_thresholds, num_positions)
  end = _sorted_events(ends, num_thresholds, num_positions)[2]
  lone = (start == 0) & (end == 0)
  if lone.any():
    group = curve * num_thresholds + threshold
    counts = np.bincount(group)
    keep = ~(lone & (counts[group] == 1))
    curve, threshold, start, end = curve[keep], threshold[keep], start[keep], end[keep]
  return Runs(curve, threshold, start, end)


def threshold_runs(curves: np.ndarray, thresholds: Sequence[float]) -> Runs:
  """All runs of dense curves at every activation threshold (SPEC 3.5).

  The literal definition on materialized curves (see `curve_runs` for the fast
  path). As in the authors' code, a (curve, threshold) whose only position at
  or above the threshold is position 0 yields no run (`if positions.any()`).

  Args:
    curves: [K, N] upsampled curves.
    thresholds: positive ascending activation thresholds.
  Returns:
    Runs ordered by (curve, threshold, start).
  """
  th = _check_thresholds(thresholds)
  level = threshold_levels(curves, th)
  k, n = level.shape
  zero = np.zeros(k, level.dtype)
  rows = np.arange(k)
  up_k, up_p = np.nonzero(level[:, 1:] > level[:, :-1])
  down_k, down_p = np.nonzero(level[:, :-1] > level[:, 1:])
  starts = [_spread(rows, zero, level[:, 0], np.zeros(k, np.int64)),
            _spread(up_k, level[up_k, up_p], level[up_k, up_p + 1], up_p + 1)]
  ends = [_spread(down_k, level[down_k, down_p + 1], level[down_k, down_p], down_p),
          _spread(rows, zero, level[:, -1], np.full(k, n - 1))]
  return _make_runs(starts, ends, th.size, n)


def _first_true(curves: UpsampledCurves, curve, interval, threshold_value, rising):
  """First position of each interval past its first where the curve has crossed.

  Rising: value >= threshold; falling: value < threshold. The answer lies in
  (first, last] of the interval, found by bisection on the monotone values.
  """
  lo = curves.plan.first[interval] + 1
  hi = curves.plan.last[interval].copy()
  active = lo < hi
  while active.any():
    mid = (lo + hi) // 2
    value = curves.value_at(curve, interval, mid)
    crossed = np.where(rising, value >= threshold_value, value < threshold_value)
    hi = np.where(active & crossed, mid, hi)
    lo = np.where(active & ~crossed, mid + 1, lo)
    active = lo < hi
  return lo


def curve_runs(curves: UpsampledCurves, thresholds: Sequence[float]) -> Runs:
  """`threshold_runs` of the upsampled curves, without materializing them.

  Levels (number of thresholds reached) are computed at the first and last
  position of every interval; inside an interval the values are monotone, so a
  run boundary falls at a boundary between intervals or at the one crossing of
  each threshold whose level changes within the interval, found by bisection.

  Args:
    curves: K upsampled curves.
    thresholds: positive ascending activation thresholds.
  Returns:
    Runs ordered by (curve, threshold, start); equal to
    threshold_runs(upsample_linear(coarse, scale), thresholds).
  """
  th = _check_thresholds(thresholds)
  plan = curves.plan
  k, intervals = curves.slope.shape
  rows = np.arange(k)[:, None]
  cols = np.arange(intervals)[None, :]
  head = threshold_levels(curves.value_at(rows, cols, plan.first[None, :]), th)
  tail = threshold_levels(curves.value_at(rows, cols, plan.last[None, :]), th)
  n = curves.num_positions
  zero = np.zeros(k, np.uint8)
  all_rows = np.arange(k)
  starts = [_spread(all_rows, zero, head[:, 0], np.zeros(k, np.int64))]
  ends = [_spread(all_rows, zero, tail[:, -1], np.full(k, n - 1))]
  # Between intervals j - 1 and j.
  prev, cur = tail[:, :-1], head[:, 1:]
  bk, bj = np.nonzero(cur > prev)
  starts.append(_spread(bk, prev[bk, bj], cur[bk, bj], plan.first[bj + 1]))
  bk, bj = np.nonzero(cur < prev)
  ends.append(_spread(bk, cur[bk, bj], prev[bk, bj], plan.first[bj + 1] - 1))
  # Inside interval j.
  for rising in (True, False):
    low, high = (head, tail) if rising else (tail, head)
    ik, ij = np.nonzero(high > low)
    ek, et, ej = _spread(ik, low[ik, ij], high[ik, ij], ij)
    at = _first_true(curves, ek, ej, th[et], rising)
    (starts if rising else ends).append((ek, et, at if rising else at - 1))
  return _make_runs(starts, ends, th.size, n)


def oic_contrast(curves: UpsampledCurves, runs: Runs, outer_lambda: float) -> np.ndarray:
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


def seconds_per_position(num_snippets, num_segments: int, variant: Variant):
  """t_factor = (16 * L) / (scale * T * 25): seconds per upsampled position."""
  return ((variant.frames_per_segment * np.asarray(num_snippets, np.int64))
          / (variant.upsample_scale * num_segments * variant.feature_fps))


# ---------------------------------------------------------------------------
# Suppression (SPEC 3.6).


def iou_plus_one(s1, e1, s2, e2) -> np.ndarray:
  """1-D IoU with the official "+1" convention, elementwise.

  inter = max(0, min(e1, e2) - max(s1, s2) + 1), area = e - s + 1.
  """
  inter = np.maximum(0.0, np.minimum(e1, e2) - np.maximum(s1, s2) + 1)
  return inter / ((e1 - s1 + 1) + (e2 - s2 + 1) - inter)


def _first_above(values: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                 target: np.ndarray) -> np.ndarray:
  """First index i in [lo, hi) with values[i] > target (else hi), vectorized."""
  lo, hi = lo.copy(), hi.copy()
  active = lo < hi
  while active.any():
    mid = (lo + hi) // 2
    right = values[np.minimum(mid, values.size - 1)] <= target
    lo = np.where(active & right, mid + 1, lo)
    hi = np.where(active & ~right, mid, hi)
    active = lo < hi
  return lo


def _overlapping_pairs(group: np.ndarray, start: np.ndarray, end: np.ndarray):
  """Pairs (a, b) of the same group whose "+1" intersection can be positive.

  With the group's proposals sorted by start, b follows a and starts before
  end_a + 1; every pair with IoU > 0 is among them.

  Returns:
    (a, b) proposal indices [E].
  """
  by_start = np.lexsort((start, group))
  g, s, e = group[by_start], start[by_start], end[by_start]
  position = np.arange(g.size)
  group_end = np.searchsorted(g, g, "right")
  hi = _first_above(s, position + 1, group_end, e + 1)
  count = hi - position - 1
  a = np.repeat(position, count)
  b = a + 1 + (np.arange(a.size) - np.repeat(np.cumsum(count) - count, count))
  return by_start[a], by_start[b]


def _greedy_keep(num: int, u: np.ndarray, v: np.ndarray) -> np.ndarray:
  """Greedy NMS over nodes in priority order  [num] bool, kept.

  Node v is kept unless an earlier kept node u suppresses it (edge u -> v,
  u < v). Solved in vectorized rounds: a contested node is removed once a kept
  node suppresses it and kept once all its suppressors are removed. Each round
  decides at least the first undecided node; a few rounds suffice in practice.

  Args:
    num: number of nodes; u, v: [E] edges u -> v with u < v.
  """
  kept = np.ones(num, bool)
  kept[v] = False
  removed = np.zeros(num, bool)
  undecided = ~kept
  while u.size:
    hit = np.zeros(num, bool)
    hit[v[kept[u]]] = True
    live = np.zeros(num, bool)
    live[v[~removed[u]]] = True
    now_removed = undecided & hit
    now_kept = undecided & ~live
    removed |= now_removed
    kept |= now_kept
    undecided &= ~(now_removed | now_kept)
    still = undecided[v]
    u, v = u[still], v[still]
  return kept


def suppress(group: np.ndarray, score: np.ndarray, start: np.ndarray,
             end: np.ndarray, nms_thresh: float, nms_alpha: float,
             soft: bool = True) -> Tuple[np.ndarray, np.ndarray]:
  """(Soft-)NMS within each group, all groups at once (SPEC 3.6).

  Per group: repeatedly take the highest score and keep it; the others with
  IoU >= nms_thresh with it leave the queue, in soft mode with their score times
  exp(-IoU^2 / nms_alpha) and not ranked against later picks. Soft output per
  group: the kept list, then the set-aside ones (grouped by the kept proposal
  that removed them, each group in score order); plain NMS: the kept list.
  Groups come out in ascending id order.

  Args:
    group: [N] int group ids (one group = one video and class), ascending.
    score, start, end: [N] proposals, each group in the authors' pooled order.
  Returns:
    (index [M], score [M]): proposals in output order and their scores.
  """
  n = score.size
  if n == 0:
    return np.zeros(0, np.int64), score[:0]
  # Score order within groups; equal scores: the later proposal first, as the
  # authors' argsort()[::-1].
  order = np.lexsort((-np.arange(n), -score, group))
  rank = np.empty(n, np.int64)
  rank[order] = np.arange(n)
  a, b = _overlapping_pairs(group, start, end)
  s64, e64 = start.astype(np.float64), end.astype(np.float64)
  iou = iou_plus_one(s64[a], e64[a], s64[b], e64[b])
  hit = iou >= nms_thresh
  u, v = np.minimum(rank[a[hit]], rank[b[hit]]), np.maximum(rank[a[hit]], rank[b[hit]])
  iou = iou[hit]
  kept = _greedy_keep(n, u, v)
  kept_index = order[kept]
  if not soft:
    return kept_index, score[kept_index]
  # The remover of a set-aside v: the first kept u with an edge u -> v.
  from_kept = kept[u] & ~kept[v]
  u, v, iou = u[from_kept], v[from_kept], iou[from_kept]
  by_v = np.lexsort((u, v))
  u, v, iou = u[by_v], v[by_v], iou[by_v]
  first = np.r_[True, v[1:] != v[:-1]] if v.size else np.zeros(0, bool)
  aside, remover, iou = v[first], u[first], iou[first]
  decayed = score[order[aside]] * np.exp(-np.square(iou) / nms_alpha)
  # Output: per group, kept by rank, then set-aside by (remover, own rank).
  nodes = np.concatenate([np.flatnonzero(kept), aside])
  primary = np.concatenate([np.flatnonzero(kept), remover])
  is_aside = np.r_[np.zeros(kept_index.size, bool), np.ones(aside.size, bool)]
  out = np.lexsort((nodes, primary, is_aside, group[order[nodes]]))
  index = order[nodes[out]]
  new_score = np.concatenate([score[kept_index], decayed.astype(score.dtype)])[out]
  return index, new_score


# ---------------------------------------------------------------------------
# Localization of stacked videos.


def _localize_stack(cas: np.ndarray, action_flow: np.ndarray,
                    action_rgb: np.ndarray, video_logits: np.ndarray,
                    num_snippets: np.ndarray, variant: Variant):
  """Localize V videos of equal T.

  Args:
    cas: [V, T, C]; action_flow, action_rgb: [V, T]; video_logits: [V, C];
    num_snippets: [V] original snippet counts L.
  Returns:
    video_scores [V, C], predicted [V, C] bool, and per output detection (in
    output order, videos in order): video [M], class [M], score [M], start [M],
    end [M].
  """
  num_videos, t, _ = cas.shape
  cas = np.ascontiguousarray(cas.transpose(0, 2, 1))  # class-major [V, C, T]
  comb = combined_score(cas, action_flow, action_rgb, variant.combine_weights,
                        class_axis=-2)
  scores = video_class_scores(cas, comb, video_logits, variant, class_axis=-2)
  predicted = predict_classes(scores, variant.class_thresh)
  video, klass = np.nonzero(predicted)  # one curve per (video, predicted class)
  curves = UpsampledCurves(comb[video, klass], variant.upsample_scale)
  runs = curve_runs(curves, variant.act_thresholds)
  contrast = oic_contrast(curves, runs, variant.outer_lambda)
  r_video, r_class = video[runs.curve], klass[runs.curve]
  score = contrast + variant.gamma * scores[r_video, r_class].astype(np.float64)
  score = score.astype(cas.dtype)
  t_factor = seconds_per_position(num_snippets, t, variant)[r_video]
  start = runs.start * t_factor
  end = (runs.end + 1) * t_factor
  index, score = suppress(runs.curve, score, start, end, variant.nms_thresh,
                          variant.nms_alpha, soft=variant.soft_nms)
  return (scores, predicted, r_video[index], r_class[index], score,
          start[index], end[index])


def _as_array(x, dtype, shape=None) -> np.ndarray:
  x = np.asarray(x, dtype)
  return x if shape is None else x.reshape(shape)


def localize_batch(outputs: Mapping[str, Mapping[str, np.ndarray]],
                   variant: Variant, class_names: Sequence[str],
                   dtype=np.float64) -> Dict[str, VideoLocalization]:
  """Localize every video of `outputs` (SPEC 3, 4); videos of equal T together.

  Args:
    outputs: video name -> {'cas' [T, C], 'action_flow' [T], 'action_rgb' [T],
      'sc' [C] (video logits), 'num_snippets' (L)}.
    variant: inference settings (THUMOS14 or ACTIVITYNET).
    class_names: the C class names.
    dtype: float dtype of the computation.
  Returns:
    video name -> VideoLocalization, in the order of `outputs`.
  """
  names = list(outputs)
  class_names = tuple(class_names)
  by_length: Dict[int, List[str]] = {}
  for name in names:
    cas = np.shape(outputs[name]["cas"])
    if len(cas) != 2 or cas[1] != len(class_names):
      raise ValueError(f"video {name}: cas must be [T, {len(class_names)}], got {cas}")
    by_length.setdefault(cas[0], []).append(name)
  results: Dict[str, VideoLocalization] = {}
  for t, members in by_length.items():
    for i in range(0, len(members), _CHUNK_VIDEOS):
      chunk = members[i:i + _CHUNK_VIDEOS]
      o = [outputs[m] for m in chunk]
      stacked = (
          np.stack([_as_array(x["cas"], dtype) for x in o]),
          np.stack([_as_array(x["action_flow"], dtype, (t,)) for x in o]),
          np.stack([_as_array(x["action_rgb"], dtype, (t,)) for x in o]),
          np.stack([_as_array(x["sc"], dtype, (len(class_names),)) for x in o]),
          np.asarray([int(np.asarray(x["num_snippets"])) for x in o], np.int64))
      scores, predicted, video, klass, score, start, end = _localize_stack(
          *stacked, variant)
      bounds = np.searchsorted(video, np.arange(len(chunk) + 1))
      for j, name in enumerate(chunk):
        part = slice(bounds[j], bounds[j + 1])
        results[name] = VideoLocalization(
            scores[j], np.flatnonzero(predicted[j]),
            Proposals(klass[part], score[part], start[part], end[part]), class_names)
  return {name: results[name] for name in names}


def localize_video(cas: np.ndarray, action_flow: np.ndarray,
                   action_rgb: np.ndarray, video_logits: np.ndarray,
                   num_snippets: int, variant: Variant,
                   class_names: Sequence[str],
                   dtype=np.float64) -> VideoLocalization:
  """Localize the actions of one video (SPEC 3, 4).

  Args:
    cas: [T, C] class activation logits (not background-suppressed).
    action_flow, action_rgb: [T] actionness.
    video_logits: [C] semantic video logits sc.
    num_snippets: L, the video's snippet count before sampling to T.
    variant: inference settings (THUMOS14 or ACTIVITYNET).
    class_names: the C class names; class index c has label class_names[c].
    dtype: float dtype of the computation.
  Returns:
    VideoLocalization: video_scores [C], predicted_classes [P], detections in
    the authors' output order.
  """
  if np.ndim(cas) != 2 or np.shape(cas)[1] != len(class_names):
    raise ValueError(f"cas must be [T, {len(class_names)}], got shape {np.shape(cas)}")
  t = np.shape(cas)[0]
  for what, x, shape in (("action_flow", action_flow, t), ("action_rgb", action_rgb, t),
                         ("video_logits", video_logits, len(class_names))):
    if np.size(x) != shape:
      raise ValueError(f"{what} must have {shape} entries, got shape {np.shape(x)}")
  return localize_batch(
      {"video": {"cas": cas, "action_flow": action_flow, "action_rgb": action_rgb,
                 "sc": video_logits, "num_snippets": num_snippets}},
      variant, class_names, dtype)["video"]


def detections_json(per_video: Mapping[str, object], details: str = "salx") -> dict:
  """ActivityNet detection JSON {"version", "results", "external_data"}.

  Args:
    per_video: video name -> VideoLocalization (or a list of detection dicts).
  """
  results = {name: loc.detections if isinstance(loc, VideoLocalization) else list(loc)
             for name, loc in per_video.items()}
  return {"version": "VERSION 1.3", "results": results,
          "external_data": {"used": True, "details": details}}
