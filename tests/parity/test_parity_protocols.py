"""Parity of the three evaluation protocols with the code that defines each.

- thumos14_official: the official MATLAB kit's outputs (run under Octave) in
  `thumos14_official/` (README section 4): every prediction set that
  `expected.json` lists, read from its JSON and from its kit text, and every
  one-rule case of `cases.json`.
- wtalc: W-TALC's `ANETdetection` in `co2net_delu/wtalc_eval_expected.json`,
  three pipelines, at the snippet level and through `protocols.evaluate` in
  seconds.

Every threshold, class and expected value comes from the files (other prediction
sets with their kit outputs are run through the same tests).
"""

import dataclasses
import json
import warnings

import numpy as np
import pytest

from salx.datasets import npy
from salx.datasets import protocol_ground_truth
from salx.postprocess import protocols
from salx.postprocess import thumos14_kit
from salx.postprocess import wtalc_eval
from salx.postprocess.inputs import EvalInputError

from tests.conftest import fixture_file

ATOL = 1e-12


def _json(name):
  with open(fixture_file(name)) as f:
    return json.load(f)


def _members(key):
  """'0.1:0.1:0.7' -> the literal thresholds 0.1, 0.2, ..., 0.7 ('a,b,c': a, b, c)."""
  if ":" not in key:
    return [float(x) for x in key.split(",")]
  lo, step, hi = (float(x) for x in key.split(":"))
  return [round(lo + i * step, 10) for i in range(int(round((hi - lo) / step)) + 1)]


@pytest.fixture(scope="module")
def official_gt():
  return protocol_ground_truth.load_ground_truth("thumos14_official",
                                                 fixture_file("thumos14_official/gt"))


def test_parity_official_ground_truth(official_gt):
  expected = _json("thumos14_official/expected.json")["ground_truth"]
  gt = official_gt.instances
  assert [[i, c] for i, c in zip(official_gt.class_ids, gt.class_names)] == \
      expected["classes"]
  npos = np.bincount(gt.label, minlength=len(gt.class_names))
  assert dict(zip(gt.class_names, npos.tolist())) == expected["npos"]
  assert official_gt.num_ambiguous == expected["num_ambiguous"]


@pytest.mark.parametrize("source", ["json", "txt"])
def test_parity_official_sets(official_gt, source):
  expected = _json("thumos14_official/expected.json")
  th = expected["tiou_thresholds"]
  classes = official_gt.instances.class_names
  assert expected["sets"]
  for name, case in expected["sets"].items():
    path = fixture_file(f"thumos14_official/{case[f'predictions_{source}']}")
    if source == "json":
      detections = thumos14_kit.read_detections_json(path, classes)
    else:
      detections = thumos14_kit.read_kit_text(path, classes, official_gt.class_ids)
    assert len(detections) == case["num_detections"], name
    if source == "json":  # keys of results, videos without a detection too
      assert len(detections.video_names) == case["num_videos"], name
    result = protocols.evaluate("thumos14_official", official_gt, detections, th)
    assert result.tiou_thresholds == tuple(th)
    assert result.protocol == "thumos14_official"
    np.testing.assert_allclose(result.mAP, case["mAP"], rtol=0, atol=ATOL, err_msg=name)
    assert set(case["per_class_AP"]) == set(classes), name
    for cls, values in case["per_class_AP"].items():
      np.testing.assert_allclose(result.per_class_ap[cls], values, rtol=0, atol=ATOL,
                                 err_msg=f"{name} {cls}")
    for cls in case.get("classes_with_AP_0_by_rule", {}):
      assert not result.per_class_ap[cls].any(), f"{name} {cls}"
    for key, value in case.get("average_mAP", {}).items():
      members = _members(key)
      index = [th.index(t) for t in members]
      assert abs(np.mean(result.mAP[index]) - value) <= ATOL, f"{name} {key}"
      named = [n for n, r in result.average_ranges.items() if _members(r) == members]
      for n in named:
        assert abs(result.averages[n] - value) <= ATOL, f"{name} {n}"


def _case_detections(case, official_gt, tmp_path):
  """[(what, detections)] of a case: its kit text, and its JSON where it has one."""
  text = tmp_path / f"{case['name']}.txt"
  text.write_text("".join(line + "\n" for line in case["text_lines"]))
  with warnings.catch_warnings():
    warnings.simplefilter("ignore")
    out = [("text", thumos14_kit.read_kit_text(text, official_gt.instances.class_names,
                                               official_gt.class_ids))]
  if "results" in case:
    out.append(("json", thumos14_kit.read_detections_json(
        {"results": case["results"]}, official_gt.instances.class_names)))
  return out


def test_parity_official_cases(official_gt, tmp_path):
  cases = _json("thumos14_official/cases.json")["cases"]
  assert cases
  for case in cases:
    kit = case["kit"]
    if "error" in kit and "results" not in case:
      # The kit stops while reading its input (no JSON can hold it): so do we.
      with pytest.raises(EvalInputError, match="line"):
        _case_detections(case, official_gt, tmp_path)
      continue
    for what, detections in _case_detections(case, official_gt, tmp_path):
      result = protocols.evaluate("thumos14_official", official_gt, detections,
                                  [case["tiou"]])
      ap = result.per_class_ap[case["class"]][0]
      where = f"{case['name']} ({what}): {case['rule']}"
      if "error" in kit:
        # The kit stops at run time (README 4, rule 8): salx returns AP 0.
        assert ap == 0 and result.mAP[0] == 0, where
      else:
        assert abs(ap - kit["AP"]) <= ATOL, where
        assert abs(result.mAP[0] - kit["mAP"]) <= ATOL, where


# ---------------------------------------------------------------------------
# W-TALC.


def _in_seconds(detections):
  """Snippet rows as salx's detections hold them: seconds = snippets * 16 / 25."""
  return dataclasses.replace(detections, start=detections.start * 16 / 25,
                             end=detections.end * 16 / 25)


def _wtalc_blocks(expected):
  return [k for k, v in expected.items() if isinstance(v, dict) and "per_class_AP" in v]


def _wtalc_rows(expected, block, rows):
  """The prediction rows a pipeline evaluates (SPEC-CO2NET-DELU 5.6)."""
  keep = np.asarray(expected["ambiguous_filter_keep"]["keep"], bool)
  length = np.asarray([r[2] - r[1] for r in rows], np.float64)
  select = {"raw": np.ones(len(rows), bool), "ambiguous_filtered": keep,
            "ambiguous_and_length_filtered": keep & (length > 1)}[block]
  return [r for r, s in zip(rows, select) if s]


def _check_wtalc(result_ap, mean_ap, averages, expected_block, class_names, where):
  np.testing.assert_allclose(mean_ap, expected_block["mAP"], rtol=0, atol=ATOL,
                             err_msg=where)
  for i, cls in enumerate(class_names):
    np.testing.assert_allclose(result_ap[:, i], expected_block["per_class_AP"][cls],
                               rtol=0, atol=ATOL, err_msg=f"{where} {cls}")
  for key, value in expected_block.items():
    if key == "avg_all":
      assert abs(np.mean(mean_ap) - value) <= ATOL, where
    elif key.startswith("avg_"):
      name = "AVG({}:{})".format(*key.split("_")[1:])
      assert abs(averages[name] - value) <= ATOL, f"{where} {key}"


def test_parity_wtalc_ground_truth_in_snippets():
  expected = _json("co2net_delu/wtalc_eval_expected.json")
  gt = wtalc_eval.ground_truth_from_json(expected)
  assert len(gt.video_ids) == expected["ground_truth"]["n_videos"]
  snippets = wtalc_eval.ground_truth_to_snippets(gt)
  rows = [[gt.video_ids[v], int(s), int(e), int(c)] for v, s, e, c in
          zip(snippets.video, snippets.start, snippets.end, snippets.label)]
  assert rows == expected["ground_truth_snippets"]["rows"]


def test_parity_wtalc_pipelines():
  expected = _json("co2net_delu/wtalc_eval_expected.json")
  rows = _json("co2net_delu/wtalc_eval_predictions.json")["rows"]
  assert len(rows) == expected["n_input_rows"]
  class_names = expected["class_names"]
  th = expected["tiou_thresholds"]
  gt = wtalc_eval.ground_truth_from_json(expected)
  blocks = _wtalc_blocks(expected)
  assert set(blocks) >= {"raw", "ambiguous_filtered", "ambiguous_and_length_filtered"}
  for block in blocks:
    selected = _wtalc_rows(expected, block, rows)
    assert len(selected) == expected[block]["n_predictions"], block
    detections = wtalc_eval.detections_from_rows(selected, class_names)
    # Snippet level: the rows as their evaluator holds them.
    ap = wtalc_eval.average_precision_snippets(
        wtalc_eval.ground_truth_to_snippets(gt), detections, th)
    values, _ = protocols.averages(protocols.WTALC, th, ap.mean(axis=1))
    _check_wtalc(ap, ap.mean(axis=1), values, expected[block], class_names,
                 f"{block} (snippets)")
    # The protocol, in seconds: integer snippets come back exact.
    seconds = _in_seconds(detections)
    back = wtalc_eval.detections_to_snippets(seconds)
    np.testing.assert_array_equal(back.start, detections.start)
    np.testing.assert_array_equal(back.end, detections.end)
    result = protocols.evaluate("wtalc", gt, seconds, th)
    assert result.num_predictions == expected[block]["n_predictions"]
    assert (result.num_videos, result.num_instances) == (len(gt.video_ids),
                                                         gt.num_instances)
    _check_wtalc(result.ap.T, result.mAP, result.averages, expected[block], class_names,
                 f"{block} (protocol, seconds)")


def test_parity_wtalc_annotation_folder(tmp_path):
  """The datasets-tier reader: a W-TALC folder written from the fixture's ground
  truth (plus a validation video and a test video without segments) gives the
  same ground truth and the same AP."""
  expected = _json("co2net_delu/wtalc_eval_expected.json")
  class_names = expected["class_names"]
  videos = expected["ground_truth"]["videos"]
  names = ["video_validation_0000001"] + list(videos) + ["video_test_9999998"]
  segments = [[[1.0, 2.0]]] + [[r[1:] for r in v] for v in videos.values()] + [[]]
  labels = [[class_names[0]]] + [[class_names[r[0]] for r in v]
                                 for v in videos.values()] + [[]]
  arrays = {
      "videoname": np.array([n.encode() for n in names], np.bytes_),
      "subset": np.array([b"validation"] + [b"test"] * (len(names) - 1), np.bytes_),
      "segments": npy.object_array(segments),
      "labels": npy.object_array(labels),
      "classlist": np.array([c.encode() for c in class_names], np.bytes_),
  }
  folder = tmp_path / "Thumos14reduced-Annotations"
  folder.mkdir()
  for field, array in arrays.items():
    npy.save_npy(folder / f"{field}.npy", array)
  gt = protocol_ground_truth.load_ground_truth("wtalc", folder)
  reference = wtalc_eval.ground_truth_from_json(expected)
  assert gt.video_ids == reference.video_ids and gt.class_names == reference.class_names
  for field in ("video", "label", "start", "end"):
    np.testing.assert_array_equal(getattr(gt, field), getattr(reference, field))
  rows = _json("co2net_delu/wtalc_eval_predictions.json")["rows"]
  detections = wtalc_eval.detections_from_rows(rows, class_names)
  seconds = _in_seconds(detections)
  result = protocols.evaluate("wtalc", gt, seconds, expected["tiou_thresholds"])
  _check_wtalc(result.ap.T, result.mAP, result.averages, expected["raw"], class_names,
               "raw (annotation folder)")


def test_parity_protocol_registry_and_literal_thresholds():
  for name in ("activitynet", "thumos14_official", "wtalc"):
    protocol = protocols.get_protocol(name)
    assert protocol.name == name
    literal = list(protocol.tiou_thresholds) + [t for a in protocol.averages
                                                for t in a.thresholds]
    assert all(t == float(f"{t:.2f}") for t in literal), name  # 0.85 is 0.85
  assert 0.85 in protocols.get_protocol("activitynet").averages[-1].thresholds
  assert 0.9 in protocols.get_protocol("wtalc").tiou_thresholds
  with pytest.raises(ValueError, match="unknown evaluation protocol 'kit'"):
    protocols.get_protocol("kit")


def test_parity_wtalc_ignores_labels_outside_the_classes():
  """W-TALC's evaluator never sees a row whose label is not a class index (6.5.7)."""
  expected = _json("co2net_delu/wtalc_eval_expected.json")
  rows = _json("co2net_delu/wtalc_eval_predictions.json")["rows"]
  video = rows[0][0]
  extra = [[video, 0.0, 5.0, float(len(expected["class_names"])), 2.0],
           [video, 0.0, 5.0, 3.5, 2.0]]
  gt = wtalc_eval.ground_truth_to_snippets(wtalc_eval.ground_truth_from_json(expected))
  detections = wtalc_eval.detections_from_rows(rows + extra, expected["class_names"])
  ap = wtalc_eval.average_precision_snippets(gt, detections, expected["tiou_thresholds"])
  np.testing.assert_allclose(ap.mean(axis=1), expected["raw"]["mAP"], rtol=0, atol=ATOL)
