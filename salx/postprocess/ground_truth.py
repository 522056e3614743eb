"""Ground truth of an evaluated subset, and the ambiguous segments (SPEC 5).

Protocol options, named in every report: the ground-truth file and subset (e.g.
the 210-video THUMOS14 test set of `gt.json` used by BaS-Net/UM/SAL versus the
212-video `gt_acmnet_with_duration.json`), and optionally dropping detections
that overlap the official `Ambiguous_test.txt` segments (W-TALC / CO2-Net).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, List, Mapping, Tuple, Union

import numpy as np

from salx.postprocess import arrays
from salx.postprocess import inputs
from salx.postprocess import json_limits
from salx.postprocess.detections import Detections
from salx.postprocess.inputs import EvalInputError


@dataclasses.dataclass(frozen=True)
class GroundTruth:
  """Ground-truth instances of one subset.

  Attributes:
    source: file name (or '<dict>') the annotations came from.
    subset: the evaluated subset.
    video_ids: the V videos of the subset, in file order.
    class_names: the C classes in order of first appearance (the official
      activity index).
    video: [G] int, index into video_ids of each instance.
    label: [G] int, index into class_names.
    start, end: [G] float64 seconds.
  """
  source: str
  subset: str
  video_ids: Tuple[str, ...]
  class_names: Tuple[str, ...]
  video: np.ndarray
  label: np.ndarray
  start: np.ndarray
  end: np.ndarray

  @property
  def num_instances(self) -> int:
    return int(self.label.size)

  def describe(self) -> str:
    return (f"ground truth {self.source}, subset '{self.subset}': "
            f"{len(self.video_ids)} videos, {self.num_instances} instances, "
            f"{len(self.class_names)} classes")


def load_ground_truth(path_or_data: inputs.PathOrData, subset: str = "test") -> GroundTruth:
  """Ground truth of one subset from ActivityNet-format JSON.

  {"database": {video: {"subset": ..., "annotations": [{"label", "segment"}]}}};
  segment values may be strings (as in THUMOS14 `gt.json`).

  Args:
    path_or_data: a JSON file or its parsed content.
    subset: e.g. 'test' ('validation' for ActivityNet's evaluation subset).
  Raises:
    EvalInputError: unreadable or malformed file, or an empty subset.
  """
  source, data = json_limits.source_and_data(path_or_data)
  database = data.get("database") if isinstance(data, Mapping) else None
  if not isinstance(database, Mapping):
    raise EvalInputError(f"{source}: no 'database' object (ActivityNet format)")
  videos, classes = [], {}
  video, label, start, end = [], [], [], []
  subsets = set()
  for vid, entry in database.items():
    if not isinstance(entry, Mapping):
      raise EvalInputError(f"{source}: video {vid}: entry is not an object")
    subsets.add(str(entry.get("subset")))
    if entry.get("subset") != subset:
      continue
    index = len(videos)
    videos.append(vid)
    annotations = entry.get("annotations", [])
    if not isinstance(annotations, list):
      raise EvalInputError(f"{source}: video {vid}: 'annotations' is not a list")
    for i, ann in enumerate(annotations):
      if not isinstance(ann, Mapping) or "label" not in ann or "segment" not in ann:
        raise EvalInputError(
            f"{source}: video {vid}: annotation {i} lacks 'label' or 'segment'")
      s, e = inputs.segment(ann["segment"], f"video {vid} annotation {i}", source)
      video.append(index)
      label.append(classes.setdefault(ann["label"], len(classes)))
      start.append(s)
      end.append(e)
  if not videos:
    raise EvalInputError(
        f"{source}: subset '{subset}' is empty "
        f"(subsets present: {', '.join(sorted(subsets)) or 'none'})")
  if not classes:
    raise EvalInputError(f"{source}: subset '{subset}' has no annotation")
  return GroundTruth(os.path.basename(source), subset, tuple(videos), tuple(classes),
                     np.asarray(video, np.int64), np.asarray(label, np.int64),
                     np.asarray(start, np.float64), np.asarray(end, np.float64))


@dataclasses.dataclass(frozen=True)
class AmbiguousSegments:
  """Segments whose overlapping detections a protocol drops.

  Attributes:
    source: file name the segments came from.
    segments: video -> [n, 2] float64 (start, end) seconds.
  """
  source: str
  segments: Dict[str, np.ndarray]


def load_ambiguous(path: Union[str, os.PathLike]) -> AmbiguousSegments:
  """Official ambiguous segments, lines `video start end`."""
  try:
    with open(path, "r") as f:
      lines = f.read().splitlines()
  except OSError as e:
    raise EvalInputError(f"{path}: cannot read: {e.strerror or e}") from None
  out: Dict[str, List[Tuple[float, float]]] = {}
  for number, line in enumerate(lines, 1):
    fields = line.split()
    if not fields:
      continue
    if len(fields) != 3:
      raise EvalInputError(f"{path}: line {number}: expected 'video start end'")
    out.setdefault(fields[0], []).append(
        inputs.segment(fields[1:], f"line {number}", os.fspath(path)))
  return AmbiguousSegments(os.path.basename(os.fspath(path)),
                           {v: np.asarray(s, np.float64) for v, s in out.items()})


def drop_ambiguous(detections: Detections,
                   ambiguous: AmbiguousSegments) -> Tuple[Detections, int]:
  """Drop the detections overlapping an ambiguous segment of their video.

  Overlap means an intersection of positive length (W-TALC / CO2-Net).

  Returns:
    (kept detections, number dropped).
  """
  names = sorted(ambiguous.segments)
  if not names or len(detections) == 0:
    return detections, 0
  seg = np.concatenate([ambiguous.segments[v] for v in names])
  owner = np.repeat(np.arange(len(names)), [len(ambiguous.segments[v]) for v in names])
  lookup = {v: i for i, v in enumerate(names)}
  table = np.asarray([lookup.get(v, -1) for v in detections.video_names], np.int64)
  video = table[detections.video]
  lo = np.searchsorted(owner, video, "left")
  hi = np.where(video >= 0, np.searchsorted(owner, video, "right"), lo)
  det, amb = arrays.expand_ranges(lo, hi)
  overlap = (np.minimum(detections.end[det], seg[amb, 1])
             > np.maximum(detections.start[det], seg[amb, 0]))
  drop = np.zeros(len(detections), bool)
  drop[det[overlap]] = True
  return detections.take(~drop), int(drop.sum())
