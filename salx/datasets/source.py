"""What every feature layout gives: videos, annotations, and the reading interface.

`FeatureSource` is a data folder of one dataset in one layout, read one video at a
time; `VideoRecord` is one video's features and labels, `VideoAnnotation` its
annotation as the files state it. Also here: the files two layouts share, split
lists (one video name per line) and ActivityNet-style `gt.json` ground truth.

Video names come from files (split lists, gt.json keys, W-TALC arrays) and name
feature files: `check_video_name` accepts only plain names (no path separator, no
'..', no NUL or control character) and `file_in_folder` checks that a feature path
stays inside its folder; either refuses with an `npy.UnsafeFileError`.
"""

from __future__ import annotations

import abc
import dataclasses
import math
import os
import re
from typing import Dict, List, Optional, Sequence, Tuple

import numpy as np

from salx.core.constants import FEATURE_FPS, SNIPPET_FRAMES, SPLITS
from salx.core.bounded_repr import short_repr
from salx.datasets import classes
from salx.datasets import npy
from salx.datasets.errors import DataError, PathLike
from salx.postprocess import json_limits

# What a plain video name may not hold: path separators, NUL and control characters.
_NOT_PLAIN = re.compile(r"[/\\\x00-\x1f\x7f]")


def snippets_for_duration(duration: float) -> int:
  """Number of 16-frame snippets at 25 fps in `duration` seconds: floor(d * 25 / 16)."""
  return int(math.floor(duration * FEATURE_FPS / SNIPPET_FRAMES + 1e-9))


@dataclasses.dataclass(frozen=True, eq=False)
class VideoRecord:
  """One video: its features and its annotations.

  Attributes:
    name: the video name, as in the split lists.
    features: [L, 2048] float32, the 1024 RGB dims first, then the 1024 flow dims.
    labels: [C] float32 multi-hot video label over the source's class names.
    segments: [N, 2] float64 ground-truth instances (start, end) in seconds; may be
      empty ([0, 2]).
    segment_labels: the N class names of the instances.
    duration: the video's duration in seconds, when known.
  """
  name: str
  features: np.ndarray
  labels: np.ndarray
  segments: np.ndarray
  segment_labels: Tuple[str, ...]
  duration: Optional[float]

  @property
  def num_snippets(self) -> int:
    return int(self.features.shape[0])


@dataclasses.dataclass(frozen=True, eq=False)
class VideoAnnotation:
  """The annotation of one video, as a source's annotation files state it.

  Attributes:
    name: the video name.
    subset: the subset named in the annotation file ('train', 'validation', ...).
    segments: [N, 2] float64 instances in seconds.
    segment_labels: the N class names of the instances.
    video_labels: the video's class names (distinct; for W-TALC its `labels_all`).
    duration: seconds, when the annotation file states it.
  """
  name: str
  subset: Optional[str]
  segments: np.ndarray
  segment_labels: Tuple[str, ...]
  video_labels: Tuple[str, ...]
  duration: Optional[float]


def check_video_name(name: str, path: PathLike, where: str = "") -> str:
  """`name` when it is a plain file name; an UnsafeFileError naming `path` if not.

  A plain name is not empty and holds no path separator ('/', '\\'), no '..', no
  NUL or other control character: joined to a folder, it names a file in it.
  `where` ('line 3: ') places the name in `path`.
  """
  if not isinstance(name, str) or not name or ".." in name or _NOT_PLAIN.search(name):
    raise npy.UnsafeFileError(
        f"{os.fspath(path)}: {where}video name {short_repr(name)} is not a plain name "
        "(no path separator, '..', NUL or control character): it could name a file "
        "outside the data folder", path)
  return name


def file_in_folder(folder: PathLike, name: str, suffix: str = ".npy") -> str:
  """`folder/<name><suffix>`, checked to be a file right inside `folder`.

  The path is resolved (absolute, '..' collapsed; symbolic links the folder's owner
  placed are followed when the file is opened) and must stay in `folder`.
  """
  folder = os.fspath(folder)
  path = os.path.join(folder, f"{name}{suffix}")
  if os.path.dirname(os.path.abspath(path)) != os.path.abspath(folder):
    raise npy.UnsafeFileError(f"{path}: video name {short_repr(name)} leads outside "
                              f"the folder {folder}", path)
  return path


def check_split(split: str) -> None:
  """A ValueError unless `split` is 'train' or 'test'."""
  if split not in SPLITS:
    raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


def segments_array(pairs: Sequence[Sequence[float]]) -> np.ndarray:
  """[N, 2] float64 array of N (start, end) pairs ([0, 2] when there are none)."""
  return np.asarray(pairs, np.float64).reshape(-1, 2)


def ground_truth_entry(annotation: VideoAnnotation, split: str) -> dict:
  """The ActivityNet JSON entry of `annotation` in `split` (plain JSON types)."""
  entry = {"subset": split}
  if annotation.duration is not None:
    entry["duration"] = float(annotation.duration)
  entry["annotations"] = [
      {"label": label, "segment": [float(start), float(end)]}
      for label, (start, end) in zip(annotation.segment_labels, annotation.segments)]
  return entry


class FeatureSource(abc.ABC):
  """A data folder of one dataset in one layout, read one video at a time.

  Subclasses implement the layout; every source gives the same records for the same
  data. Splits are 'train' and 'test'.
  """

  layout: str = ""

  def __init__(self, data_dir: PathLike, dataset: str, feature_dim: int):
    self._data_dir = os.fspath(data_dir)
    self._dataset = dataset
    self._feature_dim = feature_dim
    self._class_names: Tuple[str, ...] = ()
    self._member_cache: Dict[str, frozenset] = {}

  @property
  def data_dir(self) -> str:
    return self._data_dir

  @property
  def dataset(self) -> str:
    return self._dataset

  @property
  def class_names(self) -> Tuple[str, ...]:
    return self._class_names

  @property
  def feature_dim(self) -> int:
    return self._feature_dim

  @property
  @abc.abstractmethod
  def annotation_file(self) -> str:
    """The file holding the annotations (for messages)."""

  @abc.abstractmethod
  def split_file(self, split: str) -> str:
    """The file that lists the videos of `split` (for messages)."""

  @abc.abstractmethod
  def video_names(self, split: str) -> List[str]:
    """The videos of `split` ('train' or 'test'), in the order of the split list."""

  @abc.abstractmethod
  def annotation(self, name: str) -> Optional[VideoAnnotation]:
    """The annotation of video `name`, None if the annotation files lack it."""

  @abc.abstractmethod
  def feature_file(self, split: str, name: str) -> str:
    """The file holding the features of video `name` (for messages)."""

  def feature_parts(self, split: str, name: str) -> List[Tuple[str, slice]]:
    """[(file, feature dims it holds)] of video `name`: which file holds which dims."""
    return [(self.feature_file(split, name), slice(0, self._feature_dim))]

  @abc.abstractmethod
  def load_features(self, split: str, name: str) -> np.ndarray:
    """[L, 2048] float32 features of video `name` of `split`, checked for shape."""

  @abc.abstractmethod
  def num_snippets(self, split: str, name: str) -> int:
    """L, the number of snippets of video `name`, without reading its features."""

  def load(self, split: str, name: str) -> VideoRecord:
    """The `VideoRecord` of video `name` of `split`.

    Raises:
      DataError: missing or malformed features, a video without annotations, or a
        label outside `class_names`; the message names the file.
    """
    features = self.load_features(split, name)
    annotation = self._required_annotation(split, name)
    labels = classes.multi_hot(annotation.video_labels, self.class_names,
                               self.annotation_file, name)
    classes.multi_hot(annotation.segment_labels, self.class_names,
                      self.annotation_file, name)
    return VideoRecord(
        name=name, features=features, labels=labels,
        segments=annotation.segments.copy(),
        segment_labels=annotation.segment_labels, duration=annotation.duration)

  def ground_truth(self) -> dict:
    """The ground truth of both splits in ActivityNet JSON form.

    Returns:
      {"database": {video: {"subset": 'train' | 'test', "duration"?: seconds,
      "annotations": [{"label": str, "segment": [start, end]}]}}}, covering the
      videos of the split lists that have annotations.
    """
    database = {}
    for split in SPLITS:
      for name in self.video_names(split):
        annotation = self.annotation(name)
        if annotation is not None:
          database[name] = ground_truth_entry(annotation, split)
    return {"database": database}

  def _required_annotation(self, split: str, name: str) -> VideoAnnotation:
    annotation = self.annotation(name)
    if annotation is None:
      raise DataError(
          f"{self.annotation_file}: no annotation for video {name} of the {split} "
          f"split (listed in {self.split_file(split)})", self.annotation_file)
    return annotation

  def _check_member(self, split: str, name: str) -> None:
    check_split(split)
    if name not in self._members(split):
      raise DataError(f"{self.split_file(split)}: video {name} is not in the "
                      f"{split} split", self.split_file(split))

  def _members(self, split: str) -> frozenset:
    if split not in self._member_cache:
      self._member_cache[split] = frozenset(self.video_names(split))
    return self._member_cache[split]

  def _check_features(self, features: np.ndarray, path: str, name: str) -> np.ndarray:
    """`features` as [L, D] float32; a DataError naming `path` if the shape is wrong."""
    if features.ndim != 2 or features.shape[1] != self._feature_dim:
      raise DataError(f"{path}: video {name} has features of shape "
                      f"{tuple(features.shape)}, expected [L, {self._feature_dim}]",
                      path)
    if features.shape[0] < 1:
      raise DataError(f"{path}: video {name} has no snippets", path)
    check_real_features(features, path, name)
    return np.asarray(features, np.float32)


def check_real_features(features: np.ndarray, path: str, name: str) -> None:
  """A DataError naming `path` unless `features` are real numbers (not complex)."""
  if np.iscomplexobj(features):
    raise DataError(f"{path}: video {name} has complex-valued features "
                    f"({features.dtype}); features must be real numbers", path)
  if not np.issubdtype(features.dtype, np.number):
    raise DataError(f"{path}: video {name} has non-numeric features "
                    f"({features.dtype})", path)


# ---------------------------------------------------------------------------
# Split lists and ActivityNet-style JSON ground truth.


def read_split_file(path: PathLike) -> List[str]:
  """Video names, one per line (blank lines skipped), in file order.

  Raises:
    DataError: a missing or unreadable file; UnsafeFileError for a name that is
      not plain (`check_video_name`).
  """
  path = os.fspath(path)
  try:
    with open(path, encoding="utf-8") as f:
      lines = [line.strip() for line in f]
  except FileNotFoundError:
    raise DataError(f"{path}: split file not found", path) from None
  except (OSError, UnicodeDecodeError) as e:
    raise DataError(f"{path}: cannot read split file ({e})", path) from e
  return [check_video_name(line, path, f"line {number}: ")
          for number, line in enumerate(lines, 1) if line]


def write_split_file(path: PathLike, names: Sequence[str]) -> None:
  """Writes one video name per line."""
  with open(path, "w", encoding="utf-8") as f:
    f.writelines(f"{name}\n" for name in names)


def _as_seconds(value, path: str, video: str, what: str) -> float:
  try:
    seconds = float(value)
  except (TypeError, ValueError):
    raise DataError(f"{path}: video {video}: {what} {short_repr(value)} is not a "
                    "number", path) from None
  if not math.isfinite(seconds):
    raise DataError(f"{path}: video {video}: {what} {short_repr(value)} is not finite",
                    path)
  return seconds


def _parse_json_video(path: str, name: str, entry) -> VideoAnnotation:
  """The `VideoAnnotation` of one entry of a gt.json "database"."""
  if not isinstance(entry, dict):
    raise DataError(f"{path}: video {name}: entry is not an object", path)
  instances = entry.get("annotations", [])
  if not isinstance(instances, list):
    raise DataError(f"{path}: video {name}: 'annotations' is not a list", path)
  pairs, labels = [], []
  for instance in instances:
    segment = instance.get("segment") if isinstance(instance, dict) else None
    if (not isinstance(segment, (list, tuple)) or len(segment) != 2
        or "label" not in instance):
      raise DataError(f"{path}: video {name}: an annotation lacks 'label' or a "
                      f"two-value 'segment': {short_repr(instance)}", path)
    if not isinstance(instance["label"], str):
      raise DataError(f"{path}: video {name}: label {short_repr(instance['label'])} "
                      "is not a string", path)
    pairs.append([_as_seconds(v, path, name, "segment value") for v in segment])
    labels.append(instance["label"])
  duration = entry.get("duration")
  if duration is not None:
    duration = _as_seconds(duration, path, name, "duration")
  subset = entry.get("subset")
  if subset is not None and not isinstance(subset, str):
    raise DataError(f"{path}: video {name}: subset {short_repr(subset)} is not a "
                    "string", path)
  return VideoAnnotation(
      name=name, subset=subset, segments=segments_array(pairs),
      segment_labels=tuple(labels), video_labels=tuple(dict.fromkeys(labels)),
      duration=duration)


def read_ground_truth_json(path: PathLike) -> Dict[str, VideoAnnotation]:
  """{video: VideoAnnotation} of an ActivityNet-style gt.json, in file order.

  Segment values and durations may be numbers or numeric strings. The file is read
  within `json_limits`' size and depth caps.

  Raises:
    DataError: a missing or unreadable file, or a malformed entry; the message
      names the file, the video and the field. UnsafeFileError for a file past
      the size or depth cap, or a video name that is not plain.
  """
  path = os.fspath(path)
  try:
    data = json_limits.load_json(path)
  except FileNotFoundError:
    raise DataError(f"{path}: ground-truth file not found", path) from None
  except OSError as e:
    raise DataError(f"{path}: unreadable JSON ({e})", path) from e
  except json_limits.JsonLimitError as e:   # Past a cap: unsafe to read further.
    raise npy.UnsafeFileError(str(e), path) from None
  except json_limits.JsonInputError as e:
    raise DataError(str(e), path) from None
  database = data.get("database") if isinstance(data, dict) else None
  if not isinstance(database, dict):
    raise DataError(f"{path}: expected a top-level 'database' object", path)
  annotations = {}
  for name, entry in database.items():
    annotations[check_video_name(name, path)] = _parse_json_video(path, name, entry)
  return annotations
