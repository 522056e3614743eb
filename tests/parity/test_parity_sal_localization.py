"""Parity with the authors' THUMOS14 inference and localization (SPEC 3).

Fixture: `thumos14_postprocess_inputs.npz` (per video `<video>/cas` [T, C],
`action_flow`, `action_rgb` [T], `sc` [C], intermediates `combined_cas`,
`video_scores`) and `thumos14_postprocess_expected.json` (config, and per video
`vid_num_seg`, `predicted_classes`, `detections` in the authors' order). The
videos go through `localize` as one batch, with the settings of the fixture's
config. Nothing here assumes the number of videos, T or C.
"""

import numpy as np
import pytest

from salx.methods.sal import hparams as sal_hparams

from tests.parity import postprocess_parity as pp
from tests.conftest import fixture_file

# THUMOS14's 20 classes in the model's (alphabetical) order.
THUMOS14_CLASSES = (
    "BaseballPitch", "BasketballDunk", "Billiards", "CleanAndJerk", "CliffDiving",
    "CricketBowling", "CricketShot", "Diving", "FrisbeeCatch", "GolfSwing",
    "HammerThrow", "HighJump", "JavelinThrow", "LongJump", "PoleVault", "Shotput",
    "SoccerPenalty", "TennisSwing", "ThrowDiscus", "VolleyballSpiking")


@pytest.fixture(scope="module")
def postprocess():
  inputs, expected = pp.load("thumos14_postprocess_inputs.npz",
                             "thumos14_postprocess_expected.json", fixture_file)
  variant = pp.variant_from_config(expected["config"], sal_hparams.THUMOS14)
  num_classes = inputs[f"{next(iter(expected['videos']))}/cas"].shape[1]
  return inputs, expected, variant, _class_names(expected, num_classes)


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


def test_thumos14_postprocess_parity_shipped_settings(postprocess):
  _, expected, _, _ = postprocess
  pp.assert_shipped_agrees(expected["config"], sal_hparams.THUMOS14)


@pytest.mark.parametrize("dtype, score_tol", [(np.float64, 1e-9), (np.float32, 1e-5)])
def test_thumos14_postprocess_parity(postprocess, dtype, score_tol):
  inputs, expected, variant, names = postprocess
  videos, localized = pp.localize_fixture(inputs, expected, variant, names, dtype)
  assert localized.detections.score.dtype == dtype
  for row, video in enumerate(videos):
    pp.compare_video(localized, row, expected["videos"][video], score_tol, 1e-9)


def test_thumos14_postprocess_parity_intermediates(postprocess):
  inputs, expected, variant, _ = postprocess
  pp.compare_intermediates(inputs, expected, variant)
