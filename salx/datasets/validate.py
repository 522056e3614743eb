"""The dataset validator: every problem of a data folder, with its file.

Reads the folder through `layouts.open_source` one video at a time, so memory stays
bounded by one video (except for the W-TALC layout, whose feature file is one pickle
read into memory whole, once). Finds, one `Problem` each:
  - missing or unreadable feature files, wrong feature dims, RGB/flow length
    mismatches, videos with no snippets, NaN or infinite values;
  - videos of a split without an annotation entry, training videos without labels,
    labels outside the class list;
  - ids repeated in a split list, in both splits, or as keys of gt.json;
  - segments with a negative start, an end not after the start, or an end beyond the
    video's duration (when the duration is known) by more than `duration_tolerance`
    seconds (ActivityNet's own annotations overshoot by up to ~0.85 s).
  - features that are complex-valued (named per video and file, like NaN).
The same problem (a damaged file shared by every video) is reported once.
`report` prints them and a summary; `python -m salx.datasets.check` is its command.

Some folders are refused rather than listed (`UnusableFolderError`, or an
`npy.UnsafeFileError` raised as it is met): a data dir that is missing or not a
directory, a split that lists no video (training would fail only after its start),
and files unsafe to read (a crafted pickle, a video name leading outside the
folder, JSON past its size or depth cap): one line, exit 2 from the command.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import sys
from typing import Iterable, Iterator, List, Optional, TextIO

import numpy as np

from salx.core.constants import SPLITS
from salx.core.bounded_repr import short_repr
from salx.datasets import layouts
from salx.datasets import npy
from salx.datasets.errors import DataError
from salx.datasets.source import FeatureSource, VideoAnnotation
from salx.postprocess import json_limits

DEFAULT_DURATION_TOLERANCE = 1.0
EXIT_CLEAN = 0
EXIT_PROBLEMS = 1


class UnusableFolderError(DataError):
  """The data folder is missing, not a directory, in none of the layouts, or has a
  split of no video: refused, nothing to check."""


@dataclasses.dataclass(frozen=True)
class Problem:
  """One problem: the file at fault and what is wrong."""
  file: str
  message: str

  def __str__(self) -> str:
    return f"{self.file}: {self.message}"


def _from_error(error: DataError, fallback_file: str) -> Problem:
  file = error.path or fallback_file
  message = str(error)
  if message.startswith(f"{file}: "):
    message = message[len(file) + 2:]
  return Problem(file, message)


def _duplicate_id_problems(source: FeatureSource) -> Iterator[Problem]:
  """Ids repeated within a split list or present in both splits."""
  splits = {split: source.video_names(split) for split in SPLITS}
  for split, names in splits.items():
    for name, count in collections.Counter(names).items():
      if count > 1:
        yield Problem(source.split_file(split),
                      f"video {name} is listed {count} times in the {split} split")
  for name in sorted(set(splits["train"]) & set(splits["test"])):
    yield Problem(source.split_file("test"),
                  f"video {name} is in both the train and the test split")


def _duplicate_json_keys(path: str) -> List[str]:
  """Keys that appear more than once in one JSON object of the file at `path`."""
  repeated = []

  def remember_repeats(pairs):
    counts = collections.Counter(key for key, _ in pairs)
    repeated.extend(key for key, count in counts.items() if count > 1)
    return dict(pairs)

  json_limits.load_json(path, object_pairs_hook=remember_repeats)
  return repeated


def _annotation_file_problems(source: FeatureSource) -> Iterator[Problem]:
  path = source.annotation_file
  if path.endswith(".json"):
    for key in _duplicate_json_keys(path):
      yield Problem(path, f"key {short_repr(key)} appears more than once in one object "
                          "(JSON readers keep only the last)")


def _feature_problems(source: FeatureSource, split: str,
                      name: str) -> Iterator[Problem]:
  try:
    features = source.load_features(split, name)
  except npy.UnsafeFileError:
    raise
  except DataError as e:
    yield _from_error(e, source.feature_file(split, name))
    return
  for file, dims in source.feature_parts(split, name):
    nan = int(np.isnan(features[:, dims]).sum())
    infinite = int(np.isinf(features[:, dims]).sum())
    if nan or infinite:
      yield Problem(file, f"video {name} has {nan} NaN and {infinite} infinite "
                          "feature values")


def _segment_problems(annotation: VideoAnnotation, file: str,
                      tolerance: float) -> Iterator[Problem]:
  for (start, end), label in zip(annotation.segments, annotation.segment_labels):
    where = f"video {annotation.name}: {label} segment [{start:g}, {end:g}]"
    if start < 0:
      yield Problem(file, f"{where} starts before 0")
    if end <= start:
      yield Problem(file, f"{where} does not end after it starts")
    if annotation.duration is not None and end > annotation.duration + tolerance:
      yield Problem(file, f"{where} ends after the video's duration "
                          f"{annotation.duration:g} s")


def _annotation_problems(source: FeatureSource, split: str, name: str,
                         tolerance: float) -> Iterator[Problem]:
  file = source.annotation_file
  annotation = source.annotation(name)
  if annotation is None:
    yield Problem(file, f"video {name} of the {split} split (listed in "
                        f"{source.split_file(split)}) has no annotation entry")
    return
  known = set(source.class_names)
  for label in sorted(set(annotation.video_labels) | set(annotation.segment_labels)):
    if label not in known:
      yield Problem(file, f"video {name} has label {short_repr(label)}, which is not one of the "
                          f"{len(known)} classes of the class list")
  if split == "train" and not annotation.video_labels:
    yield Problem(file, f"training video {name} has no labels (it cannot train MIL)")
  yield from _segment_problems(annotation, file, tolerance)


def iter_problems(source: FeatureSource,
                  duration_tolerance: float = DEFAULT_DURATION_TOLERANCE
                  ) -> Iterator[Problem]:
  """Every problem of `source`, found one video at a time, each reported once."""
  return distinct(_all_problems(source, duration_tolerance))


def distinct(problems: Iterable[Problem]) -> Iterator[Problem]:
  """`problems` without repeats (a damaged file every video shares is one problem)."""
  seen = set()
  for problem in problems:
    if problem not in seen:
      seen.add(problem)
      yield problem


def _all_problems(source: FeatureSource, tolerance: float) -> Iterator[Problem]:
  yield from _duplicate_id_problems(source)
  yield from _annotation_file_problems(source)
  for split in SPLITS:
    for name in dict.fromkeys(source.video_names(split)):
      yield from _feature_problems(source, split, name)
      yield from _annotation_problems(source, split, name, tolerance)


def open_folder(data_dir: str, dataset: str, layout: str = "auto") -> FeatureSource:
  """The source of the folder to check.

  Raises:
    UnusableFolderError: `data_dir` is missing or (with layout 'auto') in no layout.
    DataError: a folder of a layout that cannot be opened (a missing or malformed
      annotation file): a problem of the folder.
    ValueError: unknown dataset or layout.
  """
  data_dir = os.path.expanduser(data_dir)
  if layout == "auto":
    try:
      layout = layouts.detect_layout(data_dir)
    except npy.UnsafeFileError:
      raise
    except DataError as e:
      raise UnusableFolderError(str(e), e.path) from None
  elif not os.path.isdir(data_dir):
    raise UnusableFolderError(layouts.missing_dir_message(data_dir), data_dir)
  source = layouts.open_source(data_dir, dataset, layout)
  for split in SPLITS:
    if not source.video_names(split):
      path = source.split_file(split)
      raise UnusableFolderError(f"{path}: the {split} split lists no video", path)
  return source


def check_dataset(data_dir: str, dataset: str, layout: str = "auto",
                  duration_tolerance: float = DEFAULT_DURATION_TOLERANCE
                  ) -> List[Problem]:
  """All problems of the data folder (one that keeps it from opening included).

  Raises:
    ValueError: unknown dataset or layout.
  """
  problems = []
  try:
    source = open_folder(data_dir, dataset, layout)
    for problem in iter_problems(source, duration_tolerance):
      problems.append(problem)
  except DataError as e:  # A folder that does not open, or a file unsafe to read.
    problems.append(_from_error(e, data_dir))
  return problems


def report(data_dir: str, dataset: str, layout: str = "auto",
           duration_tolerance: float = DEFAULT_DURATION_TOLERANCE,
           out: Optional[TextIO] = None) -> int:
  """Prints every problem of the folder, one line each as found, then a summary.

  Returns:
    EXIT_CLEAN (0) when there is none, EXIT_PROBLEMS (1) when there are.

  Raises:
    UnusableFolderError: as `open_folder`.
    UnsafeFileError: a file unsafe to read, as soon as it is met.
  """
  out = out or sys.stdout
  try:
    source = open_folder(data_dir, dataset, layout)
  except (UnusableFolderError, npy.UnsafeFileError):
    raise
  except DataError as e:
    print(_from_error(e, data_dir), file=out)
    print(f"1 problem: {data_dir} cannot be opened as {dataset}", file=out)
    return EXIT_PROBLEMS
  count = 0
  for problem in iter_problems(source, duration_tolerance):
    print(problem, file=out, flush=True)
    count += 1
  videos = {s: len(set(source.video_names(s))) for s in SPLITS}
  where = (f"{videos['train']} train / {videos['test']} test videos of {dataset} "
           f"in the {source.layout} layout at {data_dir}")
  if count:
    print(f"{count} problem{'s' if count > 1 else ''} in {where}", file=out)
    return EXIT_PROBLEMS
  print(f"no problems in {where}", file=out)
  return EXIT_CLEAN
