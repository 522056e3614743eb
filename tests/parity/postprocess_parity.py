"""Reading the authors' postprocess fixtures: their settings, their videos as a batch.

A `*_postprocess_expected.json` holds the `config` the authors' inference ran with
and, per video, `vid_num_seg` (L), `predicted_classes` and `detections` in the
official order; the `*_postprocess_inputs.npz` holds per video `<video>/cas` [T, C],
`action_flow`, `action_rgb` [T] and `sc` [C]. Nothing here assumes the number of
videos, their names, T or C.
"""

import json

import numpy as np

from salx.methods.sal import hparams as sal_hparams
from salx.postprocess import arrays
from salx.postprocess import localization
from salx.postprocess import scores

# Fixture config key -> (Variant field, conversion).
_VARIANT_FIELDS = {
    "num_segments": ("num_segments", int),
    "r": ("inference_topk_divisor", int),
    "beta": ("beta", float),
    "class_thresh": ("class_thresh", float),
    "scale": ("upsample_scale", int),
    "feature_fps": ("feature_fps", float),
    "frames_per_segment": ("frames_per_segment", int),
    "gamma": ("gamma", float),
    "outer_lambda": ("outer_lambda", float),
    "act_thresh": ("act_thresholds", lambda x: tuple(float(v) for v in x)),
    "nms_thresh": ("nms_thresh", float),
    "nms_alpha": ("nms_alpha", float),
    "soft_nms": ("soft_nms", bool),
    "combine_weights": ("combine_weights", lambda w: (float(w["softmax_cas"]),
                                                      float(w["action_flow"]),
                                                      float(w["action_rgb"]))),
    "tiou_thresholds": ("tiou_thresholds", lambda x: tuple(float(v) for v in x)),
}
# Config keys that are not inference settings of a Variant.
_OTHER_KEYS = {"keep_all_if_shorter", "class_names"}


def load(inputs_name, expected_name, fixture_file):
  """(inputs npz as a dict, expected JSON) of a postprocess fixture."""
  with np.load(fixture_file(inputs_name)) as data:
    inputs = {k: data[k] for k in data.files}
  with open(fixture_file(expected_name)) as f:
    return inputs, json.load(f)


def variant_from_config(config: dict, base: sal_hparams.SALHparams) -> sal_hparams.SALHparams:
  """`base` with every inference setting the fixture's config names taken from it."""
  unknown = set(config) - set(_VARIANT_FIELDS) - _OTHER_KEYS
  assert not unknown, f"fixture config keys this test does not read: {sorted(unknown)}"
  return base.replace(**{field: convert(config[key])
                         for key, (field, convert) in _VARIANT_FIELDS.items()
                         if key in config})


def assert_shipped_agrees(config: dict, shipped: sal_hparams.SALHparams) -> None:
  """The shipped variant has the fixture's value of every setting both name."""
  for key, (field, convert) in _VARIANT_FIELDS.items():
    if key in config:
      assert getattr(shipped, field) == convert(config[key]), (
          f"{shipped.name}.{field} = {getattr(shipped, field)}, the authors' "
          f"{key} = {config[key]}")


def localize_fixture(inputs, expected, variant, class_names, dtype=np.float64):
  """The fixture's videos localized as one padded batch: (video names, Localization)."""
  videos = list(expected["videos"])
  cas, lengths = arrays.pad_stack([inputs[f"{v}/cas"] for v in videos], dtype)
  flow = arrays.pad_stack([inputs[f"{v}/action_flow"] for v in videos], dtype)[0]
  rgb = arrays.pad_stack([inputs[f"{v}/action_rgb"] for v in videos], dtype)[0]
  logits = np.stack([inputs[f"{v}/sc"] for v in videos]).astype(dtype)
  num_snippets = [expected["videos"][v]["vid_num_seg"] for v in videos]
  return videos, localization.localize(
      cas, flow, rgb, logits, lengths, num_snippets, variant, video_names=videos,
      class_names=class_names, dtype=dtype)


def compare_video(localized, row: int, expected_video: dict, score_tol: float,
                  segment_tol: float) -> None:
  """Predicted classes and detections of batch row `row` against the authors'.

  Labels and order exactly; scores and segments within the tolerances.
  """
  name = localized.detections.video_names[row]
  assert np.flatnonzero(localized.predicted[row]).tolist() == \
      expected_video["predicted_classes"], name
  mine = localized.detections.to_json()["results"][name]
  theirs = expected_video["detections"]
  assert len(mine) == len(theirs), (name, len(mine), len(theirs))
  for i, (a, b) in enumerate(zip(mine, theirs)):
    assert a["label"] == b["label"], (name, i)
    assert abs(a["score"] - b["score"]) <= score_tol, (name, i, a, b)
    assert abs(a["segment"][0] - b["segment"][0]) <= segment_tol, (name, i, a, b)
    assert abs(a["segment"][1] - b["segment"][1]) <= segment_tol, (name, i, a, b)


def compare_intermediates(inputs, expected, variant) -> None:
  """comb and the video scores of every video against the authors' (1e-12)."""
  for video in expected["videos"]:
    cas = inputs[f"{video}/cas"]
    comb = scores.combined_score(cas, inputs[f"{video}/action_flow"],
                                 inputs[f"{video}/action_rgb"], variant.combine_weights)
    np.testing.assert_allclose(comb, inputs[f"{video}/combined_cas"], rtol=0, atol=1e-12,
                               err_msg=video)
    s = scores.video_class_scores(cas, comb, inputs[f"{video}/sc"], variant)
    np.testing.assert_allclose(s, inputs[f"{video}/video_scores"], rtol=0, atol=1e-12,
                               err_msg=video)
