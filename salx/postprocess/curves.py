"""Upsampled score curves and their runs above the activation thresholds (SPEC 3.4-3.5).

One curve is comb[:, c] of one (video, predicted class), upsampled linearly by
`scale`. The upsampled values are never materialized on the fast path:
`UpsampledCurves` computes them where asked and sums them in closed form, and
`curve_runs` finds the runs of every activation threshold by bisection inside
the intervals between samples. `upsample_linear` and `threshold_runs` are the
literal (dense) definitions the fast path equals.
"""

from __future__ import annotations

import dataclasses
import functools
from typing import Sequence, Tuple

import numpy as np

from salx.postprocess import arrays


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
  event, threshold = arrays.expand_ranges(low, high)
  return curve[event], threshold, position[event]


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


def _first_crossed(curves: UpsampledCurves, curve, interval, threshold_value, rising):
  """First position of each interval past its first where the curve has crossed.

  Rising: value >= threshold; falling: value < threshold. The answer lies in
  (first, last] of the interval, found by bisection on the monotone values.
  """
  def crossed(position):
    value = curves.value_at(curve, interval, position)
    return np.where(rising, value >= threshold_value, value < threshold_value)

  return arrays.bisect_first(crossed, curves.plan.first[interval] + 1,
                             curves.plan.last[interval])


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
    at = _first_crossed(curves, ek, ej, th[et], rising)
    (starts if rising else ends).append((ek, et, at if rising else at - 1))
  return _make_runs(starts, ends, th.size, n)
