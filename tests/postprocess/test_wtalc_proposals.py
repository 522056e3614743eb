"""CO2-Net/DELU proposals and filters on hand cases (SPEC-CO2NET-DELU 5, 6.6)."""

import math

import numpy as np
import pytest

from salx.postprocess import wtalc_filters
from salx.postprocess import wtalc_proposals as wp
from salx.postprocess.ground_truth import AmbiguousSegments


def _one_class_video(attn, boost=4.0, klass=3, columns=21):
  """cas [T, columns] with one class clearly predicted, and attn [T]."""
  attn = np.asarray(attn, np.float64)
  cas = np.zeros((attn.size, columns))
  cas[:, klass] = boost
  return cas, attn


def _rows(proposals, v=0):
  return proposals.rows(v)


def test_thresholds_are_numpy_linspace():
  np.testing.assert_array_equal(wp.activation_thresholds(20), np.linspace(0.1, 0.9, 20))
  assert wp.activation_thresholds(10)[-1] == 0.9


def test_only_snippet_zero_above_yields_nothing():
  # Q = [0] at every threshold: their `temp_list.any()` is False.
  cas, attn = _one_class_video([0.95] + [0.05] * 9)
  assert len(wp.propose([cas], [attn], num_thresholds=10)) == 0
  # Snippet 0 with another run: [0, 1) is proposed at the thresholds below 0.5.
  cas, attn = _one_class_video([0.95, 0.05, 0.5, 0.5, 0.05, 0.05])
  rows = _rows(wp.propose([cas], [attn], num_thresholds=10))
  below = int(np.sum(wp.activation_thresholds(10) < 0.5))
  assert np.sum((rows[:, 0] == 0) & (rows[:, 1] == 1)) == below
  assert np.sum((rows[:, 0] == 2) & (rows[:, 1] == 4)) == below
  assert len(rows) == 2 * below


def test_threshold_is_strict():
  cas, attn = _one_class_video([0.05, 0.5, 0.5, 0.05])
  thresholds = wp.activation_thresholds(9)  # 0.1, 0.2, ..., 0.5 is among them
  assert np.any(thresholds == 0.5)
  rows = _rows(wp.propose([cas], [attn], num_thresholds=9))
  assert len(rows) == int(np.sum(thresholds < 0.5))


def test_single_snippet_runs_are_kept_and_length_filter_drops_them():
  cas, attn = _one_class_video([0.05, 0.95, 0.05, 0.05, 0.95, 0.95, 0.05, 0.05])
  proposals = wp.propose([cas], [attn], num_thresholds=10)
  rows = _rows(proposals)
  assert np.sum(rows[:, 1] - rows[:, 0] == 1) == 10  # [1, 2) at every threshold
  assert np.sum(rows[:, 1] - rows[:, 0] == 2) == 10  # [4, 6)
  keep = wtalc_filters.length_keep(proposals.start, proposals.end)
  np.testing.assert_array_equal(keep, rows[:, 1] - rows[:, 0] > 1)
  kept = proposals.take(keep)
  assert len(kept) == 10 and np.all(kept.end - kept.start == 2)
  # Order kept: the surviving rows in their original order.
  np.testing.assert_array_equal(kept.score, proposals.score[keep])


def test_length_filter_boundary():
  start = np.array([0.0, 5.0, 7.0, 10.0])
  end = np.array([1.0, 7.0, 7.5, 20.0])
  np.testing.assert_array_equal(wtalc_filters.length_keep(start, end),
                                [False, True, False, True])


def test_class_scores_and_fallback():
  t = 40
  cas = np.zeros((t, 4))
  cas[:, 1] = 1.0
  attn = np.ones(t)
  p = wp.video_class_scores(cas, attn)
  e = np.exp([0.0, 1.0, 0.0, 0.0])
  np.testing.assert_allclose(p, (e / e.sum())[:3], rtol=0, atol=1e-15)
  assert wp.predicted_classes(p).tolist() == [1]
  # No class >= 0.2: the argmax alone (first maximum).
  assert wp.predicted_classes(np.array([0.1, 0.15, 0.15]), 0.2).tolist() == [1]
  assert wp.predicted_classes(np.array([0.3, 0.1, 0.25]), 0.2).tolist() == [0, 2]
  # The top k = T // 10 snippets of cas * attn (not the min-shifted cas).
  cas = np.zeros((20, 3))
  cas[:, 0] = np.arange(20.0)
  attn = np.full(20, 0.5)
  top = np.array([0.5 * (19 + 18) / 2, 0.0, 0.0])
  np.testing.assert_allclose(wp.video_class_scores(cas, attn),
                             (np.exp(top) / np.exp(top).sum())[:2], rtol=0, atol=1e-15)


def test_classification_scores_use_the_max():
  cas = np.array([[0.0, 1.0, 2.0], [3.0, -1.0, 0.0]])
  m = np.array([3.0, 1.0, 2.0])
  np.testing.assert_allclose(wp.classification_scores(cas), np.exp(m) / np.exp(m).sum(),
                             rtol=0, atol=1e-15)


def test_oic_score_by_hand():
  # T = 10, one run [4, 7] (n = 4): outer 3 .. 3 and 8 .. 8 (lam n = 1).
  attn = np.array([0.0, 0, 0, 0, 1, 1, 1, 1, 0, 0])
  cas = np.zeros((10, 3))
  cas[:, 0] = np.arange(10.0)
  proposals = wp.propose([cas], [attn], num_thresholds=10)
  p = proposals.class_scores[0]
  assert proposals.predicted[0].tolist() == [True, False]
  ec = cas[:, 0] * attn
  inner = np.mean(ec[4:8])
  outer = np.mean(ec[[3, 8]])
  rows = _rows(proposals)
  assert len(rows) == 10 and np.all(rows[:, :2] == [4, 8])
  first_score = inner - outer + 0.2 * p[0]
  assert rows[0, 2] == first_score
  # The nine others decayed once per pick before them: all IoU 1.
  w = math.exp(-1 / 0.3)
  np.testing.assert_allclose(rows[:, 2], first_score * w ** np.arange(10), rtol=1e-14)


def test_soft_nms_keeps_everything_with_decayed_scores():
  # A [0, 10) 1.0, B [5, 10) 0.9, C [20, 25) 0.5. A first; B decays by
  # IoU = 6 / (11 + 6 - 6) ("+1" areas), C does not overlap and goes next.
  score = np.array([1.0, 0.9, 0.5])
  start = np.array([0.0, 5.0, 20.0])
  end = np.array([10.0, 10.0, 25.0])
  b = 0.9 * math.exp(-(6 / 11) ** 2 / 0.3)
  for index, out in (wp.soft_nms_gaussian_one(score, start, end, 0.3),
                     wp.soft_nms_gaussian(np.zeros(3, np.int64), score, start, end, 0.3)):
    assert index.tolist() == [0, 2, 1]
    np.testing.assert_allclose(out, [1.0, 0.5, b], rtol=1e-15)


def test_soft_nms_row_swap_decides_ties():
  # Disjoint proposals scored 1, 1, 2: after picking row 2, their code swaps
  # rows 0 and 2, so the old row 0 now comes after row 1: order 2, 1, 0.
  score = np.array([1.0, 1.0, 2.0])
  start = np.array([0.0, 10.0, 20.0])
  end = start + 3
  for index, out in (wp.soft_nms_gaussian_one(score, start, end),
                     wp.soft_nms_gaussian(np.zeros(3, np.int64), score, start, end)):
    assert index.tolist() == [2, 1, 0]
    np.testing.assert_array_equal(out, [2.0, 1.0, 1.0])


@pytest.mark.parametrize("seed", range(4))
def test_soft_nms_of_many_groups_equals_the_literal_one(seed):
  """Ties galore (scores from a few values, repeated segments): still equal."""
  rng = np.random.default_rng(seed)
  sizes = rng.integers(1, 40, 30)
  group = np.repeat(np.arange(sizes.size), sizes)
  start = rng.integers(0, 60, group.size).astype(np.float64)
  end = start + rng.integers(1, 12, group.size)
  score = rng.choice([-0.5, 0.25, 0.5, 1.0, 2.0], group.size)
  index, out = wp.soft_nms_gaussian(group, score, start, end, 0.3)
  bounds = np.r_[0, np.cumsum(sizes)]
  for g in range(sizes.size):
    lo, hi = bounds[g], bounds[g + 1]
    i, s = wp.soft_nms_gaussian_one(score[lo:hi], start[lo:hi], end[lo:hi], 0.3)
    np.testing.assert_array_equal(index[lo:hi], lo + i)
    np.testing.assert_array_equal(out[lo:hi], s)


def test_pairwise_sums_are_numpy_sums():
  rng = np.random.default_rng(0)
  values = rng.normal(size=5000) * rng.choice([1e-3, 1.0, 1e3], 5000)
  length = np.r_[np.arange(0, 140), [255, 256, 257, 1000, 2000]]
  first = rng.integers(0, values.size - 2000, length.size)
  sums = wp._pairwise_sums(values, first, length)
  for f, n, s in zip(first, length, sums):
    assert s == np.add.reduce(values[f:f + n].copy()), n


def test_read_ambiguous_accepts_the_real_format_and_others(tmp_path):
  path = tmp_path / "Ambiguous_test.txt"
  path.write_bytes(b"video_a  1.6 3.2\r\nvideo_a 10.0\t12.0\r\nvideo_b  0.0 1.4\r\n\r\n")
  segments = wtalc_filters.read_ambiguous(path).segments
  assert sorted(segments) == ["video_a", "video_b"]
  np.testing.assert_array_equal(segments["video_a"], [[1.6, 3.2], [10.0, 12.0]])
  np.testing.assert_array_equal(segments["video_b"], [[0.0, 1.4]])


def test_ambiguous_filter_rounds_half_to_even():
  # 1.6 * 25 / 16 = 2.5 -> 2 and 24.0 * 25 / 16 = 37.5 -> 38 (half to even):
  # G = {2 .. 37}. Half up would give {3 .. 37}, half down {2 .. 36}.
  ambiguous = AmbiguousSegments("test", {"v": np.array([[1.6, 24.0]])})
  np.testing.assert_array_equal(wtalc_filters.ambiguous_snippet_bounds([1.6, 24.0]), [2, 38])
  start = np.array([0.0, 2.0, 37.0, 38.0, 1.0, 0.0])
  end = np.array([2.0, 3.0, 38.0, 40.0, 2.9, 100.0])
  video = np.array([0, 0, 0, 0, 0, 1])
  keep = wtalc_filters.ambiguous_keep(["v", "other"], video, start, end, ambiguous)
  # [1, 2.9) covers snippet 1 only (int truncates); video "other" has no segment.
  np.testing.assert_array_equal(keep, [True, False, False, True, True, True])


def test_ambiguous_filter_any_shared_snippet_and_order(tmp_path):
  path = tmp_path / "Ambiguous_test.txt"
  path.write_text("v  0.0 1.4\nv  95.7 97.2\n")  # snippets {0, 1} and {150, 151}
  ambiguous = wtalc_filters.read_ambiguous(path)
  start = np.array([140.0, 1.0, 2.0, 151.0, 152.0, 100.0])
  end = np.array([150.0, 300.0, 149.0, 152.0, 160.0, 151.0])
  keep = wtalc_filters.ambiguous_keep(["v"], np.zeros(6, np.int64), start, end, ambiguous)
  np.testing.assert_array_equal(keep, [True, False, True, False, True, False])


def test_filter_rows_and_detections_in_seconds():
  cas, attn = _one_class_video([0.05, 0.95, 0.05, 0.05, 0.95, 0.95, 0.05, 0.05])
  ambiguous = AmbiguousSegments("test", {"vid": np.array([[0.64, 1.28]])})  # snippet 1
  classes = [f"c{i}" for i in range(20)]
  found = wp.detections([cas], [attn], ["vid"], classes, num_thresholds=10,
                        ambiguous=ambiguous)
  np.testing.assert_allclose(found.start, np.full(10, 4 * 16 / 25), rtol=1e-15)
  np.testing.assert_allclose(found.end, np.full(10, 6 * 16 / 25), rtol=1e-15)
  assert set(found.label.tolist()) == {3} and found.video_names == ("vid",)
  assert len(wp.detections([cas], [attn], ["vid"], classes, num_thresholds=10,
                           min_length=1)) == 10
  assert len(wp.detections([cas], [attn], ["vid"], classes, num_thresholds=10)) == 20


def test_classification_map_by_hand():
  # Class 0: order v0 (+), v1 (-), v2 (+): AP = (1 + 2/3) / 2. Class 1: v1 (+) first: 1.
  scores = np.array([[0.9, 0.1, 0.0], [0.5, 0.8, 0.0], [0.2, 0.3, 0.0]])
  labels = np.array([[1, 0], [0, 1], [1, 0]])
  ap0 = float(np.float32(1) + np.float32(2) / np.float32(3)) / 2  # float32 precision
  expected = 100 * (ap0 + 1.0) / 2
  assert wp.classification_map(scores, labels) == pytest.approx(expected, abs=1e-12)
  # A class without a positive video: NaN, as theirs.
  assert math.isnan(wp.classification_map(scores, np.array([[1, 0], [0, 0], [1, 0]])))


def test_bad_shapes_are_errors():
  with pytest.raises(ValueError, match="cas must be"):
    wp.propose([np.zeros((5, 21))], [np.zeros(4)], num_thresholds=10)
  with pytest.raises(ValueError, match="columns"):
    wp.propose([np.zeros((5, 21)), np.zeros((5, 11))], [np.zeros(5)] * 2, num_thresholds=10)
