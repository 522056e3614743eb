"""From model outputs of test videos to detections and their mAP (SPEC 3-5).

TF-free glue between the jitted evaluation forward, `salx.postprocess.localization` and
`salx.postprocess.evaluation`, shared by the training loop and the benchmarks:

    forward = sharding.jit_eval_forward(train_step.make_eval_forward(model), mesh)
    outputs = forward(params, features, mask)                    # [B, T, ...]
    per_video = inference.per_video_outputs(outputs, names, num_snippets, lengths)
    result, localized = inference.localize_and_evaluate(
        per_video, ground_truth, variant, class_names)
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np

from salx.postprocess import evaluation
from salx.postprocess import localization
from salx.core.variants import Variant

VideoOutputs = Dict[str, np.ndarray]


def per_video_outputs(outputs: Any, names: Sequence[str], num_snippets: Sequence[int],
                      valid_lengths: Optional[Sequence[int]] = None,
                      valid: Optional[Sequence[bool]] = None
                      ) -> Dict[str, VideoOutputs]:
  """Splits a batch of model outputs into each video's arrays, padding removed.

  Args:
    outputs: `SALOutputs` (or anything with cas [B, T, C], action_flow [B, T],
      action_rgb [B, T], video_logits [B, C]), device or host arrays.
    names: [B] video names.
    num_snippets: [B] original snippet counts L (for the time axis of detections).
    valid_lengths: [B] sampled snippets that are real (T when not padded).
    valid: [B] False for padding rows of a last batch.

  Returns:
    {name: {'cas' [t, C], 'action_flow' [t], 'action_rgb' [t], 'sc' [C],
    'num_snippets' L}} in batch order, the layout `localization.localize_batch` takes.
  """
  cas = np.asarray(outputs.cas)
  flow, rgb = np.asarray(outputs.action_flow), np.asarray(outputs.action_rgb)
  logits = np.asarray(outputs.video_logits)
  result = {}
  for i, name in enumerate(names):
    if valid is not None and not valid[i]:
      continue
    t = cas.shape[1] if valid_lengths is None else int(valid_lengths[i])
    result[str(name)] = {"cas": cas[i, :t], "action_flow": flow[i, :t],
                         "action_rgb": rgb[i, :t], "sc": logits[i],
                         "num_snippets": np.asarray(int(num_snippets[i]))}
  return result


def predictions_of(localized: Mapping[str, localization.VideoLocalization],
                   ground_truth: evaluation.GroundTruth,
                   class_names: Sequence[str]) -> evaluation.Predictions:
  """The detections of every video as flat evaluation arrays (no JSON round trip)."""
  names, parts = [], []
  for video, loc in localized.items():
    names.append(np.full(len(loc.proposals), video, dtype=object))
    parts.append(loc.proposals)
  if not parts:
    return evaluation.predictions_from_arrays(
        np.zeros(0, object), np.zeros(0, int), np.zeros(0), np.zeros(0), np.zeros(0),
        ground_truth, label_names=class_names)
  flat = localization.Proposals.concatenate(parts)
  return evaluation.predictions_from_arrays(
      np.concatenate(names), flat.class_index, flat.score, flat.start, flat.end,
      ground_truth, label_names=class_names)


def localize_and_evaluate(per_video: Mapping[str, VideoOutputs],
                          ground_truth: evaluation.GroundTruth, variant: Variant,
                          class_names: Sequence[str],
                          tiou_thresholds: Optional[Sequence[float]] = None,
                          ambiguous: Any = None
                          ) -> Tuple[evaluation.EvalResult,
                                     Dict[str, localization.VideoLocalization]]:
  """Localizes every video and scores the detections against the ground truth.

  Returns:
    (EvalResult, {video: VideoLocalization}); `localization.detections_json` of
    the second gives the ActivityNet predictions file.
  """
  localized = localization.localize_batch(per_video, variant, class_names)
  predictions = predictions_of(localized, ground_truth, class_names)
  result = evaluation.evaluate_detections(
      ground_truth, predictions, tiou_thresholds or variant.tiou_thresholds,
      ambiguous=ambiguous)
  return result, localized


def video_scores(localized: Mapping[str, localization.VideoLocalization]) -> np.ndarray:
  """[N, C] video class scores (softmax of SPEC 3.2) in the order of `localized`."""
  return np.stack([loc.video_scores for loc in localized.values()])
