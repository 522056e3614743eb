"""The 'wtalc' layout of W-TALC, CO2-Net, DELU and DDG-Net: one pickled feature array.

    Thumos14reduced-I3D-JOINTFeatures.npy   one object array, one [L, 2048] per video
    Thumos14reduced-Annotations/            per-video arrays in the same order (see
                                            `wtalc_annotations`)
ActivityNet uses the `ActivityNet1.2-` / `ActivityNet1.3-` prefixes. THUMOS14 subsets
are 'validation' (train) and 'test'; ActivityNet's are 'training' (train) and
'validation' (test).

The feature file is one pickle: there is no way to read one video of it, so the first
`load_features` / `num_snippets` reads all of it (about 2 GB for ActivityNet 1.2) and
the source keeps it. When the file is damaged the source keeps the error instead, so
that it is read and reported once, not once per video.
"""

from __future__ import annotations

import os
import threading
from typing import Dict, Iterable, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from salx.core.constants import FEATURE_DIM, SPLITS
from salx.datasets import npy
from salx.datasets import writing
from salx.datasets.errors import DataError, PathLike
from salx.datasets.source import (FeatureSource, VideoAnnotation, VideoRecord,
                                  check_split)
from salx.datasets.wtalc_annotations import field_file, read_wtalc_annotations

DESCRIPTION = "<Prefix>-I3D-JOINTFeatures.npy and <Prefix>-Annotations/"
# File name prefixes and the subset names of the train and test splits.
WTALC_PREFIXES = {"thumos14": "Thumos14reduced", "activitynet12": "ActivityNet1.2",
                  "activitynet13": "ActivityNet1.3"}
WTALC_SUBSETS = {
    "thumos14": {"train": "validation", "test": "test"},
    "activitynet12": {"train": "training", "test": "validation"},
    "activitynet13": {"train": "training", "test": "validation"},
}
FEATURE_SUFFIX = "-I3D-JOINTFeatures.npy"
ANNOTATION_SUFFIX = "-Annotations"


def wtalc_paths(data_dir: PathLike, dataset: str) -> Tuple[str, str]:
  """(feature file, annotation folder) of the W-TALC layout of `dataset`."""
  prefix = WTALC_PREFIXES[dataset]
  data_dir = os.fspath(data_dir)
  return (os.path.join(data_dir, prefix + FEATURE_SUFFIX),
          os.path.join(data_dir, prefix + ANNOTATION_SUFFIX))


class WtalcSource(FeatureSource):
  """Reads the 'wtalc' layout.

  The annotation arrays are read and checked when the source opens; the feature
  pickle at the first feature access, once (its content or its error is kept).
  """

  layout = "wtalc"

  def __init__(self, data_dir: PathLike, dataset: str,
               class_names: Optional[Sequence[str]] = None,
               feature_dim: int = FEATURE_DIM):
    super().__init__(data_dir, dataset, feature_dim)
    self._feature_path, self._annotation_dir = wtalc_paths(self._data_dir, dataset)
    self._features: Optional[np.ndarray] = None
    self._features_error: Optional[DataError] = None
    self._features_lock = threading.Lock()
    if not os.path.isfile(self._feature_path):
      raise DataError(f"{self._feature_path}: W-TALC feature file not found",
                      self._feature_path)
    content = read_wtalc_annotations(self._annotation_dir)
    self._names = content.names
    self._index: Dict[str, int] = {}
    for i, name in enumerate(self._names):
      self._index.setdefault(name, i)
    self._annotations = content.annotations
    split_of_subset = {v: k for k, v in WTALC_SUBSETS[dataset].items()}
    self._splits: Dict[str, List[str]] = {split: [] for split in SPLITS}
    for name, subset in zip(self._names, content.subsets):
      if subset in split_of_subset:
        self._splits[split_of_subset[subset]].append(name)
    self._class_names = (tuple(class_names) if class_names is not None
                         else content.class_names)

  @property
  def annotation_file(self) -> str:
    return field_file(self._annotation_dir, "segments")

  @property
  def feature_array_file(self) -> str:
    return self._feature_path

  @property
  def features_loaded(self) -> bool:
    """Whether the pickled feature array has been read into memory."""
    return self._features is not None

  def split_file(self, split: str) -> str:
    check_split(split)
    return field_file(self._annotation_dir, "subset")

  def video_names(self, split: str) -> List[str]:
    check_split(split)
    return list(self._splits[split])

  def annotation(self, name: str) -> Optional[VideoAnnotation]:
    return self._annotations.get(name)

  def feature_file(self, split: str, name: str) -> str:
    return self._feature_path

  def load_features(self, split: str, name: str) -> np.ndarray:
    self._check_member(split, name)
    features = self._all_features()[self._index[name]]
    if not isinstance(features, np.ndarray):
      raise DataError(f"{self._feature_path}: video {name} has features of type "
                      f"{type(features).__name__}, not an array", self._feature_path)
    return self._check_features(features, self._feature_path, name)

  def num_snippets(self, split: str, name: str) -> int:
    # The features are in memory already (float32: no copy is made).
    return int(self.load_features(split, name).shape[0])

  def _all_features(self) -> np.ndarray:
    """The [V] object array of every video's features, read once.

    Raises:
      DataError: the feature file is damaged or does not match the annotations; the
        same error again, without reading the file again, at every later call.
    """
    with self._features_lock:
      if self._features_error is not None:
        raise self._features_error.with_traceback(None)
      if self._features is None:
        try:
          self._features = self._read_features()
        except DataError as e:
          # A fresh error (of the same class: an unsafe file stays one), so that
          # the partly read pickle is not kept alive.
          self._features_error = type(e)(str(e), e.path)
          raise self._features_error from None
      return self._features

  def _read_features(self) -> np.ndarray:
    features = npy.read_npy(self._feature_path)
    if features.ndim != 1 or len(features) != len(self._names):
      raise DataError(
          f"{self._feature_path}: holds {features.shape} entries, but "
          f"{field_file(self._annotation_dir, 'videoname')} lists {len(self._names)} "
          "videos", self._feature_path)
    return features


def _bytes_array(texts: Sequence[str]) -> np.ndarray:
  """[N] numpy bytes array of UTF-8 encoded `texts` (W-TALC stores names as bytes)."""
  return np.array([t.encode("utf-8") for t in texts], dtype=np.bytes_)


def write_wtalc_layout(out_dir: PathLike, videos: Iterable[VideoRecord],
                       splits: Mapping[str, Sequence[str]],
                       class_names: Sequence[str],
                       dataset: str = "thumos14") -> str:
  """Writes `videos` in the 'wtalc' layout of `dataset` and returns `out_dir`.

  Videos are stored train split first, then test, each in split order. For
  ActivityNet, videos are named 'video_<n>' and `url.npy` holds
  'https://www.youtube.com/watch?v=<name>', as in W-TALC; the reader names them
  back by `<name>`. Unknown durations are stored as NaN. All records are held in
  memory (the format is one pickle).

  Args:
    out_dir: the folder to write (created if needed).
    videos: the records of every video named in `splits`, any order.
    splits: {'train': [names], 'test': [names]}, the split lists in order.
    class_names: the class order of the records' labels (written to classlist.npy).
    dataset: 'thumos14', 'activitynet12' or 'activitynet13' (file names, subsets).

  Raises:
    ValueError: an unknown dataset.
    DataError: see `writing.checked_records`.
  """
  if dataset not in WTALC_PREFIXES:
    raise ValueError(f"unknown dataset {dataset!r}; expected one of "
                     f"{tuple(WTALC_PREFIXES)}")
  records = {record.name: record for record, _ in writing.checked_records(
      videos, splits, class_names, labels_from_segments=False, layout="wtalc")}
  split_of = writing.split_of_videos(splits)
  ordered = [records[name] for split in SPLITS for name in splits.get(split, ())]
  feature_path, annotation_dir = wtalc_paths(out_dir, dataset)
  os.makedirs(annotation_dir, exist_ok=True)
  is_activitynet = dataset.startswith("activitynet")
  names = [r.name for r in ordered]
  arrays = {
      "videoname": _bytes_array(
          [f"video_{i}" if is_activitynet else n for i, n in enumerate(names)]),
      "subset": _bytes_array([WTALC_SUBSETS[dataset][split_of[n]] for n in names]),
      "segments": npy.object_array(
          [np.reshape(r.segments, (-1, 2)).astype(float).tolist() for r in ordered]),
      "labels": npy.object_array([list(r.segment_labels) for r in ordered]),
      "labels_all": npy.object_array(
          [[class_names[c] for c in np.flatnonzero(r.labels)] for r in ordered]),
      "duration": np.array([np.nan if r.duration is None else r.duration
                            for r in ordered], np.float64),
      "classlist": _bytes_array(list(class_names)),
  }
  if is_activitynet:
    arrays["url"] = _bytes_array(
        [f"https://www.youtube.com/watch?v={n}" for n in names])
  for field, array in arrays.items():
    npy.save_npy(field_file(annotation_dir, field), array)
  npy.save_npy(feature_path, npy.object_array(
      [np.asarray(r.features, np.float32) for r in ordered]))
  return os.fspath(out_dir)
