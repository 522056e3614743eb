"""Parity with the authors' ActivityNet inference, localization and evaluation (SPEC 4, 5).

Fixture: `anet13_postprocess_inputs.npz` (per video `<video>/cas` [T, C],
`action_flow`, `action_rgb` [T], `sc` [C], intermediates `combined_cas`,
`video_scores`) and `anet13_postprocess_expected.json`: the `config` of the
authors' run (class names included), per video `vid_num_seg` (L), `num_segments`
(T: L when 1 < L <= 50), `predicted_classes` and `detections` in the official
order, and an `evaluation` block (ground truth, subset, mAP per tIoU, average)
of those detections. The videos go through `localize` as one batch with their
valid lengths, with the settings of the fixture's config; their detections
through `evaluate_detections`. Nothing here assumes the number of videos, their
names, T or C.
"""

import numpy as np
import pytest

from salx.methods.sal import hparams as sal_hparams
from salx.postprocess import ap
from salx.postprocess import ground_truth as ground_truth_lib

from tests.parity import postprocess_parity as pp
from tests.conftest import data_file, fixture_file


@pytest.fixture(scope="module")
def anet13():
  inputs, expected = pp.load("anet13_postprocess_inputs.npz",
                             "anet13_postprocess_expected.json", fixture_file)
  variant = pp.variant_from_config(expected["config"], sal_hparams.ACTIVITYNET)
  videos, localized = pp.localize_fixture(inputs, expected, variant,
                                          expected["config"]["class_names"])
  return inputs, expected, variant, videos, localized


def test_anet13_postprocess_parity_shipped_settings(anet13):
  _, expected, _, _, _ = anet13
  pp.assert_shipped_agrees(expected["config"], sal_hparams.ACTIVITYNET)


def test_anet13_postprocess_parity_detections(anet13):
  inputs, expected, _, videos, localized = anet13
  for row, video in enumerate(videos):
    info = expected["videos"][video]
    assert inputs[f"{video}/cas"].shape[0] == info["num_segments"], video
    pp.compare_video(localized, row, info, 1e-9, 1e-9)


def test_anet13_postprocess_parity_intermediates(anet13):
  inputs, expected, variant, _, _ = anet13
  pp.compare_intermediates(inputs, expected, variant)


def test_anet13_postprocess_parity_evaluation(anet13):
  _, expected, variant, _, localized = anet13
  block = expected["evaluation"]
  gt = block["ground_truth"]
  gt = ground_truth_lib.load_ground_truth(gt if isinstance(gt, dict) else data_file(gt),
                                          block["subset"])
  result = ap.evaluate_detections(gt, localized.detections, variant.tiou_thresholds)
  np.testing.assert_allclose(result.mAP, block["mAP"], rtol=0, atol=1e-12)
  assert abs(result.average_mAP - block["average_mAP"]) <= 1e-12
