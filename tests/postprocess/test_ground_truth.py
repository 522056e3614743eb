"""Unit tests of salx.postprocess.ground_truth: loading, ambiguous segments."""

import numpy as np
import pytest

from salx.postprocess import ground_truth as gt_lib
from salx.postprocess.detections import Detections
from salx.postprocess.inputs import EvalInputError

from tests.conftest import data_file


def _gt(videos):
  """{video: [(label, start, end), ...]} -> ground truth JSON, subset test."""
  return {"database": {v: {"subset": "test", "annotations": [
      {"label": l, "segment": [str(s), str(e)]} for l, s, e in anns]}
                       for v, anns in videos.items()}}


def test_load_ground_truth_strings_subsets_and_empty_subset():
  data = _gt({"v1": [("A", 1.5, 2.5)]})
  data["database"]["v2"] = {"subset": "validation", "annotations": [
      {"label": "B", "segment": [0, 1]}]}
  gt = gt_lib.load_ground_truth(data, "test")
  assert gt.video_ids == ("v1",) and gt.class_names == ("A",)
  assert gt.start.tolist() == [1.5] and gt.end.tolist() == [2.5]
  assert gt_lib.load_ground_truth(data, "validation").class_names == ("B",)
  with pytest.raises(EvalInputError, match="subset 'train' is empty"):
    gt_lib.load_ground_truth(data, "train")
  bad = _gt({"v1": [("A", 3, 2)]})
  with pytest.raises(EvalInputError, match="video v1 annotation 0: segment end 2.0 < start"):
    gt_lib.load_ground_truth(bad, "test")


def test_ambiguous_overlap_dropped_touching_kept(tmp_path):
  path = tmp_path / "Ambiguous_test.txt"
  path.write_text("v1  10.0 20.0\r\nv2 0 5\n")
  ambiguous = gt_lib.load_ambiguous(path)
  assert ambiguous.source == "Ambiguous_test.txt"
  assert ambiguous.segments["v1"].tolist() == [[10.0, 20.0]]
  det = Detections(("v1", "v3"), ("A",), np.array([0, 0, 0, 1]), np.zeros(4, int),
                   np.array([0.9, 0.8, 0.7, 0.6]), np.array([0.0, 19.0, 20.0, 12.0]),
                   np.array([5.0, 30.0, 25.0, 14.0]))
  kept, dropped = gt_lib.drop_ambiguous(det, ambiguous)
  # Only [19, 30] of v1 overlaps [10, 20] with positive length; v3 has no segments.
  assert dropped == 1 and kept.score.tolist() == [0.9, 0.7, 0.6]
  path.write_text("v1 1.0\n")
  with pytest.raises(EvalInputError, match="line 1: expected 'video start end'"):
    gt_lib.load_ambiguous(path)


def test_thumos14_ground_truth_files():
  gt210 = gt_lib.load_ground_truth(data_file("thumos14/gt.json"), "test")
  assert (len(gt210.video_ids), gt210.num_instances, len(gt210.class_names)) == (210, 3311, 20)
  gt212 = gt_lib.load_ground_truth(data_file("thumos14/gt_acmnet_with_duration.json"), "test")
  assert (len(gt212.video_ids), gt212.num_instances) == (212, 3358)
  ambiguous = gt_lib.load_ambiguous(
      data_file("thumos14/official_annotations/test/Ambiguous_test.txt"))
  assert sum(len(s) for s in ambiguous.segments.values()) == 99
