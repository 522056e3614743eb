"""Unit tests of salx.postprocess.localization (SPEC 3, 4) on hand-made inputs."""

import math

import numpy as np
import pytest

from salx.postprocess import localization as loc
from salx.core import variants

THUMOS = variants.THUMOS14


def _runs_as_tuples(runs):
  return list(zip(runs.curve.tolist(), runs.threshold.tolist(),
                  runs.start.tolist(), runs.end.tolist()))


# ---------------------------------------------------------------------------
# Video-level scores.


def test_combined_score_weights_thumos_and_activitynet():
  cas = np.log(np.array([[1.0, 3.0], [2.0, 2.0]]))  # softmax rows: [.25 .75], [.5 .5]
  flow, rgb = np.array([0.2, 0.4]), np.array([0.6, 0.0])
  thumos = loc.combined_score(cas, flow, rgb, THUMOS.combine_weights)
  np.testing.assert_allclose(thumos, [[(0.25 + 0.8) / 3, (0.75 + 0.8) / 3],
                                      [(0.5 + 0.4) / 3, (0.5 + 0.4) / 3]], atol=1e-15)
  anet = loc.combined_score(cas, flow, rgb, variants.ACTIVITYNET.combine_weights)
  # 0.6 softmax + 0.2 a_flow + 0.2 a_rgb.
  np.testing.assert_allclose(anet, [[0.15 + 0.04 + 0.12, 0.45 + 0.04 + 0.12],
                                    [0.3 + 0.08, 0.3 + 0.08]], atol=1e-15)
  class_major = loc.combined_score(cas.T.copy(), flow, rgb, THUMOS.combine_weights,
                                   class_axis=-2)
  np.testing.assert_allclose(class_major, thumos.T, atol=1e-16)


def test_topk_mean_and_video_scores():
  values = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])
  select = np.array([[0.9, 0.1], [0.1, 0.2], [0.8, 0.3], [0.2, 0.4]])
  np.testing.assert_allclose(loc.topk_mean(values, select, 2), [2.0, 35.0])
  # Ties at the k-th value still average exactly k entries.
  tied = np.array([[0.5], [0.5], [0.5], [0.1]])
  assert loc.topk_mean(values[:, :1], tied, 2)[0] in (1.5, 2.0, 2.5)
  variant = THUMOS.replace(inference_topk_divisor=2, beta=0.5)
  video_logits = np.array([0.0, 1.0])
  scores = loc.video_class_scores(values, select, video_logits, variant)
  z = 0.5 * np.array([2.0, 35.0]) + 0.5 * video_logits
  np.testing.assert_allclose(scores, np.exp(z) / np.exp(z).sum())


def test_predict_classes_threshold_and_argmax_fallback():
  scores = np.array([[0.3, 0.25, 0.45], [0.2, 0.24, 0.22]])
  mask = loc.predict_classes(scores, 0.25)
  assert mask.tolist() == [[True, True, True], [False, True, False]]


# ---------------------------------------------------------------------------
# Curves, runs and OIC.


def test_upsample_matches_scipy_interp1d_bit_for_bit():
  interpolate = pytest.importorskip("scipy.interpolate")
  rng = np.random.default_rng(0)
  coarse = rng.random((3, 17))
  mine = loc.upsample_linear(coarse, 24)
  x = np.arange(coarse.shape[1])
  theirs = interpolate.interp1d(x, coarse.T, kind="linear", axis=0,
                                fill_value="extrapolate")(np.arange(0, x.size, 1 / 24))
  assert mine.shape == (3, 17 * 24)
  assert np.array_equal(mine, theirs.T)


def test_oic_on_hand_made_curve():
  # scale 1 keeps the curve as is (dyadic values are exact).
  y = np.array([[0.0, 0.25, 0.75, 1.0, 0.5, 0.0, 0.0, 0.0]])
  curves = loc.UpsampledCurves(y, 1)
  runs = loc.curve_runs(curves, (0.5,))
  assert _runs_as_tuples(runs) == [(0, 0, 2, 4)]
  # inner = mean(0.75, 1, 0.5) = 0.75, n = 3.
  # lam 0.25: outer = positions int(2 - 0.75) = 1 .. 1 and 5 .. int(4.75) = 4 -> {1}.
  np.testing.assert_allclose(loc.oic_contrast(curves, runs, 0.25), [0.75 - 0.25])
  # lam 1: outer = 0 .. 1 and 5 .. 7 -> mean(0, .25, 0, 0, 0) = 0.05.
  np.testing.assert_allclose(loc.oic_contrast(curves, runs, 1.0), [0.75 - 0.05])
  # A run touching both ends has an empty outer region: outer = 0.
  flat = loc.UpsampledCurves(np.array([[0.5, 0.75, 0.5]]), 1)
  runs = loc.curve_runs(flat, (0.5,))
  assert _runs_as_tuples(runs) == [(0, 0, 0, 2)]
  np.testing.assert_allclose(loc.oic_contrast(flat, runs, 0.2), [1.75 / 3])


def test_runs_per_threshold_in_pooled_order_and_lone_first_position_dropped():
  y = np.array([[0.25, 0.75, 0.5, 0.0, 0.75, 0.0],
                [0.75, 0.0, 0.0, 0.0, 0.0, 0.0],
                [0.75, 0.0, 0.75, 0.0, 0.0, 0.0]])
  runs = loc.curve_runs(loc.UpsampledCurves(y, 1), (0.5, 0.7))
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
  thresholds = variants.THUMOS14.act_thresholds
  coarse[0, ::3] = thresholds[2]
  coarse[1, : t // 2] = 0.5
  coarse[2] = np.round(coarse[2], 1)
  scale = int(rng.choice([1, 3, 24]))
  dense = loc.upsample_linear(coarse, scale)
  curves = loc.UpsampledCurves(coarse, scale)
  fast = loc.curve_runs(curves, thresholds)
  slow = loc.threshold_runs(dense, thresholds)
  assert _runs_as_tuples(fast) == _runs_as_tuples(slow)
  positions = np.arange(dense.shape[1] + 1)
  for k in range(coarse.shape[0]):
    expected = np.concatenate([[0.0], np.cumsum(dense[k])])
    np.testing.assert_allclose(curves.prefix_sum(np.full_like(positions, k), positions),
                               expected, rtol=1e-12, atol=1e-12)


def test_runs_literal_definition():
  # The authors: zero values below th, keep positive ones, split on gaps.
  rng = np.random.default_rng(7)
  dense = loc.upsample_linear(rng.random((2, 30)), 24)
  runs = loc.threshold_runs(dense, (0.3, 0.6))
  expected = []
  for k in range(2):
    for j, th in enumerate((0.3, 0.6)):
      kept = np.where(np.where(dense[k] < th, 0, dense[k]) > 0)[0]
      if not kept.any():
        continue
      for group in np.split(kept, np.where(np.diff(kept) != 1)[0] + 1):
        expected.append((k, j, group[0], group[-1]))
  assert _runs_as_tuples(runs) == expected


# ---------------------------------------------------------------------------
# Suppression.


def _spec_soft_nms(start, end, score, thresh, alpha, soft=True):
  """SPEC 3.6 written as a plain loop: indices and scores in output order."""
  order = list(np.argsort(score, kind="stable")[::-1])
  kept, aside = [], []
  while order:
    i, rest = order[0], order[1:]
    kept.append((i, score[i]))
    stay = []
    for j in rest:
      inter = max(0.0, min(end[i], end[j]) - max(start[i], start[j]) + 1)
      iou = inter / ((end[i] - start[i] + 1) + (end[j] - start[j] + 1) - inter)
      if iou >= thresh:
        aside.append((j, score[j] * math.exp(-iou ** 2 / alpha)))
      else:
        stay.append(j)
    order = stay
  out = kept + aside if soft else kept
  return [i for i, _ in out], [s for _, s in out]


def test_soft_nms_hand_made():
  #            A      B      C      D
  start = np.array([0.0, 4.0, 8.0, 30.0])
  end = np.array([10.0, 14.0, 18.0, 40.0])
  score = np.array([0.9, 0.8, 0.7, 0.6])
  group = np.zeros(4, np.int64)
  index, new = loc.suppress(group, score, start, end, 0.4, 0.3)
  # IoU(A, B) = 7 / 15 >= 0.4: B is set aside; C overlaps B (7 / 15) but B is
  # no longer in the queue, and IoU(A, C) = 3 / 19 < 0.4: C is kept; D is kept.
  assert index.tolist() == [0, 2, 3, 1]
  np.testing.assert_allclose(new, [0.9, 0.7, 0.6, 0.8 * math.exp(-(7 / 15) ** 2 / 0.3)],
                             rtol=1e-15)
  index, new = loc.suppress(group, score, start, end, 0.4, 0.3, soft=False)
  assert index.tolist() == [0, 2, 3]


def test_soft_nms_set_aside_grouped_by_remover():
  start = np.array([0.0, 100.0, 1.0, 101.0, 2.0])
  end = np.array([10.0, 110.0, 10.0, 110.0, 10.0])
  score = np.array([0.9, 0.8, 0.7, 0.95, 0.5])
  index, _ = loc.suppress(np.zeros(5, np.int64), score, start, end, 0.4, 0.3)
  # Kept by score: 3 (0.95), 0 (0.9); set aside: by 3: {1}; by 0: {2, 4}.
  assert index.tolist() == [3, 0, 1, 2, 4]


@pytest.mark.parametrize("soft", [True, False])
def test_suppress_equals_spec_loop_on_random_groups(soft):
  rng = np.random.default_rng(3)
  groups, starts, ends, scores = [], [], [], []
  for g in range(5):
    n = int(rng.integers(1, 60))
    s = np.round(rng.uniform(0, 50, n), 2)
    groups.append(np.full(n, g))
    starts.append(s)
    ends.append(s + np.round(rng.uniform(0, 8, n), 2))
    scores.append(rng.random(n))
  group, start, end, score = map(np.concatenate, (groups, starts, ends, scores))
  index, new = loc.suppress(group, score, start, end, 0.4, 0.3, soft=soft)
  expected_index, expected_score = [], []
  offset = 0
  for g in range(5):
    i, s = _spec_soft_nms(starts[g], ends[g], scores[g], 0.4, 0.3, soft)
    expected_index += [offset + j for j in i]
    expected_score += s
    offset += starts[g].size
  assert index.tolist() == expected_index
  np.testing.assert_allclose(new, expected_score, rtol=1e-14)


# ---------------------------------------------------------------------------
# End to end.


def _tiny_video(t=8, c=3):
  rng = np.random.default_rng(11)
  cas = rng.normal(size=(t, c))
  cas[2:5, 1] += 6.0
  flow = np.full(t, 0.1)
  flow[2:5] = 0.9
  rgb = flow.copy()
  sc = np.array([0.0, 4.0, 0.0])
  return cas, flow, rgb, sc


def test_localize_video_end_to_end_seconds_and_labels():
  cas, flow, rgb, sc = _tiny_video()
  variant = THUMOS.replace(upsample_scale=1, inference_topk_divisor=4)
  names = ["a", "b", "c"]
  out = loc.localize_video(cas, flow, rgb, sc, 16, variant, names)
  assert out.predicted_classes.tolist() == [1]
  assert out.video_scores.shape == (3,)
  assert out.video_scores[1] > 0.9
  dets = out.detections
  assert dets and {d["label"] for d in dets} == {"b"}
  # t_factor = 16 L / (scale T 25) = 16 * 16 / (8 * 25) s per position.
  t_factor = 16 * 16 / (8 * 25)
  starts = {round(d["segment"][0] / t_factor, 9) for d in dets}
  ends = {round(d["segment"][1] / t_factor, 9) for d in dets}
  assert starts <= set(map(float, range(8))) and ends <= set(map(float, range(1, 9)))
  assert 2.0 in starts and 5.0 in ends  # the run over snippets 2 .. 4
  scores = [d["score"] for d in dets]
  assert scores[0] == max(scores)
  json_out = loc.detections_json({"v1": out})
  assert json_out["results"]["v1"] == dets
  assert set(json_out) == {"version", "results", "external_data"}


def test_localize_float32_close_to_float64():
  cas, flow, rgb, sc = _tiny_video(t=40)
  a = loc.localize_video(cas, flow, rgb, sc, 100, THUMOS, ["a", "b", "c"])
  b = loc.localize_video(cas.astype(np.float32), flow, rgb, sc, 100, THUMOS,
                         ["a", "b", "c"], dtype=np.float32)
  assert b.proposals.score.dtype == np.float32
  assert len(a.detections) == len(b.detections)
  np.testing.assert_allclose(b.proposals.score, a.proposals.score, atol=1e-5)


def test_localize_batch_mixed_lengths_keeps_order_and_equals_single_calls():
  rng = np.random.default_rng(5)
  outputs = {}
  for name, t in (("x", 30), ("y", 12), ("z", 30)):
    outputs[name] = {"cas": rng.normal(size=(t, 4)) * 3, "action_flow": rng.random(t),
                     "action_rgb": rng.random(t), "sc": rng.normal(size=4),
                     "num_snippets": t * 2}
  variant = variants.ACTIVITYNET
  batch = loc.localize_batch(outputs, variant, list("abcd"))
  assert list(batch) == ["x", "y", "z"]
  for name, o in outputs.items():
    single = loc.localize_video(o["cas"], o["action_flow"], o["action_rgb"], o["sc"],
                                o["num_snippets"], variant, list("abcd"))
    assert single.detections == batch[name].detections
    assert single.predicted_classes.tolist() == batch[name].predicted_classes.tolist()


def test_localize_video_rejects_bad_shapes():
  cas, flow, rgb, sc = _tiny_video()
  with pytest.raises(ValueError, match="action_flow"):
    loc.localize_video(cas, flow[:-1], rgb, sc, 8, THUMOS, ["a", "b", "c"])
  with pytest.raises(ValueError, match="cas"):
    loc.localize_video(cas, flow, rgb, sc, 8, THUMOS, ["a", "b"])
