"""Unit tests of salx.postprocess.localization and .scores (SPEC 3, 4) on hand-made inputs."""

import numpy as np
import pytest

from salx.methods.sal import hparams as sal_hparams
from salx.postprocess import localization
from salx.postprocess import scores

THUMOS = sal_hparams.THUMOS14
ANET = sal_hparams.ACTIVITYNET


# ---------------------------------------------------------------------------
# Video-level scores.


def test_combined_score_weights_thumos_and_activitynet():
  cas = np.log(np.array([[1.0, 3.0], [2.0, 2.0]]))  # softmax rows: [.25 .75], [.5 .5]
  flow, rgb = np.array([0.2, 0.4]), np.array([0.6, 0.0])
  thumos = scores.combined_score(cas, flow, rgb, THUMOS.combine_weights)
  np.testing.assert_allclose(thumos, [[(0.25 + 0.8) / 3, (0.75 + 0.8) / 3],
                                      [(0.5 + 0.4) / 3, (0.5 + 0.4) / 3]], atol=1e-15)
  anet = scores.combined_score(cas, flow, rgb, ANET.combine_weights)
  # 0.6 softmax + 0.2 a_flow + 0.2 a_rgb.
  np.testing.assert_allclose(anet, [[0.15 + 0.04 + 0.12, 0.45 + 0.04 + 0.12],
                                    [0.3 + 0.08, 0.3 + 0.08]], atol=1e-15)
  class_major = scores.combined_score(cas.T.copy(), flow, rgb, THUMOS.combine_weights,
                                      class_axis=-2)
  np.testing.assert_allclose(class_major, thumos.T, atol=1e-16)


def test_topk_mean_and_video_scores():
  values = np.array([[1.0, 10.0], [2.0, 20.0], [3.0, 30.0], [4.0, 40.0]])
  select = np.array([[0.9, 0.1], [0.1, 0.2], [0.8, 0.3], [0.2, 0.4]])
  np.testing.assert_allclose(scores.topk_mean(values, select, 2), [2.0, 35.0])
  # Ties at the k-th value still average exactly k entries.
  tied = np.array([[0.5], [0.5], [0.5], [0.1]])
  assert scores.topk_mean(values[:, :1], tied, 2)[0] in (1.5, 2.0, 2.5)
  variant = THUMOS.replace(inference_topk_divisor=2, beta=0.5)
  video_logits = np.array([0.0, 1.0])
  s = scores.video_class_scores(values, select, video_logits, variant)
  z = 0.5 * np.array([2.0, 35.0]) + 0.5 * video_logits
  np.testing.assert_allclose(s, np.exp(z) / np.exp(z).sum())
  with pytest.raises(ValueError, match="1 <= k <= T"):
    scores.topk_mean(values, select, 5)


def test_video_scores_are_nan_when_top_k_is_zero():
  # ActivityNet: T = 3 snippets, k = 3 // 4 = 0: the authors average nothing.
  cas = np.zeros((3, 2))
  s = scores.video_class_scores(cas, cas, np.zeros(2), ANET)
  assert s.shape == (2,) and np.isnan(s).all()


def test_predict_classes_threshold_argmax_fallback_and_nan():
  s = np.array([[0.3, 0.25, 0.45], [0.2, 0.24, 0.22], [np.nan, np.nan, np.nan]])
  mask = scores.predict_classes(s, 0.25)
  assert mask.tolist() == [[True, True, True], [False, True, False],
                           [False, False, False]]


# ---------------------------------------------------------------------------
# Localization of a batch.


def _videos(lengths, c=3, seed=11):
  """A padded batch whose padding is NaN (it must never be read)."""
  rng = np.random.default_rng(seed)
  b, t = len(lengths), max(lengths)
  cas = rng.normal(size=(b, t, c))
  flow = np.full((b, t), 0.1)
  logits = np.zeros((b, c))
  for i, n in enumerate(lengths):
    cas[i, n // 4:n // 2 + 1, i % c] += 6.0
    flow[i, n // 4:n // 2 + 1] = 0.9
    logits[i, i % c] = 4.0
    cas[i, n:] = np.nan
    flow[i, n:] = np.nan
  return cas, flow, flow.copy(), logits


def _localize(lengths, num_snippets, variant, **kw):
  cas, flow, rgb, logits = _videos(lengths)
  return localization.localize(cas, flow, rgb, logits, lengths, num_snippets, variant,
                               video_names=[f"v{i}" for i in range(len(lengths))],
                               class_names=["a", "b", "c"], **kw)


def test_localize_one_video_seconds_labels_and_order():
  variant = THUMOS.replace(upsample_scale=1, inference_topk_divisor=4)
  out = _localize([8], [16], variant)
  assert out.predicted.tolist() == [[True, False, False]]
  assert out.video_scores.shape == (1, 3) and out.video_scores[0, 0] > 0.9
  dets = out.detections
  assert len(dets) > 0 and set(dets.label.tolist()) == {0} and set(dets.video.tolist()) == {0}
  # t_factor = 16 L / (scale T 25) = 16 * 16 / (8 * 25) s per position.
  t_factor = 16 * 16 / (8 * 25)
  starts, ends = set(np.round(dets.start / t_factor, 9)), set(np.round(dets.end / t_factor, 9))
  assert starts <= set(map(float, range(8))) and ends <= set(map(float, range(1, 9)))
  assert 2.0 in starts and 5.0 in ends  # the run over snippets 2 .. 4
  assert dets.score[0] == dets.score.max()  # the first kept detection leads
  results = dets.to_json()["results"]
  assert list(results) == ["v0"] and results["v0"][0]["label"] == "a"


def test_localize_float32_close_to_float64():
  a = _localize([40], [100], THUMOS)
  b = _localize([40], [100], THUMOS, dtype=np.float32)
  assert b.detections.score.dtype == np.float32
  assert len(a.detections) == len(b.detections)
  np.testing.assert_allclose(b.detections.score, a.detections.score, atol=1e-5)


@pytest.mark.parametrize("variant", [THUMOS, ANET])
def test_batch_with_valid_lengths_equals_one_video_at_a_time(variant):
  lengths, num_snippets = [30, 12, 30, 50, 21], [60, 12, 900, 50, 21]
  batch = _localize(lengths, num_snippets, variant)
  cas, flow, rgb, logits = _videos(lengths)
  det = batch.detections
  assert np.all(np.diff(det.video) >= 0)  # videos in batch order
  assert det.video_names == ("v0", "v1", "v2", "v3", "v4")
  for i, n in enumerate(lengths):
    one = localization.localize(cas[i:i + 1, :n], flow[i:i + 1, :n], rgb[i:i + 1, :n],
                                logits[i:i + 1], None, num_snippets[i:i + 1], variant,
                                video_names=[f"v{i}"], class_names=["a", "b", "c"])
    mine = det.take(det.video == i)
    assert len(mine) > 0
    for field in ("label", "score", "start", "end"):
      assert np.array_equal(getattr(mine, field), getattr(one.detections, field)), field
    assert np.array_equal(batch.predicted[i], one.predicted[0])
    np.testing.assert_array_equal(batch.video_scores[i], one.video_scores[0])


def test_videos_too_short_to_score_get_no_detections():
  # ActivityNet: T // 4 is 0 for T <= 3 (a 1-snippet video is sampled to 2).
  out = _localize([1, 2, 3, 4, 20], [1, 1, 3, 4, 20], ANET)
  assert np.isnan(out.video_scores[:3]).all() and not out.predicted[:3].any()
  assert not np.isin(out.detections.video, [0, 1, 2]).any()
  assert np.isin([3, 4], out.detections.video).all()
  assert out.detections.to_json()["results"]["v0"] == []
  # THUMOS14: k = T // 8.
  out = _localize([7, 8], [7, 8], THUMOS)
  assert not out.predicted[0].any() and out.predicted[1].any()


def test_video_kept_whole_has_a_time_step_of_16_frames_at_25_fps():
  # 1 < L <= T: the video keeps T = L, so t_factor = 16 / (scale * 25) whatever L.
  out = _localize([20, 37], [20, 37], ANET)
  step = 16 / (ANET.upsample_scale * 25)
  for v in (0, 1):
    det = out.detections.take(out.detections.video == v)
    assert len(det) > 0
    np.testing.assert_allclose(det.start / step, np.round(det.start / step), atol=1e-9)
    assert det.end.max() <= [20, 37][v] * 16 / 25 + 1e-9


def test_localize_rejects_bad_shapes_naming_the_field():
  cas, flow, rgb, logits = _videos([8, 8])
  names, classes = ["v0", "v1"], ["a", "b", "c"]
  with pytest.raises(ValueError, match="action_flow"):
    localization.localize(cas, flow[:, :-1], rgb, logits, None, [8, 8], THUMOS,
                          video_names=names, class_names=classes)
  with pytest.raises(ValueError, match="cas"):
    localization.localize(cas, flow, rgb, logits, None, [8, 8], THUMOS,
                          video_names=names, class_names=classes[:2])
  with pytest.raises(ValueError, match="valid_lengths"):
    localization.localize(cas, flow, rgb, logits, [8, 9], [8, 8], THUMOS,
                          video_names=names, class_names=classes)
  with pytest.raises(ValueError, match="video names"):
    localization.localize(cas, flow, rgb, logits, None, [8, 8], THUMOS,
                          video_names=names[:1], class_names=classes)


def test_localizations_of_batches_concatenate():
  a, b = _localize([20, 16], [20, 16], THUMOS), _localize([24], [50], THUMOS)
  both = localization.Localization.concatenate([a, b])
  assert both.detections.video_names == ("v0", "v1", "v0")
  assert both.predicted.shape == (3, 3) and both.video_scores.shape == (3, 3)
  assert len(both.detections) == len(a.detections) + len(b.detections)
  assert np.array_equal(both.detections.video[len(a.detections):],
                        b.detections.video + 2)
