"""Parity with the authors' inference and localization (SPEC 3).

Fixture: `thumos14_postprocess_inputs.npz` (per video `<video>/cas` [T, C],
`action_flow`, `action_rgb` [T], `sc` [C], intermediates `combined_cas`,
`video_scores`) and `thumos14_postprocess_expected.json` (config, and per video
`vid_num_seg`, `predicted_classes`, `detections` in the authors' order). Nothing
here assumes the number of videos, T or C.
"""

import json

import numpy as np
import pytest

from salx.postprocess import localization
from salx.core import variants

from tests.conftest import fixture_file

# THUMOS14's 20 classes in the model's (alphabetical) order.
THUMOS14_CLASSES = (
    "BaseballPitch", "BasketballDunk", "Billiards", "CleanAndJerk", "CliffDiving",
    "CricketBowling", "CricketShot", "Diving", "FrisbeeCatch", "GolfSwing",
    "HammerThrow", "HighJump", "JavelinThrow", "LongJump", "PoleVault", "Shotput",
    "SoccerPenalty", "TennisSwing", "ThrowDiscus", "VolleyballSpiking")


@pytest.fixture(scope="module")
def postprocess():
  inputs = np.load(fixture_file("thumos14_postprocess_inputs.npz"))
  with open(fixture_file("thumos14_postprocess_expected.json")) as f:
    expected = json.load(f)
  return inputs, expected


def _class_names(expected, num_classes):
  """THUMOS14 names for C = 20; otherwise names read off the expected labels."""
  if num_classes == len(THUMOS14_CLASSES):
    return list(THUMOS14_CLASSES)
  names = [f"class_{c}" for c in range(num_classes)]
  for video in expected["videos"].values():
    labels = list(dict.fromkeys(d["label"] for d in video["detections"]))
    if len(labels) == len(video["predicted_classes"]):
      for c, label in zip(video["predicted_classes"], labels):
        names[c] = label
  return names


def _variant_from_config(config):
  """The THUMOS14 Variant, after checking the fixture used its settings."""
  v = variants.THUMOS14
  assert config["r"] == v.inference_topk_divisor
  assert config["beta"] == v.beta
  assert config["class_thresh"] == v.class_thresh
  assert config["scale"] == v.upsample_scale
  assert config["feature_fps"] == v.feature_fps
  assert config["frames_per_segment"] == v.frames_per_segment
  assert config["gamma"] == v.gamma
  assert config["outer_lambda"] == v.outer_lambda
  assert tuple(config["act_thresh"]) == v.act_thresholds
  assert config["nms_thresh"] == v.nms_thresh
  assert config["nms_alpha"] == v.nms_alpha
  assert config["soft_nms"] == v.soft_nms
  return v


def _localize_all(inputs, expected, dtype):
  variant = _variant_from_config(expected["config"])
  out = {}
  for video, info in expected["videos"].items():
    cas = inputs[f"{video}/cas"]
    names = _class_names(expected, cas.shape[1])
    out[video] = localization.localize_video(
        cas.astype(dtype), inputs[f"{video}/action_flow"].astype(dtype),
        inputs[f"{video}/action_rgb"].astype(dtype), inputs[f"{video}/sc"].astype(dtype),
        info["vid_num_seg"], variant, names, dtype=dtype)
  return out


def _compare(result, expected, score_tol, segment_tol):
  assert result.predicted_classes.tolist() == expected["predicted_classes"]
  mine, theirs = result.detections, expected["detections"]
  assert len(mine) == len(theirs)
  for i, (a, b) in enumerate(zip(mine, theirs)):
    assert a["label"] == b["label"], i
    assert abs(a["score"] - b["score"]) <= score_tol, (i, a, b)
    assert abs(a["segment"][0] - b["segment"][0]) <= segment_tol, (i, a, b)
    assert abs(a["segment"][1] - b["segment"][1]) <= segment_tol, (i, a, b)


def test_thumos14_postprocess_parity_float64(postprocess):
  inputs, expected = postprocess
  results = _localize_all(inputs, expected, np.float64)
  for video, info in expected["videos"].items():
    _compare(results[video], info, 1e-9, 1e-9)


def test_thumos14_postprocess_parity_float32(postprocess):
  inputs, expected = postprocess
  results = _localize_all(inputs, expected, np.float32)
  for video, info in expected["videos"].items():
    _compare(results[video], info, 1e-5, 1e-9)


def test_thumos14_postprocess_parity_intermediates(postprocess):
  inputs, expected = postprocess
  variant = _variant_from_config(expected["config"])
  for video in expected["videos"]:
    cas = inputs[f"{video}/cas"]
    comb = localization.combined_score(cas, inputs[f"{video}/action_flow"],
                                       inputs[f"{video}/action_rgb"],
                                       variant.combine_weights)
    np.testing.assert_allclose(comb, inputs[f"{video}/combined_cas"], rtol=0, atol=1e-12)
    scores = localization.video_class_scores(cas, comb, inputs[f"{video}/sc"], variant)
    np.testing.assert_allclose(scores, inputs[f"{video}/video_scores"], rtol=0, atol=1e-12)


def test_thumos14_postprocess_parity_batch_equals_single(postprocess):
  inputs, expected = postprocess
  variant = _variant_from_config(expected["config"])
  outputs = {
      video: {"cas": inputs[f"{video}/cas"], "action_flow": inputs[f"{video}/action_flow"],
              "action_rgb": inputs[f"{video}/action_rgb"], "sc": inputs[f"{video}/sc"],
              "num_snippets": info["vid_num_seg"]}
      for video, info in expected["videos"].items()}
  names = _class_names(expected, next(iter(outputs.values()))["cas"].shape[1])
  batch = localization.localize_batch(outputs, variant, names)
  for video, info in expected["videos"].items():
    _compare(batch[video], info, 1e-9, 1e-9)
