"""Parity with the official ActivityNet evaluation on THUMOS14 (SPEC 5).

Fixture: `thumos14_eval_predictions.json` (ActivityNet JSON over the test videos,
one video absent from the ground truth) and `thumos14_eval_expected.json` (mAP
per tIoU, average, per-class AP; `ground_truth` is a path under SALX_DATA_DIR).
"""

import json

import numpy as np
import pytest

from salx.postprocess import evaluation

from tests.conftest import data_file, fixture_file


@pytest.fixture(scope="module")
def expected():
  with open(fixture_file("thumos14_eval_expected.json")) as f:
    return json.load(f)


def _ground_truth_file(expected):
  return data_file(expected.get("ground_truth", "thumos14/gt.json"))


def _check(result, expected):
  np.testing.assert_allclose(result.tiou_thresholds, expected["tiou_thresholds"])
  np.testing.assert_allclose(result.mAP, expected["mAP"], rtol=0, atol=1e-12)
  assert abs(result.average_mAP - expected["average_mAP"]) <= 1e-12
  assert set(result.class_names) == set(expected["per_class_AP"])
  for name, ap in result.per_class_ap.items():
    np.testing.assert_allclose(ap, expected["per_class_AP"][name], rtol=0, atol=1e-12,
                               err_msg=name)


def test_thumos14_eval_parity(expected):
  gt = evaluation.load_ground_truth(_ground_truth_file(expected),
                                    expected.get("subset", "test"))
  predictions = fixture_file("thumos14_eval_predictions.json")
  result = evaluation.evaluate_detections(gt, predictions, expected["tiou_thresholds"])
  _check(result, expected)
  if "n_predictions" in expected:
    assert result.num_predictions == expected["n_predictions"]


def test_thumos14_eval_parity_from_dicts(expected):
  with open(_ground_truth_file(expected)) as f:
    gt = json.load(f)
  with open(fixture_file("thumos14_eval_predictions.json")) as f:
    predictions = json.load(f)
  result = evaluation.evaluate_detections(gt, predictions, expected["tiou_thresholds"],
                                          subset=expected.get("subset", "test"))
  _check(result, expected)
