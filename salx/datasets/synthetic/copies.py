"""Plans copying a real dataset's videos, lengths and instances (features stay synthetic).

With an ActivityNet-style gt.json (and optionally the true durations and split
lists), every video keeps its name, its length L = floor(duration * 25 / 16) and its
instances; long videos can be cropped around their first instance for fast tests.
"""

from __future__ import annotations

import csv
import os
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from salx.core import constants
from salx.datasets import classes
from salx.datasets.errors import DataError, PathLike
from salx.datasets.synthetic.plans import VideoPlan
from salx.datasets import source

# Snippets of margin kept before the first instance when a long video is cropped.
_CROP_MARGIN = 4


def read_video_durations(path: PathLike) -> Dict[str, float]:
  """{video: seconds} from a CSV with a 'video' column and a duration column.

  The duration column is the first of 'duration_s' (salx's THUMOS14
  video_info.csv), 'duration', 'seconds' (BSN's video_info_new.csv).
  """
  path = os.fspath(path)
  try:
    with open(path, newline="", encoding="utf-8") as f:
      rows = list(csv.DictReader(f))
  except OSError as e:
    raise DataError(f"{path}: cannot read video info ({e})", path) from e
  columns = rows[0].keys() if rows else ()
  duration_column = next((c for c in ("duration_s", "duration", "seconds")
                          if c in columns), None)
  if "video" not in columns or duration_column is None:
    raise DataError(f"{path}: needs a 'video' column and one of 'duration_s', "
                    "'duration', 'seconds'", path)
  return {row["video"]: float(row[duration_column]) for row in rows}


def _split_of_subset(subset: Optional[str], dataset: str) -> Optional[str]:
  """The salx split of an annotation file's subset name (None: neither split)."""
  if subset in ("train", "training"):
    return "train"
  if subset == "test":
    return "test"
  if subset == "validation":
    return "train" if dataset == "thumos14" else "test"
  return None


def _annotation_splits(annotations: Mapping[str, source.VideoAnnotation],
                       dataset: str,
                       split_files: Optional[Mapping[str, PathLike]]
                       ) -> Dict[str, List[str]]:
  """Video names per split: from split files when given, else from the subsets."""
  if split_files:
    return {split: [n for n in source.read_split_file(split_files[split])
                    if n in annotations]
            for split in constants.SPLITS if split in split_files}
  splits = {split: [] for split in constants.SPLITS}
  for name, annotation in annotations.items():
    split = _split_of_subset(annotation.subset, dataset)
    if split is not None:
      splits[split].append(name)
  return splits


def _annotation_class_names(annotations: Mapping[str, source.VideoAnnotation],
                            dataset: str, class_list: Optional[PathLike]
                            ) -> Tuple[str, ...]:
  if class_list is not None:
    return classes.read_class_list(class_list)
  used = {label for a in annotations.values() for label in a.segment_labels}
  if dataset == "thumos14" and used <= set(classes.THUMOS14_CLASSES):
    return classes.THUMOS14_CLASSES
  return tuple(sorted(used))


def _video_duration(annotation: source.VideoAnnotation,
                    durations: Mapping[str, float]) -> float:
  """Known duration, else a little past the last instance."""
  if annotation.name in durations:
    return float(durations[annotation.name])
  if annotation.duration is not None:
    return float(annotation.duration)
  last_end = float(annotation.segments[:, 1].max()) if len(annotation.segments) else 0
  return max(last_end * 1.1 + 5.0, 10.0)


def _crop_window(segments: np.ndarray, length: int, max_snippets: int) -> int:
  """First snippet of a window of `max_snippets` that starts just before an instance."""
  if len(segments) == 0:
    return 0
  first = int(segments[:, 0].min() / constants.SECONDS_PER_SNIPPET) - _CROP_MARGIN
  return max(0, min(length - max_snippets, first))


def _plan_from_annotation(annotation: source.VideoAnnotation, split: str,
                          durations: Mapping[str, float],
                          max_snippets: Optional[int]) -> Optional[VideoPlan]:
  """The plan copying a real video; None if nothing of it is left to copy.

  Instances are clipped to the video and empty or inverted ones are dropped, so the
  copy is clean. With `max_snippets`, a longer video is cropped to a window of that
  many snippets starting shortly before its first instance; the instances move with it.
  """
  duration = _video_duration(annotation, durations)
  length = source.snippets_for_duration(duration)
  segments = annotation.segments
  if max_snippets is not None and length > max_snippets:
    offset = _crop_window(segments, length, max_snippets) * constants.SECONDS_PER_SNIPPET
    segments = segments - offset
    length = max_snippets
    duration = length * constants.SECONDS_PER_SNIPPET
  if length < 1:
    return None
  clipped = np.clip(segments, 0.0, duration)
  keep = clipped[:, 1] > clipped[:, 0]
  if split == "train" and not keep.any():
    return None
  return VideoPlan(
      name=annotation.name, split=split, length=length, segments=clipped[keep],
      segment_labels=tuple(np.array(annotation.segment_labels, dtype=object)[keep]),
      duration=duration)


def plan_from_annotations(annotations_file: PathLike, dataset: str = "thumos14",
                          video_info: Optional[PathLike] = None,
                          split_files: Optional[Mapping[str, PathLike]] = None,
                          class_list: Optional[PathLike] = None,
                          max_videos: Optional[int] = None,
                          max_snippets: Optional[int] = None
                          ) -> Tuple[List[VideoPlan], Tuple[str, ...]]:
  """(plans, class names) copying the videos and instances of a real dataset.

  Args:
    annotations_file: ActivityNet-style gt.json.
    dataset: which benchmark (subset names, default class order).
    video_info: CSV of true durations (see `read_video_durations`); otherwise the
      gt.json durations, otherwise a little past the last instance.
    split_files: {'train': path, 'test': path}; otherwise the gt.json subsets
      ('train'/'training', 'test', and 'validation' = train for THUMOS14, test for
      ActivityNet). Videos absent from the gt.json are skipped.
    class_list: classlist.txt / action_name.csv; otherwise THUMOS14's classes or the
      sorted labels of the file.
    max_videos: at most this many videos of each split (the first ones).
    max_snippets: crop longer videos to this many snippets (for fast tests).
  """
  annotations = source.read_ground_truth_json(annotations_file)
  durations = read_video_durations(video_info) if video_info else {}
  class_names = _annotation_class_names(annotations, dataset, class_list)
  plans = []
  for split, names in _annotation_splits(annotations, dataset, split_files).items():
    taken = 0
    for name in names:
      if max_videos is not None and taken >= max_videos:
        break
      plan = _plan_from_annotation(annotations[name], split, durations, max_snippets)
      if plan is not None:
        plans.append(plan)
        taken += 1
  return plans, class_names
