"""Video classification accuracy (SPEC 3.3).

A video counts as correct when its predicted classes (s >= class_thresh, else
the argmax class alone: `salx.postprocess.scores.predict_classes`) equal its
multi-hot label exactly.
"""

from __future__ import annotations

from typing import Sequence

import numpy as np

from salx.postprocess.ground_truth import GroundTruth


def video_labels(ground_truth: GroundTruth, video_ids: Sequence[str],
                 class_names: Sequence[str]) -> np.ndarray:
  """Multi-hot video labels [N, C] from ground-truth instances.

  Args:
    video_ids: N videos (must be in the ground truth).
    class_names: the model's C classes (column order).
  """
  column = {c: i for i, c in enumerate(class_names)}
  missing = [c for c in ground_truth.class_names if c not in column]
  if missing:
    raise ValueError(f"ground-truth class {missing[0]!r} is not among the "
                     f"{len(class_names)} class names")
  row = {v: i for i, v in enumerate(ground_truth.video_ids)}
  labels = np.zeros((len(ground_truth.video_ids), len(class_names)), bool)
  lut = np.asarray([column[c] for c in ground_truth.class_names], np.int64)
  labels[ground_truth.video, lut[ground_truth.label]] = True
  try:
    return labels[[row[v] for v in video_ids]]
  except KeyError as e:
    raise ValueError(f"video {e.args[0]} is not in {ground_truth.source} "
                     f"subset '{ground_truth.subset}'") from None


def classification_accuracy(predicted: np.ndarray, labels: np.ndarray) -> float:
  """Fraction of videos whose predicted classes equal their labels exactly.

  Args:
    predicted: [N, C] bool predicted classes, the argmax fallback included.
    labels: [N, C] multi-hot labels.
  """
  predicted, labels = np.asarray(predicted, bool), np.asarray(labels) > 0
  if predicted.shape != labels.shape:
    raise ValueError(f"predicted classes {predicted.shape} and labels {labels.shape} "
                     "differ in shape")
  correct = np.all(predicted == labels, axis=1)
  return float(np.mean(correct)) if correct.size else 0.0
