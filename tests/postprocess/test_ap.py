"""Unit tests of salx.postprocess.ap (SPEC 5) on hand-made cases."""

import numpy as np
import pytest

from salx.methods.sal import hparams as sal_hparams
from salx.postprocess import ap
from salx.postprocess import ground_truth as gt_lib
from salx.postprocess import localization
from salx.postprocess.detections import Detections
from salx.postprocess.inputs import EvalInputError


def _gt(videos):
  """{video: [(label, start, end), ...]} -> GroundTruth of subset test."""
  return gt_lib.load_ground_truth({"database": {v: {"subset": "test", "annotations": [
      {"label": l, "segment": [str(s), str(e)]} for l, s, e in anns]}
                                                for v, anns in videos.items()}})


def _dets(videos):
  """{video: [(label, score, start, end), ...]} -> Detections."""
  return Detections.from_json({"results": {
      v: [{"label": l, "score": sc, "segment": [s, e]} for l, sc, s, e in dets]
      for v, dets in videos.items()}})


def test_ap_hand_made_false_positive_first():
  gt = _gt({"v1": [("A", 0, 10), ("A", 20, 30)]})
  dets = _dets({"v1": [("A", 0.95, 50, 60),      # FP
                       ("A", 0.9, 0, 10),        # TP
                       ("A", 0.8, 21, 29)]})     # tIoU 0.8: TP at 0.5, FP at 0.9
  result = ap.evaluate_detections(gt, dets, (0.5, 0.9))
  # 0.5: precision 0, 1/2, 2/3; recall 0, 1/2, 1 -> AP = 1/2 * 2/3 + 1/2 * 2/3.
  # 0.9: precision 0, 1/2, 1/3; recall 0, 1/2, 1/2 -> AP = 1/2 * 1/2.
  np.testing.assert_allclose(result.ap[0], [2 / 3, 0.25], rtol=1e-15)
  np.testing.assert_allclose(result.mAP, [2 / 3, 0.25], rtol=1e-15)


def test_each_ground_truth_matches_once_and_best_unmatched_is_taken():
  gt = _gt({"v1": [("A", 0, 10), ("A", 5, 15)]})
  dets = _dets({"v1": [
      ("A", 0.9, 5, 15),    # best: GT 2 (tIoU 1)
      ("A", 0.8, 5, 15),    # GT 2 taken; GT 1 has tIoU 5/15 = 1/3
      ("A", 0.7, 0, 10)]})  # GT 1 if still free
  result = ap.evaluate_detections(gt, dets, (0.3, 0.5))
  # 0.3: TP, TP (GT 1 at 1/3), FP -> AP 1. 0.5: TP, FP, TP -> AP 1/2 + 1/2 * 2/3.
  np.testing.assert_allclose(result.ap[0], [1.0, 0.5 + 1 / 3], rtol=1e-15)


def test_unknown_video_is_false_positive_and_missing_class_scores_zero():
  gt = _gt({"v1": [("A", 0, 10)], "v2": [("B", 0, 10)]})
  dets = _dets({"v9": [("A", 0.99, 0, 10)], "v1": [("A", 0.5, 0, 10)]})
  result = ap.evaluate_detections(gt, dets, (0.5,))
  assert result.class_names == ("A", "B")
  np.testing.assert_allclose(result.ap[:, 0], [0.5, 0.0])
  np.testing.assert_allclose(result.mAP, [0.25])
  assert result.num_outside == 1 and result.num_predictions == 2


def test_label_outside_the_ground_truth_is_an_error_naming_it():
  gt = _gt({"v1": [("A", 0, 1)]})
  with pytest.raises(EvalInputError, match="<dict>: video v1: label 'Z' is not a class "
                                           "of <dict> subset 'test'"):
    ap.evaluate_detections(gt, _dets({"v1": [("A", 0.6, 0, 1), ("Z", 0.5, 0, 1)]}), (0.5,))


def test_tiou_uses_plain_lengths():
  np.testing.assert_allclose(ap.segment_tiou(np.array([0.0]), np.array([2.0]),
                                             np.array([1.0]), np.array([3.0])), [1 / 3])


def _literal_ap(gt_rows, pred_rows, thresholds):
  """SPEC 5 as plain loops, for one class: AP per threshold."""
  order = np.argsort([-p[1] for p in pred_rows], kind="stable")
  result = []
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
    result.append(np.sum((mrec[idx] - mrec[idx - 1]) * mprec[idx]))
  return np.array(result)


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
  result = ap.evaluate_detections(_gt(gt_videos), _dets(pred_videos), thresholds)
  gt_rows = [(v, s, e) for v, anns in gt_videos.items() for _, s, e in anns]
  pred_rows = [(v, sc, s, e) for v, dets in pred_videos.items() for _, sc, s, e in dets]
  np.testing.assert_allclose(result.ap[0], _literal_ap(gt_rows, pred_rows, thresholds),
                             rtol=0, atol=1e-14)


def test_greedy_match_is_sequential_greedy():
  # Edges in priority order: p0-g0, p1-g0, p1-g1, p2-g1.
  matched = ap.greedy_match(np.array([0, 1, 1, 2]), np.array([0, 0, 1, 1]), 3)
  assert matched.tolist() == [True, True, False]


def test_ambiguous_segments_in_the_protocol(tmp_path):
  path = tmp_path / "Ambiguous_test.txt"
  path.write_text("v1 10 20\n")
  gt = _gt({"v1": [("A", 0, 5)]})
  dets = _dets({"v1": [("A", 0.9, 0, 5), ("A", 0.8, 19, 30), ("A", 0.7, 20, 25)]})
  result = ap.evaluate_detections(gt, dets, (0.5,), gt_lib.load_ambiguous(path))
  assert result.num_dropped_ambiguous == 1 and result.num_predictions == 2
  assert "ambiguous segments (Ambiguous_test.txt): 1 overlapping" in result.protocol
  assert "ambiguous segments: kept" in ap.evaluate_detections(gt, dets, (0.5,)).protocol


def test_localized_detections_evaluate_as_their_json():
  # The trainer's path (Detections from localize) and the CLI's (their JSON) agree.
  rng = np.random.default_rng(1)
  c, t, lengths = 3, 64, [64, 48, 64, 30]
  cas = rng.normal(size=(4, t, c)) - 1.0
  flow = rng.uniform(size=(4, t))
  database = {}
  for i, n in enumerate(lengths):
    cas[i, n // 4:n // 2, i % c] += 5.0
    flow[i, n // 4:n // 2] = 0.95
    seconds = n * 16 / 25
    database[f"video_{i}"] = {"subset": "test", "annotations": [
        {"label": "abc"[i % c], "segment": [0.25 * seconds, 0.5 * seconds]}]}
  logits = rng.normal(size=(4, c))
  logits[np.arange(4), np.arange(4) % c] += 4
  out = localization.localize(cas, flow, flow, logits, lengths, lengths,
                              sal_hparams.THUMOS14, video_names=list(database),
                              class_names=list("abc"))
  gt = gt_lib.load_ground_truth({"database": database})
  th = sal_hparams.THUMOS14.tiou_thresholds
  direct = ap.evaluate_detections(gt, out.detections, th)
  via_json = ap.evaluate_detections(gt, Detections.from_json(out.detections.to_json()), th)
  np.testing.assert_array_equal(direct.mAP, via_json.mAP)
  assert direct.mAP[0] > 0.5  # the planted instances are found


def test_named_averages_thumos_and_activitynet():
  th = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)
  avg = ap.named_averages(th, np.arange(7.0))
  assert avg == {"AVG(0.1:0.5)": 2.0, "AVG(0.3:0.7)": 4.0, "AVG(0.1:0.7)": 3.0}
  anet = sal_hparams.ACTIVITYNET.tiou_thresholds
  assert ap.named_averages(anet, np.arange(10.0)) == {"AVG(0.5:0.95)": 4.5}


def test_format_table_and_json():
  gt = _gt({"v1": [("A", 0, 10)]})
  result = ap.evaluate_detections(gt, _dets({"v1": [("A", 0.9, 0, 10)]}), (0.5, 0.7))
  table = ap.format_table(result)
  assert "subset 'test': 1 videos" in table and "ambiguous segments: kept" in table
  assert "100.00" in table and "AVG(0.5:0.7)" in table
  assert "per-class" not in ap.format_table(result, per_class=False)
  out = result.to_json()
  assert out["mAP"] == [1.0, 1.0] and out["per_class_AP"] == {"A": [1.0, 1.0]}
  with pytest.raises(ValueError, match="tIoU thresholds must lie in"):
    ap.evaluate_detections(gt, _dets({}), (0.0, 0.5))
