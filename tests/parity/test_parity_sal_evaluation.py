"""Parity with the official ActivityNet evaluation on THUMOS14 (SPEC 5).

Fixture: `thumos14_eval_predictions.json` (ActivityNet JSON over the test videos,
one video absent from the ground truth) and `thumos14_eval_expected.json` (mAP
per tIoU, average, per-class AP; `ground_truth` is a path under SALX_DATA_DIR).
Both files are read as `python -m salx.evaluate` reads them.
"""

import json

import numpy as np

from salx.postprocess import ap
from salx.postprocess import ground_truth as ground_truth_lib
from salx.postprocess.detections import Detections

from tests.conftest import data_file, fixture_file


def test_thumos14_eval_parity():
  with open(fixture_file("thumos14_eval_expected.json")) as f:
    expected = json.load(f)
  gt = ground_truth_lib.load_ground_truth(
      data_file(expected.get("ground_truth", "thumos14/gt.json")),
      expected.get("subset", "test"))
  detections = Detections.from_json(fixture_file("thumos14_eval_predictions.json"))
  result = ap.evaluate_detections(gt, detections, expected["tiou_thresholds"])
  np.testing.assert_allclose(result.tiou_thresholds, expected["tiou_thresholds"])
  np.testing.assert_allclose(result.mAP, expected["mAP"], rtol=0, atol=1e-12)
  assert abs(result.average_mAP - expected["average_mAP"]) <= 1e-12
  assert set(result.class_names) == set(expected["per_class_AP"])
  for name, class_ap in result.per_class_ap.items():
    np.testing.assert_allclose(class_ap, expected["per_class_AP"][name], rtol=0,
                               atol=1e-12, err_msg=name)
  if "n_predictions" in expected:
    assert result.num_predictions == expected["n_predictions"]
