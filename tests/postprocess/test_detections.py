"""Unit tests of salx.postprocess.detections: the type, its JSON reader and writer."""

import numpy as np
import pytest

from salx.postprocess.detections import Detections
from salx.postprocess.inputs import EvalInputError


def _preds(videos):
  """{video: [(label, score, start, end), ...]} -> ActivityNet results JSON."""
  return {"results": {v: [{"label": l, "score": sc, "segment": [s, e]}
                          for l, sc, s, e in dets] for v, dets in videos.items()}}


def _detections():
  return Detections(("v1", "v2", "v3"), ("A", "B"), np.array([0, 0, 2]),
                    np.array([1, 0, 0]), np.array([0.4, 0.9, 0.3]),
                    np.array([0.0, 1.0, 0.0]), np.array([3.0, 9.0, 1.0]))


def test_json_round_trip_keeps_videos_order_and_values():
  det = _detections()
  data = det.to_json(details="test run")
  assert data["version"] == "VERSION 1.3"
  assert data["external_data"] == {"used": True, "details": "test run"}
  assert data["results"] == {
      "v1": [{"label": "B", "score": 0.4, "segment": [0.0, 3.0]},
             {"label": "A", "score": 0.9, "segment": [1.0, 9.0]}],
      "v2": [],  # a localized video without detections still has its entry
      "v3": [{"label": "A", "score": 0.3, "segment": [0.0, 1.0]}]}
  back = Detections.from_json(data, class_names=("A", "B"))
  assert back.video_names == det.video_names and back.source == "<dict>"
  for field in ("video", "label", "score", "start", "end"):
    assert np.array_equal(getattr(back, field), getattr(det, field)), field
  # Without class names, labels index their order of first appearance.
  assert Detections.from_json(data).class_names == ("B", "A")


def test_take_and_concatenate():
  det = _detections()
  kept = det.take(det.label == 0)
  assert kept.score.tolist() == [0.9, 0.3] and kept.video_names == det.video_names
  both = Detections.concatenate([det, kept])
  assert both.video_names == det.video_names * 2
  assert both.video.tolist() == [0, 0, 2, 3, 5]
  other = Detections(("v9",), ("Z",), *(np.zeros(0, int),) * 2, *(np.zeros(0),) * 3)
  with pytest.raises(ValueError, match="different class names"):
    Detections.concatenate([det, other])


def test_inconsistent_arrays_are_rejected():
  with pytest.raises(ValueError, match="start"):
    Detections(("v",), ("A",), np.zeros(2, int), np.zeros(2, int), np.zeros(2),
               np.zeros(3), np.zeros(2))
  with pytest.raises(ValueError, match="label index"):
    Detections(("v",), ("A",), np.zeros(1, int), np.ones(1, int), np.zeros(1),
               np.zeros(1), np.zeros(1))


@pytest.mark.parametrize("data, message", [
    ({"database": {}}, "no 'results'"),
    ({"results": {"v1": {}}}, "video v1: detections are not a list"),
    ({"results": {"v1": [{"label": "A", "score": 1}]}}, "video v1: detection 0 lacks"),
    (_preds({"v1": [("A", 0.5, 2, 1)]}), "video v1: segment end 1.0 < start 2.0"),
    (_preds({"v1": [("A", float("nan"), 0, 1)]}), "video v1: score nan is not a finite"),
    (_preds({"v1": [("A", 0.5, 0, float("inf"))]}), "segment [0.0, inf] is not finite"),
    (_preds({"v1": [("A", "high", 0, 1)]}), "scores must be numbers"),
    ({"results": {"v1": [{"label": "A", "score": 1, "segment": [1]}]}}, "pairs"),
])
def test_bad_json_names_the_source_and_problem(data, message):
  with pytest.raises(EvalInputError) as error:
    Detections.from_json(data)
  assert str(error.value).startswith("<dict>: ") and message in str(error.value)


def test_label_outside_the_given_class_names(tmp_path):
  with pytest.raises(EvalInputError, match="video v1: label 'Z' is not among the 2"):
    Detections.from_json(_preds({"v1": [("Z", 0.5, 0, 1)]}), class_names=("A", "B"))
  path = tmp_path / "p.json"
  path.write_text('{"results": {"v1": [')
  with pytest.raises(EvalInputError, match=f"{path}: malformed JSON"):
    Detections.from_json(path)
