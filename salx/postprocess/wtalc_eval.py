"""The W-TALC evaluation of CO2-Net and DELU, in snippet units (SPEC-CO2NET-DELU 6).

Their `ANETdetection` on a table of snippet rows: the ground truth's boundaries
rounded to snippets, round(x * 25 / 16) half to even (6.2); per class,
predictions by score as numpy `argsort()[::-1]`, each taking its best unlocked
ground truth of the same video with tIoU >= threshold (continuous lengths);
VOC-2011 interpolated AP; the mean over all classes (6.3, 6.4). Those are the
ActivityNet-style rules of `salx.postprocess.ap`, which does the matching and
the AP here. What differs: the units, and a prediction whose label is not a
class is ignored (salx's ActivityNet-style evaluation rejects it).

The Ambiguous filter and DELU's length filter act on the predictions before this
evaluation (5.6).
"""

from __future__ import annotations

import dataclasses
from typing import Mapping, Sequence

import numpy as np

from salx.postprocess import ap as ap_lib
from salx.postprocess import inputs
from salx.postprocess.detections import Detections
from salx.postprocess.ground_truth import GroundTruth
from salx.postprocess.inputs import EvalInputError

# A snippet is 16 frames at 25 fps: snippets = seconds * 25 / 16, in that order.
FEATURE_FPS = 25
SNIPPET_FRAMES = 16
# Seconds that convert to within this of an integer snippet are that integer.
SNAP = 1e-6


def seconds_to_snippets(seconds: np.ndarray, snap: bool = True) -> np.ndarray:
  """x * 25 / 16; with `snap`, values within 1e-6 of an integer become it."""
  x = np.asarray(seconds, np.float64) * FEATURE_FPS / SNIPPET_FRAMES
  if not snap:
    return x
  nearest = np.round(x)
  return np.where(np.abs(x - nearest) <= SNAP, nearest, x)


def ground_truth_to_snippets(ground_truth: GroundTruth) -> GroundTruth:
  """The ground truth as their evaluator holds it: round(x * 25 / 16), half to even."""
  return dataclasses.replace(
      ground_truth,
      start=np.round(seconds_to_snippets(ground_truth.start, snap=False)),
      end=np.round(seconds_to_snippets(ground_truth.end, snap=False)))


def detections_to_snippets(detections: Detections) -> Detections:
  """Detections in seconds -> snippets; integer snippets in seconds come back exact."""
  return dataclasses.replace(detections, start=seconds_to_snippets(detections.start),
                             end=seconds_to_snippets(detections.end))


def average_precision_snippets(ground_truth: GroundTruth, detections: Detections,
                               tiou_thresholds: Sequence[float]) -> np.ndarray:
  """AP [K, C] of their evaluator; ground truth and detections in snippets.

  Args:
    ground_truth: in snippets (`ground_truth_to_snippets`), classes in classlist
      order, instances in their file order.
    detections: in snippets, in their table's row order (it breaks score ties);
      labels that are not ground-truth classes are ignored.
    tiou_thresholds: K literal thresholds.
  """
  gt = ground_truth
  classes = {c: i for i, c in enumerate(gt.class_names)}
  label = np.asarray([classes.get(c, -1) for c in detections.class_names],
                     np.int64)[detections.label]
  keep = label >= 0
  videos = {v: i for i, v in enumerate(gt.video_ids)}
  video = np.asarray([videos.get(v, -1) for v in detections.video_names],
                     np.int64)[detections.video]
  return ap_lib.average_precision(
      gt, video[keep], label[keep], detections.score[keep].astype(np.float64),
      detections.start[keep].astype(np.float64), detections.end[keep].astype(np.float64),
      np.asarray(tiou_thresholds, np.float64), exact_ties=True)


def average_precision(ground_truth: GroundTruth, detections: Detections,
                      tiou_thresholds: Sequence[float]) -> np.ndarray:
  """AP [K, C] of their evaluator on ground truth and detections in seconds."""
  return average_precision_snippets(ground_truth_to_snippets(ground_truth),
                                    detections_to_snippets(detections), tiou_thresholds)


def detections_from_rows(rows: Sequence[Sequence], class_names: Sequence[str],
                         source: str = "<rows>") -> Detections:
  """Detections (snippets) of their table rows [video-id, t-start, t-end, label, score].

  `label` is a class index (a float in their table); a label that is not an
  index of `class_names` keeps a name of its own ('label 20.0'), which the
  evaluation ignores. Row order is kept.
  """
  names = list(class_names)
  extra = {}
  videos, label = {}, []
  for row in rows:
    value = float(row[3])
    if value.is_integer() and 0 <= value < len(names):
      label.append(int(value))
    else:
      label.append(extra.setdefault(value, len(names) + len(extra)))
    videos.setdefault(str(row[0]), len(videos))
  column = lambda j: np.asarray([float(r[j]) for r in rows], np.float64)
  return Detections(
      tuple(videos), tuple(names) + tuple(f"label {v!r}" for v in extra),
      np.asarray([videos[str(r[0])] for r in rows], np.int64), np.asarray(label, np.int64),
      column(4), column(1), column(2), source=source)


def ground_truth_from_json(path_or_data: inputs.PathOrData,
                           subset: str = "test") -> GroundTruth:
  """Ground truth (seconds) of {"class_names": [...], "ground_truth": {"videos":
  {video: [[class index, start_s, end_s], ...]}}} (the W-TALC evaluation fixture).

  Raises:
    EvalInputError: the file lacks those keys or holds a bad row.
  """
  source, data = inputs.source_and_data(path_or_data)
  block = data.get("ground_truth") if isinstance(data, Mapping) else None
  videos = block.get("videos") if isinstance(block, Mapping) else None
  class_names = data.get("class_names") if isinstance(data, Mapping) else None
  if not isinstance(videos, Mapping) or not isinstance(class_names, list):
    raise EvalInputError(f"{source}: expected 'class_names' and 'ground_truth': "
                         "{'videos': {video: [[class, start, end], ...]}}")
  video, label, start, end = [], [], [], []
  for i, (name, instances) in enumerate(videos.items()):
    for j, row in enumerate(instances):
      try:
        c, s, e = int(row[0]), float(row[1]), float(row[2])
        if not 0 <= c < len(class_names):
          raise ValueError
      except (TypeError, ValueError, IndexError):
        raise EvalInputError(f"{source}: ground_truth video {name} instance {j}: expected "
                             f"[class index < {len(class_names)}, start, end]") from None
      video.append(i)
      label.append(c)
      start.append(s)
      end.append(e)
  return GroundTruth(source, subset, tuple(videos), tuple(class_names),
                     np.asarray(video, np.int64), np.asarray(label, np.int64),
                     np.asarray(start, np.float64), np.asarray(end, np.float64))
