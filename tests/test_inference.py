"""Model outputs -> per-video arrays -> detections -> mAP, with no JSON round trip."""

import types

import numpy as np

from salx.postprocess import evaluation
from salx.postprocess import inference
from salx.postprocess import localization
from salx.core import variants

C, T = 3, 64
NAMES = ["class_a", "class_b", "class_c"]


def _batch(rng, lengths):
  b = len(lengths)
  cas = rng.normal(size=(b, T, C)) - 1.0
  flow = rng.uniform(size=(b, T))
  rgb = rng.uniform(size=(b, T))
  for i, n in enumerate(lengths):
    cas[i, n // 4:n // 2, i % C] += 5.0
    flow[i, n // 4:n // 2] = 0.95
    rgb[i, n // 4:n // 2] = 0.95
    cas[i, n:] = np.nan  # padding must never be read
  logits = rng.normal(size=(b, C))
  logits[np.arange(b), np.arange(b) % C] += 4
  return types.SimpleNamespace(cas=cas, action_flow=flow, action_rgb=rgb,
                               video_logits=logits)


def test_per_video_outputs_drop_padding_rows_and_snippets():
  rng = np.random.default_rng(0)
  outputs = _batch(rng, [64, 40, 64])
  per_video = inference.per_video_outputs(outputs, ["v0", "v1", ""], [100, 40, 0],
                                          valid_lengths=[64, 40, 64],
                                          valid=[True, True, False])
  assert list(per_video) == ["v0", "v1"]
  assert per_video["v1"]["cas"].shape == (40, C)
  assert int(per_video["v0"]["num_snippets"]) == 100
  assert not np.isnan(per_video["v1"]["cas"]).any()


def test_fast_path_equals_the_json_path():
  rng = np.random.default_rng(1)
  lengths = [64, 48, 64, 30]
  outputs = _batch(rng, lengths)
  names = [f"video_{i}" for i in range(4)]
  per_video = inference.per_video_outputs(outputs, names, [200, 48, 64, 30],
                                          valid_lengths=lengths)
  database = {}
  for i, name in enumerate(names):
    seconds = [200, 48, 64, 30][i] * 16 / 25
    database[name] = {"subset": "test", "annotations": [
        {"label": NAMES[i % C], "segment": [0.25 * seconds, 0.5 * seconds]}]}
  ground_truth = evaluation.load_ground_truth({"database": database}, "test")
  variant = variants.THUMOS14
  result, localized = inference.localize_and_evaluate(per_video, ground_truth, variant,
                                                      NAMES)
  via_json = evaluation.evaluate_detections(
      ground_truth, localization.detections_json(localized), variant.tiou_thresholds)
  np.testing.assert_allclose(result.mAP, via_json.mAP, rtol=0, atol=1e-15)
  assert result.mAP[0] > 0.5  # the planted instances are found
  assert inference.video_scores(localized).shape == (4, C)
