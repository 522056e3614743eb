"""Unit tests of salx.postprocess.evaluation (SPEC 5) on hand-made cases."""

import numpy as np
import pytest

from salx.postprocess import evaluation as ev

from tests.conftest import data_file


def _gt(videos):
  """{video: [(label, start, end), ...]} -> ground truth JSON, subset test."""
  return {"database": {v: {"subset": "test", "annotations": [
      {"label": l, "segment": [str(s), str(e)]} for l, s, e in anns]}
                       for v, anns in videos.items()}}


def _preds(videos):
  """{video: [(label, score, start, end), ...]} -> ActivityNet results JSON."""
  return {"results": {v: [{"label": l, "score": sc, "segment": [s, e]}
                          for l, sc, s, e in dets] for v, dets in videos.items()}}


# ---------------------------------------------------------------------------
# AP.


def test_ap_hand_made_false_positive_first():
  gt = _gt({"v1": [("A", 0, 10), ("A", 20, 30)]})
  preds = _preds({"v1": [("A", 0.95, 50, 60),      # FP
                         ("A", 0.9, 0, 10),        # TP
                         ("A", 0.8, 21, 29)]})     # tIoU 0.8: TP at 0.5, FP at 0.9
  result = ev.evaluate_detections(gt, preds, (0.5, 0.9))
  # 0.5: precision 0, 1/2, 2/3; recall 0, 1/2, 1 -> AP = 1/2 * 2/3 + 1/2 * 2/3.
  # 0.9: precision 0, 1/2, 1/3; recall 0, 1/2, 1/2 -> AP = 1/2 * 1/2.
  np.testing.assert_allclose(result.ap[0], [2 / 3, 0.25], rtol=1e-15)
  np.testing.assert_allclose(result.mAP, [2 / 3, 0.25], rtol=1e-15)


def test_each_ground_truth_matches_once_and_best_unmatched_is_taken():
  gt = _gt({"v1": [("A", 0, 10), ("A", 5, 15)]})
  preds = _preds({"v1": [
      ("A", 0.9, 5, 15),    # best: GT 2 (tIoU 1)
      ("A", 0.8, 5, 15),    # GT 2 taken; GT 1 has tIoU 5/15 = 1/3
      ("A", 0.7, 0, 10)]})  # GT 1 if still free
  result = ev.evaluate_detections(gt, preds, (0.3, 0.5))
  # 0.3: TP, TP (GT 1 at 1/3), FP -> AP 1. 0.5: TP, FP, TP -> AP 1/2 + 1/2 * 2/3.
  np.testing.assert_allclose(result.ap[0], [1.0, 0.5 + 1 / 3], rtol=1e-15)


def test_unknown_video_is_false_positive_and_missing_class_scores_zero():
  gt = _gt({"v1": [("A", 0, 10)], "v2": [("B", 0, 10)]})
  preds = _preds({"v9": [("A", 0.99, 0, 10)], "v1": [("A", 0.5, 0, 10)]})
  result = ev.evaluate_detections(gt, preds, (0.5,))
  assert result.class_names == ("A", "B")
  np.testing.assert_allclose(result.ap[:, 0], [0.5, 0.0])
  np.testing.assert_allclose(result.mAP, [0.25])
  assert result.num_outside == 1 and result.num_predictions == 2


def test_tiou_uses_plain_lengths():
  np.testing.assert_allclose(ev.segment_tiou(np.array([0.0]), np.array([2.0]),
                                             np.array([1.0]), np.array([3.0])), [1 / 3])


def _literal_ap(gt_rows, pred_rows, thresholds):
  """SPEC 5 as plain loops, for one class: AP per threshold."""
  order = np.argsort([-p[1] for p in pred_rows], kind="stable")
  ap = []
  for th in thresholds:
    locked = set()
    tp = []
    for i in order:
      video, _, s, e = pred_rows[i]
      cands = [(j, g) for j, g in enumerate(gt_rows) if g[0] == video]
      tious = [max(0.0, min(e, g[2]) - max(s, g[1])) /
               ((g[2] - g[1]) + (e - s) - max(0.0, min(e, g[2]) - max(s, g[1])))
               for _, g in cands]
      hit = False
      for t, (j, _) in sorted(zip(tious, cands), key=lambda x: (-x[0], -x[1][0])):
        if t < th:
          break
        if j in locked:
          continue
        locked.add(j)
        hit = True
        break
      tp.append(hit)
    tp = np.array(tp, float)
    tpc, fpc = np.cumsum(tp), np.cumsum(1 - tp)
    rec, prec = tpc / len(gt_rows), tpc / np.maximum(tpc + fpc, 1)
    mprec = np.r_[0, prec, 0]
    mrec = np.r_[0, rec, 1]
    for k in range(len(mprec) - 2, -1, -1):
      mprec[k] = max(mprec[k], mprec[k + 1])
    idx = np.where(mrec[1:] != mrec[:-1])[0] + 1
    ap.append(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))
  return np.array(ap)


@pytest.mark.parametrize("seed", range(4))
def test_vectorized_matching_equals_the_loop(seed):
  rng = np.random.default_rng(seed)
  gt_videos, pred_videos = {}, {}
  for v in range(6):
    gt_videos[f"v{v}"] = []
    for _ in range(int(rng.integers(0, 8))):
      s = float(np.round(rng.uniform(0, 100), 1))
      gt_videos[f"v{v}"].append(("A", s, s + float(np.round(rng.uniform(1, 20), 1))))
    pred_videos[f"v{v}"] = []
    for _ in range(int(rng.integers(0, 40))):
      s = float(np.round(rng.uniform(0, 100), 1))
      pred_videos[f"v{v}"].append(("A", float(rng.random()), s,
                                   s + float(np.round(rng.uniform(0.5, 25), 1))))
  gt_videos["v0"].append(("A", 1.0, 2.0))  # at least one instance
  thresholds = (0.1, 0.3, 0.5, 0.7, 0.9)
  result = ev.evaluate_detections(_gt(gt_videos), _preds(pred_videos), thresholds)
  gt_rows = [(v, s, e) for v, anns in gt_videos.items() for _, s, e in anns]
  pred_rows = [(v, sc, s, e) for v, dets in pred_videos.items() for _, sc, s, e in dets]
  np.testing.assert_allclose(result.ap[0], _literal_ap(gt_rows, pred_rows, thresholds),
                             rtol=0, atol=1e-14)


def test_greedy_match_is_sequential_greedy():
  # Edges in priority order: p0-g0, p1-g0, p1-g1, p2-g1.
  matched = ev.greedy_match(np.array([0, 1, 1, 2]), np.array([0, 0, 1, 1]), 3, 2)
  assert matched.tolist() == [True, True, False]


# ---------------------------------------------------------------------------
# Inputs.


def test_load_ground_truth_strings_subsets_and_empty_subset():
  data = _gt({"v1": [("A", 1.5, 2.5)]})
  data["database"]["v2"] = {"subset": "validation", "annotations": [
      {"label": "B", "segment": [0, 1]}]}
  gt = ev.load_ground_truth(data, "test")
  assert gt.video_ids == ("v1",) and gt.class_names == ("A",)
  assert gt.start.tolist() == [1.5] and gt.end.tolist() == [2.5]
  assert ev.load_ground_truth(data, "validation").class_names == ("B",)
  with pytest.raises(ev.EvalInputError, match="subset 'train' is empty"):
    ev.load_ground_truth(data, "train")


def test_prediction_errors_name_the_problem():
  gt = ev.load_ground_truth(_gt({"v1": [("A", 0, 1)]}), "test")
  with pytest.raises(ev.EvalInputError, match="label 'Z' is not a class"):
    ev.load_predictions(_preds({"v1": [("Z", 0.5, 0, 1)]}), gt)
  with pytest.raises(ev.EvalInputError, match="end 1.0 < start 2.0"):
    ev.load_predictions(_preds({"v1": [("A", 0.5, 2, 1)]}), gt)
  with pytest.raises(ev.EvalInputError, match="not a finite number"):
    ev.load_predictions(_preds({"v1": [("A", float("nan"), 0, 1)]}), gt)
  with pytest.raises(ev.EvalInputError, match="no 'results'"):
    ev.load_predictions({"database": {}}, gt)


def test_predictions_from_arrays_equal_json_path():
  gt = ev.load_ground_truth(_gt({"v1": [("A", 0, 10)], "v2": [("B", 5, 9)]}), "test")
  json_preds = ev.load_predictions(
      _preds({"v1": [("B", 0.4, 0, 3), ("A", 0.9, 1, 9)], "v3": [("A", 0.3, 0, 1)]}), gt)
  arrays = ev.predictions_from_arrays(["v1", "v1", "v3"], np.array([1, 0, 0]),
                                      [0.4, 0.9, 0.3], [0, 1, 0], [3, 9, 1], gt,
                                      label_names=["A", "B"])
  for field in ("video", "label", "score", "start", "end"):
    assert np.array_equal(getattr(json_preds, field), getattr(arrays, field)), field
  with pytest.raises(ev.EvalInputError, match="'C' is not a class"):
    ev.predictions_from_arrays(["v1"], [2], [0.1], [0], [1], gt, label_names=["A", "B", "C"])


def test_ambiguous_overlap_dropped_touching_kept(tmp_path):
  path = tmp_path / "Ambiguous_test.txt"
  path.write_text("v1  10.0 20.0\r\nv2 0 5\n")
  ambiguous = ev.load_ambiguous(path)
  assert ambiguous["v1"].tolist() == [[10.0, 20.0]]
  gt = _gt({"v1": [("A", 0, 5)]})
  preds = _preds({"v1": [("A", 0.9, 0, 5), ("A", 0.8, 19, 30), ("A", 0.7, 20, 25)]})
  result = ev.evaluate_detections(gt, preds, (0.5,), ambiguous=str(path))
  assert result.num_dropped_ambiguous == 1 and result.num_predictions == 2
  assert "1 overlapping predictions dropped" in result.protocol
  assert "Ambiguous_test.txt" in result.protocol


# ---------------------------------------------------------------------------
# Results and classification.


def test_named_averages_thumos_and_activitynet():
  th = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
  avg = ev.named_averages(th, np.arange(7.0))
  assert avg == {"AVG(0.1:0.5)": 2.0, "AVG(0.3:0.7)": 4.0, "AVG(0.1:0.7)": 3.0}
  anet = tuple(0.5 + 0.05 * i for i in range(10))
  assert ev.named_averages(anet, np.arange(10.0)) == {"AVG(0.5:0.95)": 4.5}


def test_format_table_and_json():
  gt = _gt({"v1": [("A", 0, 10)]})
  result = ev.evaluate_detections(gt, _preds({"v1": [("A", 0.9, 0, 10)]}), (0.5, 0.7))
  table = ev.format_table(result)
  assert "subset 'test': 1 videos" in table and "ambiguous segments: kept" in table
  assert "100.00" in table and "AVG(0.5:0.7)" in table
  out = result.to_json()
  assert out["mAP"] == [1.0, 1.0] and out["per_class_AP"] == {"A": [1.0, 1.0]}


def test_classification_accuracy_exact_multi_hot():
  scores = np.array([[0.2, 0.7], [0.6, 0.1], [0.2, 0.2]])
  labels = np.array([[0, 1], [1, 1], [0, 0]])
  # Video 3: no class reaches 0.25 and no argmax fallback: equals all-zero label.
  assert ev.classification_accuracy(scores, labels, 0.25) == pytest.approx(2 / 3)
  gt = ev.load_ground_truth(_gt({"v1": [("B", 0, 1)], "v2": [("A", 0, 1), ("B", 2, 3)]}))
  assert ev.video_labels(gt, ["v2", "v1"], ["A", "B", "C"]).tolist() == [
      [True, True, False], [False, True, False]]


# ---------------------------------------------------------------------------
# Real annotation files (skipped without the data folder).


def test_thumos14_ground_truth_files():
  gt210 = ev.load_ground_truth(data_file("thumos14/gt.json"), "test")
  assert (len(gt210.video_ids), gt210.num_instances, len(gt210.class_names)) == (210, 3311, 20)
  gt212 = ev.load_ground_truth(data_file("thumos14/gt_acmnet_with_duration.json"), "test")
  assert (len(gt212.video_ids), gt212.num_instances) == (212, 3358)
  ambiguous = ev.load_ambiguous(
      data_file("thumos14/official_annotations/test/Ambiguous_test.txt"))
  assert sum(len(s) for s in ambiguous.values()) == 99
