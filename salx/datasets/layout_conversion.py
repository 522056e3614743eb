"""Converting a data folder between the three layouts, one video at a time.

    convert_folder("BaS-Net/THUMOS14", "W-TALC/THUMOS14", dataset="thumos14",
                   from_layout="sal", to_layout="wtalc")

Every video of the two splits is read and written one at a time (memory holds a
couple of videos): a 'sal' or 'acmnet' folder is read file by file, a 'wtalc'
feature pickle entry by entry (`wtalc_stream.iter_object_array`), and W-TALC's
one object array is written entry by entry (`wtalc_stream.write_object_array`).
The annotations travel whole: instances (segments and labels, in order), durations,
the split lists (in order) and the class list; a 'wtalc' folder's video order is
kept when it is written as 'wtalc' again, otherwise the train videos come first.
Features are written as float32, as salx reads them.

The output is written into `OUT.partial-<random>` next to OUT and renamed to OUT
when complete: an interrupted or killed conversion never leaves a folder named
OUT. OUT is replaced only with `overwrite`.

What a layout cannot hold stops the conversion with a DataError naming the video:
the 'sal' and 'acmnet' layouts (gt.json) store only instances, so a W-TALC video
whose `labels_all` names a class without an instance cannot be written in them.
Videos in neither split (a W-TALC subset other than the two, a gt.json entry no
split lists) are not converted; `ConversionSummary.left_out` counts them.
"""

from __future__ import annotations

import dataclasses
import os
import shutil
import tempfile
from typing import Dict, Iterable, Iterator, List, Optional, Sequence

import numpy as np

from salx.core.constants import FEATURE_DIM, SPLITS
from salx.core import progress_bar
from salx.datasets import classes
from salx.datasets import layouts
from salx.datasets import npy
from salx.datasets import wtalc_layout
from salx.datasets import wtalc_stream
from salx.datasets import writing
from salx.datasets.errors import DataError, PathLike
from salx.datasets.source import (FeatureSource, VideoRecord, check_real_features,
                                  read_ground_truth_json)
from salx.datasets.wtalc_annotations import field_file, read_wtalc_annotations


class OutputExistsError(DataError):
  """The output folder exists and `overwrite` was not given."""


@dataclasses.dataclass(frozen=True)
class ConversionSummary:
  """What a conversion wrote.

  Attributes:
    out_dir: the folder written.
    layout: its layout.
    videos: {'train': count, 'test': count}.
    left_out: annotated videos in neither split, not converted.
  """
  out_dir: str
  layout: str
  videos: Dict[str, int]
  left_out: int


# ------------------------------------------------------------------------- reading


def _record(source: FeatureSource, name: str, features: np.ndarray,
            path: str) -> VideoRecord:
  """The record of video `name` from features read elsewhere, checked as
  `FeatureSource.load` checks them."""
  features = np.asarray(features)
  if features.ndim != 2 or features.shape[1] != source.feature_dim:
    raise DataError(f"{path}: video {name} has features of shape "
                    f"{tuple(features.shape)}, expected [L, {source.feature_dim}]", path)
  if features.shape[0] < 1:
    raise DataError(f"{path}: video {name} has no snippets", path)
  check_real_features(features, path, name)
  annotation = source.annotation(name)
  if annotation is None:
    raise DataError(f"{source.annotation_file}: no annotation for video {name}",
                    source.annotation_file)
  labels = classes.multi_hot(annotation.video_labels, source.class_names,
                             source.annotation_file, name)
  classes.multi_hot(annotation.segment_labels, source.class_names,
                    source.annotation_file, name)
  return VideoRecord(name=name, features=np.asarray(features, np.float32),
                     labels=labels, segments=annotation.segments.copy(),
                     segment_labels=annotation.segment_labels,
                     duration=annotation.duration)


def _wtalc_file_order(source: FeatureSource) -> List[str]:
  """The names of a W-TALC folder's entries, in file order."""
  _, annotation_dir = wtalc_layout.wtalc_paths(source.data_dir, source.dataset)
  return list(read_wtalc_annotations(annotation_dir).names)


def video_order(source: FeatureSource) -> List[str]:
  """The split videos in the order they are read and written: a W-TALC folder's
  file order, else the train split then the test split."""
  members = {n for split in SPLITS for n in source.video_names(split)}
  if source.layout == "wtalc":
    return [n for n in dict.fromkeys(_wtalc_file_order(source)) if n in members]
  return [n for split in SPLITS for n in dict.fromkeys(source.video_names(split))]


def left_out_count(source: FeatureSource) -> int:
  """Annotated videos of the folder that no split lists."""
  members = {n for split in SPLITS for n in source.video_names(split)}
  if source.layout == "wtalc":
    names = set(_wtalc_file_order(source))
  else:
    names = set(read_ground_truth_json(source.annotation_file))
  return len(names - members)


def iter_records(source: FeatureSource) -> Iterator[VideoRecord]:
  """Every video of the two splits, one at a time, in `video_order`.

  Raises:
    DataError: a missing or damaged file, a bad value (named as the source names
      it).
  """
  split_of = {}
  for split in SPLITS:
    for name in source.video_names(split):
      split_of.setdefault(name, split)
  if source.layout != "wtalc":
    for name in video_order(source):
      yield source.load(split_of[name], name)
    return
  names = _wtalc_file_order(source)
  path = source.feature_array_file
  first = {}
  for i, name in enumerate(names):
    first.setdefault(name, i)
  for index, features in wtalc_stream.iter_object_array(path):
    if index >= len(names):
      raise DataError(f"{path}: holds more entries than the {len(names)} videos of "
                      "the annotations", path)
    name = names[index]
    if name in split_of and first[name] == index:
      yield _record(source, name, features, path)


# ------------------------------------------------------------------------- writing


def _bytes_array(texts: Sequence[str]) -> np.ndarray:
  return np.array([t.encode("utf-8") for t in texts], dtype=np.bytes_)


def write_wtalc_streamed(out_dir: PathLike, records: Iterable[VideoRecord],
                         order: Sequence[str], splits: Dict[str, Sequence[str]],
                         class_names: Sequence[str], dataset: str) -> str:
  """The 'wtalc' layout of `dataset`, its feature array written one video at a time.

  The files `wtalc_layout.write_wtalc_layout` writes, with the videos in `order`
  (every video of `splits` once): `records` must come in that order.

  Raises:
    DataError: see `writing.checked_records`; a record out of `order`.
  """
  if dataset not in wtalc_layout.WTALC_PREFIXES:
    raise ValueError(f"unknown dataset {dataset!r}; expected one of "
                     f"{tuple(wtalc_layout.WTALC_PREFIXES)}")
  split_of = writing.split_of_videos(splits)
  feature_path, annotation_dir = wtalc_layout.wtalc_paths(out_dir, dataset)
  os.makedirs(annotation_dir, exist_ok=True)
  kept: List[VideoRecord] = []

  def features() -> Iterator[np.ndarray]:
    for record, _ in writing.checked_records(records, splits, class_names,
                                             labels_from_segments=False,
                                             layout="wtalc"):
      if len(kept) >= len(order) or record.name != order[len(kept)]:
        raise DataError(f"video {record.name} comes out of order (expected "
                        f"{order[len(kept)] if len(kept) < len(order) else 'no more'})")
      kept.append(dataclasses.replace(record, features=np.zeros((0, 0), np.float32)))
      yield np.asarray(record.features, np.float32)

  wtalc_stream.write_object_array(feature_path, len(order), features())
  is_activitynet = dataset.startswith("activitynet")
  names = [r.name for r in kept]
  arrays = {
      "videoname": _bytes_array(
          [f"video_{i}" if is_activitynet else n for i, n in enumerate(names)]),
      "subset": _bytes_array([wtalc_layout.WTALC_SUBSETS[dataset][split_of[n]]
                              for n in names]),
      "segments": npy.object_array(
          [np.reshape(r.segments, (-1, 2)).astype(float).tolist() for r in kept]),
      "labels": npy.object_array([list(r.segment_labels) for r in kept]),
      "labels_all": npy.object_array(
          [[class_names[c] for c in np.flatnonzero(r.labels)] for r in kept]),
      "duration": np.array([np.nan if r.duration is None else r.duration
                            for r in kept], np.float64),
      "classlist": _bytes_array(list(class_names)),
  }
  if is_activitynet:
    arrays["url"] = _bytes_array([f"https://www.youtube.com/watch?v={n}" for n in names])
  for field, array in arrays.items():
    npy.save_npy(field_file(annotation_dir, field), array)
  return os.fspath(out_dir)


def _move_into_place(staging: str, out_dir: str, overwrite: bool) -> None:
  if os.path.lexists(out_dir):
    if not overwrite:
      raise OutputExistsError(f"{out_dir} appeared while converting; the conversion "
                              f"is left in {staging}", out_dir)
    retired = tempfile.mkdtemp(prefix=f"{os.path.basename(out_dir)}.old-",
                               dir=os.path.dirname(out_dir))
    os.rename(out_dir, os.path.join(retired, "replaced"))
    os.rename(staging, out_dir)
    shutil.rmtree(retired, ignore_errors=True)
    return
  os.rename(staging, out_dir)


def check_output(data_dir: str, out_dir: str, overwrite: bool) -> None:
  """Raises OutputExistsError when `out_dir` exists without `overwrite`, and a
  DataError when it is the data folder or inside it."""
  data_real, out_real = os.path.realpath(data_dir), os.path.realpath(out_dir)
  if out_real == data_real or out_real.startswith(data_real.rstrip(os.sep) + os.sep):
    raise DataError(f"{out_dir}: the output folder must lie outside the data folder "
                    f"{data_dir}", out_dir)
  if os.path.lexists(out_dir) and not overwrite:
    raise OutputExistsError(f"{out_dir} already exists; pass --overwrite to replace it, "
                            "or choose another --out", out_dir)


def convert_folder(data_dir: PathLike, out_dir: PathLike, *, dataset: str,
                   from_layout: str = "auto", to_layout: str,
                   feature_dim: int = FEATURE_DIM, overwrite: bool = False,
                   progress: Optional[bool] = None) -> ConversionSummary:
  """Converts the data folder `data_dir` into `out_dir` in `to_layout` (module
  docstring).

  Args:
    data_dir: the folder to read.
    out_dir: the folder to write (must not exist, unless `overwrite`).
    dataset: 'thumos14', 'activitynet12' or 'activitynet13'.
    from_layout: the layout of `data_dir` ('auto' detects it).
    to_layout: 'sal', 'wtalc' or 'acmnet'.
    feature_dim: D, the width of a video's features.
    overwrite: replace `out_dir` when it exists.
    progress: a bar of the videos written on stderr (None: when it is a terminal).

  Raises:
    OutputExistsError: `out_dir` exists and not `overwrite`.
    DataError: the folder cannot be read, or holds what `to_layout` cannot store.
    ValueError: an unknown dataset or layout.
  """
  if to_layout not in layouts.LAYOUTS:
    raise ValueError(f"unknown layout {to_layout!r}; expected one of {layouts.LAYOUTS}")
  data_dir = os.path.abspath(os.path.expanduser(os.fspath(data_dir)))
  out_dir = os.path.abspath(os.path.expanduser(os.fspath(out_dir)))
  check_output(data_dir, out_dir, overwrite)
  source = layouts.open_source(data_dir, dataset, from_layout, feature_dim=feature_dim)
  splits = {split: list(source.video_names(split)) for split in SPLITS}
  writing.split_of_videos(splits)   # Refuses a video listed twice before writing.
  order = video_order(source)
  left_out = left_out_count(source)
  records = progress_bar.track(
      iter_records(source), total=len(order), unit="videos",
      label=f"converting {source.layout} -> {to_layout}",
      enabled=None if progress is None else bool(progress))
  parent = os.path.dirname(out_dir)
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f"{os.path.basename(out_dir)}.partial-", dir=parent)
  try:
    os.chmod(staging, 0o755)   # mkdtemp makes it private; a dataset is for reading.
    if to_layout == "wtalc":
      write_wtalc_streamed(staging, records, order, splits, source.class_names, dataset)
    else:
      layouts.write_layout(to_layout, staging, records, splits, source.class_names,
                           dataset=dataset)
    _move_into_place(staging, out_dir, overwrite)
  except OutputExistsError:
    raise
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  finally:
    records.close()   # Stops a W-TALC reader's thread when writing failed.
  return ConversionSummary(out_dir, to_layout,
                           {split: len(set(names)) for split, names in splits.items()},
                           left_out)
