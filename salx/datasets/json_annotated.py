"""What the 'sal' and 'acmnet' layouts share: gt.json, the split lists, classlist.txt.

    gt.json                            {"database": {video: {"subset", "annotations":
                                        [{"label", "segment": [s, e]}], "duration"?}}}
    split_train.txt, split_test.txt    one video name per line; these define the splits
    classlist.txt (or action_name.csv) the class order (optional)

`JsonAnnotatedSource` reads them (the layouts add where the features are);
`write_json_annotated` writes a whole folder, one video's features at a time.
"""

from __future__ import annotations

import json
import os
from typing import Callable, Iterable, List, Mapping, Optional, Sequence

import numpy as np

from salx.core.constants import FEATURE_DIM, SPLITS
from salx.datasets import classes
from salx.datasets import npy
from salx.datasets import writing
from salx.datasets.errors import DataError, PathLike
from salx.datasets.source import (FeatureSource, VideoAnnotation, VideoRecord,
                                  check_real_features, check_split,
                                  ground_truth_entry, read_ground_truth_json,
                                  read_split_file, write_split_file)

# Writes the features of one record of a split into the folder: (folder, split, record).
SaveFeatures = Callable[[str, str, VideoRecord], None]


class JsonAnnotatedSource(FeatureSource):
  """A folder with gt.json and split_{train,test}.txt; subclasses place the features."""

  def __init__(self, data_dir: PathLike, dataset: str,
               class_names: Optional[Sequence[str]] = None,
               feature_dim: int = FEATURE_DIM):
    super().__init__(data_dir, dataset, feature_dim)
    self._gt_file = os.path.join(self._data_dir, "gt.json")
    self._annotations = read_ground_truth_json(self._gt_file)
    self._splits = {split: read_split_file(self.split_file(split)) for split in SPLITS}
    used = {label for a in self._annotations.values() for label in a.video_labels}
    self._class_names = classes.resolve_class_names(
        self._data_dir, dataset, class_names, used, self._gt_file)

  @property
  def annotation_file(self) -> str:
    return self._gt_file

  def split_file(self, split: str) -> str:
    check_split(split)
    return os.path.join(self._data_dir, f"split_{split}.txt")

  def video_names(self, split: str) -> List[str]:
    check_split(split)
    return list(self._splits[split])

  def annotation(self, name: str) -> Optional[VideoAnnotation]:
    return self._annotations.get(name)

  def _missing_features(self, split: str, name: str, path: str) -> DataError:
    return DataError(f"{path}: no feature file for video {name} of the {split} split "
                     f"(listed in {self.split_file(split)})", path)

  def _read_feature_file(self, split: str, name: str, path: str,
                         width: int) -> np.ndarray:
    """[L, width] array of a video's feature file; a DataError naming the file."""
    if not os.path.isfile(path):
      raise self._missing_features(split, name, path)
    features = npy.read_npy(path)
    if features.ndim != 2 or features.shape[1] != width:
      raise DataError(f"{path}: video {name} has features of shape "
                      f"{tuple(features.shape)}, expected [L, {width}]", path)
    check_real_features(features, path, name)
    return features

  def _header_length(self, split: str, name: str, path: str, width: int) -> int:
    """L of a video's [L, width] feature file, from its header."""
    if not os.path.isfile(path):
      raise self._missing_features(split, name, path)
    shape = npy.read_npy_shape(path)
    if len(shape) != 2 or shape[1] != width:
      raise DataError(f"{path}: video {name} has features of shape {shape}, "
                      f"expected [L, {width}]", path)
    return shape[0]


def write_json_annotated(out_dir: PathLike, videos: Iterable[VideoRecord],
                         splits: Mapping[str, Sequence[str]],
                         class_names: Sequence[str], layout: str,
                         save_features: SaveFeatures) -> str:
  """Writes a gt.json-annotated folder, one video at a time, and returns `out_dir`.

  Args:
    out_dir: the folder to write (created if needed).
    videos: the records of every video named in `splits`, any order.
    splits: {'train': [names], 'test': [names]}, the split lists in order.
    class_names: the class order of the records' labels (written to classlist.txt).
    layout: the layout's name, for messages.
    save_features: writes one record's features where the layout keeps them.

  Raises:
    DataError: see `writing.checked_records` (gt.json only stores instances, so video
      labels must be the instances' classes).
  """
  out_dir = os.fspath(out_dir)
  entries = {}
  for record, split in writing.checked_records(videos, splits, class_names,
                                               labels_from_segments=True,
                                               layout=layout):
    save_features(out_dir, split, record)
    annotation = VideoAnnotation(
        name=record.name, subset=split,
        segments=np.reshape(np.asarray(record.segments, np.float64), (-1, 2)),
        segment_labels=tuple(record.segment_labels), video_labels=(),
        duration=record.duration)
    entries[record.name] = ground_truth_entry(annotation, split)
  ordered = {name: entries[name] for split in SPLITS for name in splits.get(split, ())}
  os.makedirs(out_dir, exist_ok=True)
  with open(os.path.join(out_dir, "gt.json"), "w", encoding="utf-8") as f:
    json.dump({"version": "salx", "database": ordered}, f)
  for split in SPLITS:
    write_split_file(os.path.join(out_dir, f"split_{split}.txt"), splits.get(split, ()))
  classes.write_class_list(os.path.join(out_dir, "classlist.txt"), class_names)
  return out_dir
