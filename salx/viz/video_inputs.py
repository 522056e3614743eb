"""The inputs of one video's pictures, checked: its arrays, its ground truth and its
detections as the postprocess tier's `Detections`.

Every check raises a ValueError whose message starts with the field it names
(`cas must be [T, 3], got (40, 2)`); the drawing functions prefix their name.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Mapping, Optional, Sequence, Tuple

import numpy as np

from salx.postprocess.detections import Detections


def _vector(x, field: str, length: Optional[int] = None, dtype=np.float64) -> np.ndarray:
  try:
    a = np.asarray(x, dtype)
  except (TypeError, ValueError):
    raise ValueError(f"{field} must be numbers") from None
  if a.ndim != 1 or (length is not None and a.size != length):
    want = f"[{length}]" if length is not None else "1-D"
    raise ValueError(f"{field} must be {want}, got shape {a.shape}")
  if dtype is np.float64 and not np.all(np.isfinite(a)):
    raise ValueError(f"{field} holds NaN or infinite values")
  return a


def _class_indices(x, field: str, num_classes: int) -> np.ndarray:
  a = _vector(x, field, dtype=np.float64)
  if np.any(a != np.round(a)) or np.any(a < 0) or np.any(a >= num_classes):
    raise ValueError(f"{field} must be class indices in [0, {num_classes}), got "
                     f"{a.tolist()[:8]}")
  return a.astype(np.int64)


def _ground_truth(gt: Sequence[Tuple[int, float, float]], num_classes: int):
  """[G] label, start, end of the (class_index, start_s, end_s) instances."""
  rows = [tuple(g) for g in gt]
  if any(len(r) != 3 for r in rows):
    raise ValueError("gt must hold (class_index, start_s, end_s) triples")
  label = _class_indices([r[0] for r in rows], "gt class_index", num_classes)
  start = _vector([r[1] for r in rows], "gt start_s")
  end = _vector([r[2] for r in rows], "gt end_s")
  if np.any(end < start):
    raise ValueError("gt holds an instance with end_s < start_s")
  return label, start, end


def video_detections(detections: Any, class_names: Sequence[str],
                     video: str = "<video>") -> Detections:
  """One video's detections as `Detections` over `class_names`, video index 0.

  Args:
    detections: a `Detections` holding this video's entries only (e.g.
      `localization.localize(...).detections.take(video == b)`), or the mapping
      {'label' [N] class indices, 'score' [N], 'start' [N], 'end' [N]} (seconds).
    class_names: the C class names the labels index.
    video: the video's name.

  Raises:
    ValueError: naming the field (lengths, class indices, NaN, end < start).
  """
  class_names = tuple(str(c) for c in class_names)
  if isinstance(detections, Detections):
    if tuple(detections.class_names) != class_names:
      raise ValueError("detections are over other class names than class_names")
    if np.unique(detections.video).size > 1:
      raise ValueError("detections hold several videos; take one video's")
    fields = {k: getattr(detections, k) for k in ("label", "score", "start", "end")}
  elif isinstance(detections, Mapping):
    missing = [k for k in ("label", "score", "start", "end") if k not in detections]
    if missing:
      raise ValueError(f"detections lack {missing}")
    fields = detections
  else:
    raise ValueError("detections must be Detections or a mapping of label, score, "
                     f"start and end, got {type(detections).__name__}")
  label = _class_indices(fields["label"], "detections label", len(class_names))
  score, start, end = (_vector(fields[k], f"detections {k}", label.size)
                       for k in ("score", "start", "end"))
  if np.any(end < start):
    raise ValueError("detections hold a segment with end < start")
  return Detections((str(video),), class_names, np.zeros(label.size, np.int64), label,
                    score, start, end, source=str(video))


@dataclasses.dataclass(frozen=True)
class Video:
  """One video's checked inputs (`check_video`)."""
  class_names: list
  cas: np.ndarray            # [T, C]
  curves: tuple              # flow, RGB, fused actionness [T] each
  extra: list                # [(values [T], 'pseudo_label' | 'mask')]
  predicted: np.ndarray      # [P]
  gt: tuple                  # label, start, end [G] each
  det: Detections
  duration_s: float
  seconds_per_snippet: float
  thresholds: np.ndarray


def check_video(*, video, duration_s, seconds_per_snippet, class_names, gt, detections,
                cas, predicted, action_flow, action_rgb, actionness, thresholds,
                pseudo_label=None, mask=None) -> Video:
  """The arguments of `salx.viz.timeline.timeline_figure`, checked.

  Raises:
    ValueError: naming the field (shapes, class indices, NaN, end < start).
  """
  class_names = [str(c) for c in class_names]
  num_classes = len(class_names)
  cas = np.asarray(cas, np.float64)
  if cas.ndim != 2 or cas.shape[1] != num_classes or cas.shape[0] < 1:
    raise ValueError(f"cas must be [T, {num_classes}], got {cas.shape}")
  if not np.all(np.isfinite(cas)):
    raise ValueError("cas holds NaN or infinite values")
  length = cas.shape[0]
  curves = tuple(_vector(x, name, length) for x, name in (
      (action_flow, "action_flow"), (action_rgb, "action_rgb"),
      (actionness, "actionness")))
  extra = [(_vector(x, name, length), name) for x, name in (
      (pseudo_label, "pseudo_label"), (mask, "mask")) if x is not None]
  predicted = _class_indices(predicted, "predicted", num_classes)
  gt = _ground_truth(gt, num_classes)
  det = video_detections(detections, class_names, video)
  duration_s, seconds_per_snippet = float(duration_s), float(seconds_per_snippet)
  for value, field in ((duration_s, "duration_s"),
                       (seconds_per_snippet, "seconds_per_snippet")):
    if not (np.isfinite(value) and value > 0):
      raise ValueError(f"{field} must be positive, got {value}")
  return Video(class_names, cas, curves, extra, predicted, gt, det, duration_s,
               seconds_per_snippet, _vector(thresholds, "thresholds"))
