"""Unit tests of salx.postprocess.curves and the OIC score (SPEC 3.4-3.5)."""

import numpy as np
import pytest

from salx.methods.sal import hparams as sal_hparams
from salx.postprocess import curves
from salx.postprocess import localization


def _runs_as_tuples(runs):
  return list(zip(runs.curve.tolist(), runs.threshold.tolist(),
                  runs.start.tolist(), runs.end.tolist()))


def test_upsample_matches_scipy_interp1d_bit_for_bit():
  interpolate = pytest.importorskip("scipy.interpolate")
  rng = np.random.default_rng(0)
  coarse = rng.random((3, 17))
  mine = curves.upsample_linear(coarse, 24)
  x = np.arange(coarse.shape[1])
  theirs = interpolate.interp1d(x, coarse.T, kind="linear", axis=0,
                                fill_value="extrapolate")(np.arange(0, x.size, 1 / 24))
  assert mine.shape == (3, 17 * 24)
  assert np.array_equal(mine, theirs.T)


def test_oic_on_hand_made_curve():
  # scale 1 keeps the curve as is (dyadic values are exact).
  y = np.array([[0.0, 0.25, 0.75, 1.0, 0.5, 0.0, 0.0, 0.0]])
  up = curves.UpsampledCurves(y, 1)
  runs = curves.curve_runs(up, (0.5,))
  assert _runs_as_tuples(runs) == [(0, 0, 2, 4)]
  # inner = mean(0.75, 1, 0.5) = 0.75, n = 3.
  # lam 0.25: outer = positions int(2 - 0.75) = 1 .. 1 and 5 .. int(4.75) = 4 -> {1}.
  np.testing.assert_allclose(localization.oic_contrast(up, runs, 0.25), [0.75 - 0.25])
  # lam 1: outer = 0 .. 1 and 5 .. 7 -> mean(0, .25, 0, 0, 0) = 0.05.
  np.testing.assert_allclose(localization.oic_contrast(up, runs, 1.0), [0.75 - 0.05])
  # A run touching both ends has an empty outer region: outer = 0.
  flat = curves.UpsampledCurves(np.array([[0.5, 0.75, 0.5]]), 1)
  runs = curves.curve_runs(flat, (0.5,))
  assert _runs_as_tuples(runs) == [(0, 0, 0, 2)]
  np.testing.assert_allclose(localization.oic_contrast(flat, runs, 0.2), [1.75 / 3])


def test_runs_per_threshold_in_pooled_order_and_lone_first_position_dropped():
  y = np.array([[0.25, 0.75, 0.5, 0.0, 0.75, 0.0],
                [0.75, 0.0, 0.0, 0.0, 0.0, 0.0],
                [0.75, 0.0, 0.75, 0.0, 0.0, 0.0]])
  runs = curves.curve_runs(curves.UpsampledCurves(y, 1), (0.5, 0.7))
  assert _runs_as_tuples(runs) == [
      (0, 0, 1, 2), (0, 0, 4, 4), (0, 1, 1, 1), (0, 1, 4, 4),
      # curve 1: its only position >= th is 0 -> no run (authors' `.any()`).
      (2, 0, 0, 0), (2, 0, 2, 2), (2, 1, 0, 0), (2, 1, 2, 2)]


@pytest.mark.parametrize("seed", range(6))
def test_fast_runs_and_sums_equal_the_dense_definition(seed):
  rng = np.random.default_rng(seed)
  t = int(rng.integers(2, 40))
  coarse = rng.random((4, t))
  # Values exactly on thresholds and plateaus, which stress ties.
  thresholds = sal_hparams.THUMOS14.act_thresholds
  coarse[0, ::3] = thresholds[2]
  coarse[1, : t // 2] = 0.5
  coarse[2] = np.round(coarse[2], 1)
  scale = int(rng.choice([1, 3, 24]))
  dense = curves.upsample_linear(coarse, scale)
  up = curves.UpsampledCurves(coarse, scale)
  fast = curves.curve_runs(up, thresholds)
  slow = curves.threshold_runs(dense, thresholds)
  assert _runs_as_tuples(fast) == _runs_as_tuples(slow)
  positions = np.arange(dense.shape[1] + 1)
  for k in range(coarse.shape[0]):
    expected = np.concatenate([[0.0], np.cumsum(dense[k])])
    np.testing.assert_allclose(up.prefix_sum(np.full_like(positions, k), positions),
                               expected, rtol=1e-12, atol=1e-12)


def test_runs_literal_definition():
  # The authors: zero values below th, keep positive ones, split on gaps.
  rng = np.random.default_rng(7)
  dense = curves.upsample_linear(rng.random((2, 30)), 24)
  runs = curves.threshold_runs(dense, (0.3, 0.6))
  expected = []
  for k in range(2):
    for j, th in enumerate((0.3, 0.6)):
      kept = np.where(np.where(dense[k] < th, 0, dense[k]) > 0)[0]
      if not kept.any():
        continue
      for group in np.split(kept, np.where(np.diff(kept) != 1)[0] + 1):
        expected.append((k, j, group[0], group[-1]))
  assert _runs_as_tuples(runs) == expected


def test_curves_need_two_snippets_and_ascending_thresholds():
  with pytest.raises(ValueError, match="at least 2 snippets"):
    curves.UpsampledCurves(np.ones((1, 1)), 24)
  with pytest.raises(ValueError, match="ascending"):
    curves.curve_runs(curves.UpsampledCurves(np.ones((1, 4)), 2), (0.5, 0.3))
