"""Parity with CO2-Net's and DELU's inference and proposals (SPEC-CO2NET-DELU 5, 6.6).

Fixtures (`tests/fixtures/co2net_delu/README.md`): `wtalc_postprocess_inputs.npz`
(per video `video_XX/cas` [T, C+1], `attn` [T], `name`) and
`wtalc_postprocess_expected.json` (`config`, and per video `cls_score`,
`predicted_classes`, `classification_score`, `co2net_detections`,
`delu_detections`, `delu_detections_after_length_filter`: rows [t-start, t-end,
score, label] in their output order). Every video of the files goes through
`propose` as one batch with the settings of the fixture's config; the
Ambiguous file is the shipped copy of the official one. The classification mAP
(6.6) is checked on `wtalc_eval_predictions.json` against
`wtalc_eval_expected.json`, with W-TALC's labels_all (not in the fixtures: read
from the public annotations, `thumos14/wtalc_thumos14reduced_videos.csv`).

`pytest -k "parity and co2net"` selects the CO2-Net checks, `-k "parity and
delu"` the DELU ones.
"""

import json
import re

import numpy as np
import pytest

from salx.postprocess import wtalc_filters
from salx.postprocess import wtalc_proposals as wp

from tests.conftest import fixture_file, wtalc_videos

SCORE_TOL = 1e-9
METHODS = ("co2net", "delu")


def _config_number(text: str, pattern: str) -> float:
  match = re.search(pattern, text)
  assert match, f"config entry {text!r} does not state {pattern!r}"
  return float(match.group(1))


@pytest.fixture(scope="module")
def fixture():
  """(inputs per video, expected per video, settings, video keys, names, classes)."""
  expected = json.loads(fixture_file("co2net_delu/wtalc_postprocess_expected.json").read_text())
  with np.load(fixture_file("co2net_delu/wtalc_postprocess_inputs.npz")) as data:
    keys = sorted(expected["videos"])
    assert keys and all(f"{k}/cas" in data.files for k in keys)
    inputs = {k: {f: data[f"{k}/{f}"] for f in ("cas", "attn", "name")} for k in keys}
  config = expected["config"]
  frames, fps = config["ambiguous_factor"].split("/")[::-1]
  settings = {
      "class_threshold": float(config["class_threshold"]),
      "top_k_divisor": int(_config_number(config["cls_score"], r"T // (\d+)")),
      "outer_lambda": float(config["oic_outer_lambda"]),
      "gamma": float(config["gamma_oic"]),
      "sigma": _config_number(config["soft_nms"], r"sigma ([0-9.]+)"),
  }
  filters = {"frames_per_snippet": int(frames), "fps": float(fps),
             "min_length": _config_number(config["delu_length_filter"], r"> ([0-9.]+)")}
  names = [str(inputs[k]["name"]) for k in keys]
  num_classes = int(config["classes"])
  classes = [f"class_{c}" for c in range(num_classes)]
  return inputs, expected, config, settings, filters, keys, names, classes


@pytest.fixture(scope="module")
def ambiguous():
  # The README's ../../data/thumos14/official_annotations/test/Ambiguous_test.txt
  # is not shipped; this copy has the same content.
  return wtalc_filters.read_ambiguous(fixture_file("thumos14_official/gt/Ambiguous_test.txt"))


def _num_thresholds(config, method):
  thresholds = config["act_thresh"][method]
  np.testing.assert_array_equal(wp.activation_thresholds(len(thresholds)), thresholds)
  return len(thresholds)


def _propose(fixture, method):
  inputs, _, config, settings, _, keys, _, _ = fixture
  return wp.propose([inputs[k]["cas"] for k in keys], [inputs[k]["attn"] for k in keys],
                    num_thresholds=_num_thresholds(config, method), **settings)


def _assert_rows(got, expected_rows, what):
  expected_rows = np.asarray(expected_rows, np.float64).reshape(-1, 4)
  assert got.shape == expected_rows.shape, f"{what}: {got.shape[0]} rows, expected " \
                                           f"{expected_rows.shape[0]}"
  np.testing.assert_array_equal(got[:, [0, 1, 3]], expected_rows[:, [0, 1, 3]],
                                err_msg=f"{what}: t-start, t-end or label (order)")
  np.testing.assert_allclose(got[:, 2], expected_rows[:, 2], rtol=0, atol=SCORE_TOL,
                             err_msg=f"{what}: scores")


@pytest.mark.parametrize("method", METHODS)
def test_wtalc_parity_class_scores(fixture, method):
  inputs, expected, _, settings, _, keys, _, _ = fixture
  proposals = _propose(fixture, method)
  for v, key in enumerate(keys):
    video = expected["videos"][key]
    assert inputs[key]["cas"].shape[0] == video["T"]
    np.testing.assert_allclose(proposals.class_scores[v], video["cls_score"], rtol=0,
                               atol=1e-12, err_msg=key)
    np.testing.assert_allclose(
        wp.video_class_scores(inputs[key]["cas"], inputs[key]["attn"],
                              settings["top_k_divisor"]), video["cls_score"], rtol=0,
        atol=1e-12, err_msg=key)
    assert np.flatnonzero(proposals.predicted[v]).tolist() == video["predicted_classes"], key
    np.testing.assert_allclose(wp.classification_scores(inputs[key]["cas"]),
                               video["classification_score"], rtol=0, atol=1e-12,
                               err_msg=key)


@pytest.mark.parametrize("method", METHODS)
def test_wtalc_parity_detections(fixture, ambiguous, method):
  _, expected, _, _, filters, keys, names, _ = fixture
  proposals = wp.filter_rows(_propose(fixture, method), names, ambiguous=ambiguous,
                             frames_per_snippet=filters["frames_per_snippet"],
                             fps=filters["fps"])
  for v, key in enumerate(keys):
    _assert_rows(proposals.rows(v), expected["videos"][key][f"{method}_detections"],
                 f"{method} {key} ({expected['videos'][key]['flavour']})")


def test_wtalc_parity_delu_length_filter(fixture, ambiguous):
  _, expected, _, _, filters, keys, names, _ = fixture
  proposals = wp.filter_rows(_propose(fixture, "delu"), names, ambiguous=ambiguous,
                             min_length=filters["min_length"],
                             frames_per_snippet=filters["frames_per_snippet"],
                             fps=filters["fps"])
  for v, key in enumerate(keys):
    _assert_rows(proposals.rows(v),
                 expected["videos"][key]["delu_detections_after_length_filter"],
                 f"delu {key} after the length filter")


@pytest.mark.parametrize("method", METHODS)
def test_wtalc_parity_detections_in_seconds(fixture, ambiguous, method):
  """`detections`: the one Detections type, seconds = snippets * 16 / 25."""
  inputs, expected, config, settings, filters, keys, names, classes = fixture
  min_length = filters["min_length"] if method == "delu" else None
  found = wp.detections([inputs[k]["cas"] for k in keys], [inputs[k]["attn"] for k in keys],
                        names, classes, num_thresholds=_num_thresholds(config, method),
                        ambiguous=ambiguous, min_length=min_length,
                        frames_per_snippet=filters["frames_per_snippet"], fps=filters["fps"],
                        **settings)
  field = "delu_detections_after_length_filter" if method == "delu" else "co2net_detections"
  assert found.video_names == tuple(names) and found.class_names == tuple(classes)
  per_second = filters["frames_per_snippet"] / filters["fps"]
  for v, key in enumerate(keys):
    mine = found.video == v
    rows = np.stack([found.start[mine] / per_second, found.end[mine] / per_second,
                     found.score[mine], found.label[mine]], axis=1)
    rows[:, :2] = np.round(rows[:, :2])
    _assert_rows(rows, expected["videos"][key][field], f"{method} {key} in seconds")
    expected_rows = np.asarray(expected["videos"][key][field], np.float64).reshape(-1, 4)
    np.testing.assert_allclose(found.start[mine], expected_rows[:, 0] * per_second,
                               rtol=1e-15, atol=0)


def _labels_all(videos, class_names):
  """W-TALC's labels_all [V, C] of the test videos (video_test_0000270 has none)."""
  table = {video: names for _, video, _, names in wtalc_videos()}
  labels = np.zeros((len(videos), len(class_names)))
  column = {c: i for i, c in enumerate(class_names)}
  for v, video in enumerate(videos):
    labels[v, [column[c] for c in table[video]]] = 1
  return labels


def test_wtalc_parity_co2net_delu_classification_map():
  predictions = json.loads(fixture_file("co2net_delu/wtalc_eval_predictions.json").read_text())
  expected = json.loads(fixture_file("co2net_delu/wtalc_eval_expected.json").read_text())
  videos = predictions["classification"]["videos"]
  scores = np.asarray(predictions["classification"]["scores"], np.float64)
  assert set(videos) == set(expected["ground_truth"]["videos"])
  labels = _labels_all(videos, expected["class_names"])
  cmap = wp.classification_map(scores, labels)
  assert abs(cmap - expected["classification_mAP"]) <= 1e-12, (cmap,
                                                               expected["classification_mAP"])
