"""The annotation arrays of the W-TALC layout, read and checked value by value.

    <Prefix>-Annotations/   one .npy array per field, one entry per video, same order:
      videoname.npy    the video's name (bytes or str)
      subset.npy       its subset ('validation' / 'test' for THUMOS14, 'training' /
                       'validation' for ActivityNet)
      segments.npy     its instances, a list of [start, end] pairs in seconds
      labels.npy       a class name per instance
      labels_all.npy   the video's class names (optional; else its instances')
      duration.npy     seconds (optional; NaN: unknown)
      url.npy          its YouTube address (ActivityNet, optional)
      classlist.npy    the class names in class-index order (not one per video)

Every value is checked for its type (names and labels strings, segments pairs of
finite numbers, durations numbers); a bad one is a DataError naming the file, the
video and the field. Values appear in messages through `short_repr` (a crafted
value's whole repr can be gigabytes); video names must be plain names
(`source.check_video_name`).
"""

from __future__ import annotations

import dataclasses
import functools
import math
import numbers
import os
import re
from typing import Dict, List, Mapping, Optional, Tuple

import numpy as np

from salx.core.bounded_repr import short_repr
from salx.datasets import npy
from salx.datasets.errors import DataError, PathLike
from salx.datasets.source import VideoAnnotation, check_video_name, segments_array

REQUIRED_FIELDS = ("videoname", "subset", "segments", "labels", "classlist")
OPTIONAL_FIELDS = ("labels_all", "duration", "url")
_YOUTUBE_ID = re.compile(r"[?&]v=([^&#]+)")


@dataclasses.dataclass(frozen=True)
class WtalcAnnotations:
  """The checked content of a W-TALC annotation folder.

  Attributes:
    names: [V] the video of each entry; W-TALC's ActivityNet names 'video_<n>'
      become the YouTube ids of url.npy.
    subsets: [V] the subset of each entry.
    annotations: {name: VideoAnnotation} (the first entry of a repeated name).
    class_names: classlist.npy, in order.
  """
  names: Tuple[str, ...]
  subsets: Tuple[str, ...]
  annotations: Dict[str, VideoAnnotation]
  class_names: Tuple[str, ...]


def field_file(annotation_dir: PathLike, field: str) -> str:
  """The .npy file of `field` ('videoname', 'segments', ...) in `annotation_dir`."""
  return os.path.join(os.fspath(annotation_dir), f"{field}.npy")


def _text(value, path: str, where: str) -> str:
  if isinstance(value, (bytes, np.bytes_)):
    try:
      return bytes(value).decode("utf-8")
    except UnicodeDecodeError:
      raise DataError(f"{path}: {where} {short_repr(value)} is not UTF-8 text",
                      path) from None
  if isinstance(value, str):
    return str(value)
  raise DataError(f"{path}: {where} {short_repr(value)} is not a string", path)


def _is_number(value) -> bool:
  return isinstance(value, numbers.Real) and not isinstance(value, (bool, np.bool_))


def _entries(value, path: str, where: str):
  """`value` as a sequence of entries (a list, tuple or array of at least 1 dim)."""
  if isinstance(value, (list, tuple)) or (isinstance(value, np.ndarray) and value.ndim):
    return value
  raise DataError(f"{path}: {where} {short_repr(value)} is not a list", path)


def _texts(value, path: str, where: str) -> Tuple[str, ...]:
  return tuple(_text(v, path, f"{where}[{j}]")
               for j, v in enumerate(_entries(value, path, where)))


def _segments(value, path: str, where: str) -> np.ndarray:
  """[N, 2] float64 of a video's list of (start, end) pairs."""
  pairs = []
  for j, pair in enumerate(_entries(value, path, where)):
    if (not isinstance(pair, (list, tuple, np.ndarray)) or len(pair) != 2
        or not all(_is_number(v) and math.isfinite(v) for v in pair)):
      raise DataError(f"{path}: {where}[{j}] {short_repr(pair)} is not a pair of "
                      "finite numbers", path)
    pairs.append([float(v) for v in pair])
  return segments_array(pairs)


def _duration(value, path: str, where: str) -> Optional[float]:
  if not _is_number(value):
    raise DataError(f"{path}: {where} {short_repr(value)} is not a number", path)
  if math.isinf(value):
    raise DataError(f"{path}: {where} {short_repr(value)} is not finite", path)
  return None if math.isnan(value) else float(value)


def _read_arrays(annotation_dir: str) -> Dict[str, np.ndarray]:
  """{field: [V] array} of the folder's files; checks they all have V entries."""
  if not os.path.isdir(annotation_dir):
    raise DataError(f"{annotation_dir}: W-TALC annotation folder not found",
                    annotation_dir)
  arrays = {}
  for field in REQUIRED_FIELDS + OPTIONAL_FIELDS:
    path = field_file(annotation_dir, field)
    if field in REQUIRED_FIELDS or os.path.isfile(path):
      arrays[field] = npy.read_npy(path)
      if arrays[field].ndim != 1:
        raise DataError(f"{path}: expected a 1-D array, one entry per "
                        f"{'class' if field == 'classlist' else 'video'}; got shape "
                        f"{arrays[field].shape}", path)
  count = len(arrays["videoname"])
  for field, array in arrays.items():
    if field != "classlist" and len(array) != count:
      path = field_file(annotation_dir, field)
      raise DataError(f"{path}: {len(array)} entries, but videoname.npy lists "
                      f"{count} videos", path)
  return arrays


def _video_names(arrays: Mapping[str, np.ndarray], annotation_dir: str) -> List[str]:
  """Video names; W-TALC's ActivityNet 'video_<n>' names become YouTube ids.

  Raises:
    DataError: a name that is not text; UnsafeFileError: one that is not plain.
  """
  path = field_file(annotation_dir, "videoname")
  names = [check_video_name(_text(v, path, f"entry {i}: videoname"), path,
                            f"entry {i}: ")
           for i, v in enumerate(arrays["videoname"])]
  if "url" not in arrays or not all(re.fullmatch(r"video_\d+", n) for n in names):
    return names
  path = field_file(annotation_dir, "url")
  ids = []
  for name, value in zip(names, arrays["url"]):
    url = _text(value, path, f"video {name}: url")
    match = _YOUTUBE_ID.search(url)
    if match is None:
      raise DataError(f"{path}: video {name}: no YouTube id in url {short_repr(url)}",
                      path)
    ids.append(check_video_name(match.group(1), path, f"video {name}: url: "))
  return ids


def _annotation(arrays: Mapping[str, np.ndarray], annotation_dir: str, i: int,
                name: str) -> VideoAnnotation:
  """The checked annotation of entry `i` (video `name`)."""
  file = functools.partial(field_file, annotation_dir)
  where = f"video {name}:"
  segments = _segments(arrays["segments"][i], file("segments"), f"{where} segments")
  segment_labels = _texts(arrays["labels"][i], file("labels"), f"{where} labels")
  if len(segment_labels) != len(segments):
    raise DataError(f"{file('labels')}: video {name} has {len(segment_labels)} labels "
                    f"for {len(segments)} segments", file("labels"))
  if "labels_all" in arrays:
    video_labels = _texts(arrays["labels_all"][i], file("labels_all"),
                          f"{where} labels_all")
  else:
    video_labels = tuple(dict.fromkeys(segment_labels))
  duration = None
  if "duration" in arrays:
    duration = _duration(arrays["duration"][i], file("duration"), f"{where} duration")
  return VideoAnnotation(
      name=name, subset=_text(arrays["subset"][i], file("subset"), f"{where} subset"),
      segments=segments, segment_labels=segment_labels, video_labels=video_labels,
      duration=duration)


def read_wtalc_annotations(annotation_dir: PathLike) -> WtalcAnnotations:
  """The checked annotations of a W-TALC `<Prefix>-Annotations` folder.

  Raises:
    DataError: a missing or unreadable file, arrays of different lengths, or a value
      of the wrong type; the message names the file, the video and the field.
  """
  annotation_dir = os.fspath(annotation_dir)
  arrays = _read_arrays(annotation_dir)
  names = _video_names(arrays, annotation_dir)
  annotations, subsets = {}, []
  for i, name in enumerate(names):
    annotation = _annotation(arrays, annotation_dir, i, name)
    annotations.setdefault(name, annotation)
    subsets.append(annotation.subset)
  class_names = _texts(arrays["classlist"], field_file(annotation_dir, "classlist"),
                       "classlist")
  return WtalcAnnotations(names=tuple(names), subsets=tuple(subsets),
                          annotations=annotations, class_names=class_names)
