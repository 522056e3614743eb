"""The host half of an evaluation: model outputs -> detections -> record.

NumPy only (no JAX), so that worker processes of `salx.app.eval_pool` can run it
while training goes on. A `Scorer` holds what does not change between evaluations
(the ground truth, the class names, the classes left out); calling it on the host
outputs of every batch of a split gives the same record wherever it runs.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Sequence, Tuple

import numpy as np

from salx.app import report
from salx.postprocess import classification
from salx.postprocess import protocols
from salx.postprocess import wtalc_eval
from salx.postprocess import wtalc_filters
from salx.postprocess import localization
from salx.postprocess.detections import Detections
from salx.postprocess.ground_truth import AmbiguousSegments, GroundTruth

# One batch: ({'names', 'num_snippets', 'labels', 'valid', 'mask'} host arrays,
# the method's outputs {name: [B, T, ...] or [B, C]}).
HostBatch = Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]


@dataclasses.dataclass(frozen=True)
class Scorer:
  """Scores one member's outputs on a split.

  Attributes:
    method: the method (its `localize` and tIoU thresholds).
    ground_truth: the split's ground truth (an `OfficialGroundTruth` for the
      thumos14_official protocol).
    class_names: the model's C classes.
    unevaluated: [U] indices of classes without ground truth (dropped).
    protocol: the evaluation protocol (`salx.postprocess.protocols`).
    ambiguous: Ambiguous segments: the wtalc protocol drops the detections that
      share a snippet with one before scoring (SPEC-CO2NET-DELU 5.6), activitynet
      drops those overlapping one; None: none known.
  """
  method: Any
  ground_truth: GroundTruth
  class_names: Tuple[str, ...]
  unevaluated: np.ndarray
  protocol: str = "activitynet"
  ambiguous: Optional[AmbiguousSegments] = None

  def localize(self, batch: Dict[str, np.ndarray], out: Dict[str, np.ndarray],
               hp) -> localization.Localization:
    """Localization of one batch's real rows, with their valid lengths."""
    valid = batch["valid"]
    return self.method.localize(
        {k: np.asarray(v)[valid] for k, v in out.items()},
        batch["mask"][valid].sum(axis=1), batch["num_snippets"][valid], hp,
        video_names=batch["names"][valid], class_names=self.class_names)

  def __call__(self, batches: Sequence[HostBatch], hp, step: int
               ) -> Tuple[report.Record, Detections]:
    """(evaluation record, detections of the evaluated classes) at `step`."""
    localized = localization.Localization.concatenate(
        [self.localize(batch, out, hp) for batch, out in batches])
    labels = np.concatenate([batch["labels"][batch["valid"]] for batch, _ in batches])
    detections = localized.detections
    if self.unevaluated.size:
      detections = detections.take(~np.isin(detections.label, self.unevaluated))
    detections = dataclasses.replace(detections, source=f"of step {step}")
    result = score_detections(self.protocol, self.ground_truth, detections,
                              self.method.tiou_thresholds(hp), self.ambiguous)
    accuracy = classification.classification_accuracy(localized.predicted, labels)
    return report.evaluation_record(result, accuracy, step, len(labels)), detections


def score_detections(protocol: str, ground_truth, detections: Detections,
                     tiou_thresholds, ambiguous: Optional[AmbiguousSegments] = None):
  """`protocols.evaluate` of `detections`, the W-TALC pipeline's Ambiguous filter
  first (SPEC-CO2NET-DELU 5.6) when the protocol is wtalc."""
  options = {}
  if ambiguous is not None and protocol == protocols.WTALC.name:
    keep = wtalc_filters.ambiguous_keep(
        detections.video_names, detections.video,
        wtalc_eval.seconds_to_snippets(detections.start),
        wtalc_eval.seconds_to_snippets(detections.end),
        ambiguous)
    detections = detections.take(keep)
  elif ambiguous is not None and protocol == protocols.ACTIVITYNET.name:
    options["ambiguous"] = ambiguous
  return protocols.evaluate(protocol, ground_truth, detections, tiou_thresholds, **options)


def member_batches(batches: Sequence[Tuple[Dict[str, np.ndarray], Dict[str, Any]]],
                   m: int) -> list:
  """Member m's host batches from batches of the members' outputs [K, B, ...]."""
  return [(batch, {k: v[m] for k, v in out.items()}) for batch, out in batches]
