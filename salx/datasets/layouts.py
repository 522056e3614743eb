"""Reading and writing the three on-disk layouts of pre-extracted I3D features.

Each snippet is 16 frames at 25 fps; a feature vector has 2048 dims, the 1024 RGB
dims first, then the 1024 optical-flow dims. Researchers hold these features in
one of three layouts, all of which `open_source` reads (and `write_*_layout` write):

'sal' — SAL, BaS-Net and UM:
    gt.json                            {"database": {video: {"subset", "annotations":
                                        [{"label", "segment": [s, e]}], "duration"?}}}
    split_train.txt, split_test.txt    one video name per line; these define the splits
    features/{train,test}/rgb/<video>.npy    [L, 1024] float32
    features/{train,test}/flow/<video>.npy   [L, 1024] float32
  Segment values may be strings ("18.6"), "duration" may be absent.

'wtalc' — W-TALC, CO2-Net, DELU, DDG-Net:
    Thumos14reduced-I3D-JOINTFeatures.npy   one object array, one [L, 2048] per video
    Thumos14reduced-Annotations/            per-video .npy arrays, in the same order:
      videoname.npy, subset.npy, segments.npy (lists of [s, e]), labels.npy (a class
      name per segment), labels_all.npy (the video's classes), duration.npy,
      classlist.npy, and for ActivityNet url.npy (YouTube address of each video).
  ActivityNet uses the `ActivityNet1.2-` / `ActivityNet1.3-` prefixes. THUMOS14
  subsets are 'validation' (train) and 'test'; ActivityNet's are 'training' (train)
  and 'validation' (test). This layout is one pickle: the first `load` reads the whole
  feature array into memory and keeps it (there is no way to read one video of a
  pickle). Object arrays are read with a restricted unpickler that can only rebuild
  numpy arrays, dtypes and plain lists/strings/numbers, never run other code.

'acmnet' — ACM-Net (used for ActivityNet 1.3):
    gt.json, split_train.txt, split_test.txt   as in 'sal'
    train/<video>.npy, test/<video>.npy         [L, 2048] float32

Every layout may also hold a `classlist.txt` (or BSN's `action_name.csv`) stating
the class order; see `salx.datasets.classes` for the defaults.
"""

from __future__ import annotations

import abc
import builtins
import codecs
import dataclasses
import json
import math
import os
import pickle
import re
import threading
from typing import (Dict, Iterable, List, Mapping, Optional, Sequence, Tuple)

import numpy as np

from salx.datasets import classes
from salx.datasets.errors import DataError, PathLike

FEATURE_DIM = 2048
SNIPPET_FRAMES = 16
FEATURE_FPS = 25.0
SECONDS_PER_SNIPPET = SNIPPET_FRAMES / FEATURE_FPS
DATASETS = ("thumos14", "activitynet12", "activitynet13")
LAYOUTS = ("sal", "wtalc", "acmnet")
SPLITS = ("train", "test")

SYNTHETIC_HINT = ("to try salx without the real features, run with "
                  "--config=configs/synthetic.py")

__all__ = [
    "DataError", "VideoRecord", "VideoAnnotation", "FeatureSource", "SalSource",
    "WtalcSource", "AcmNetSource", "detect_layout", "open_source",
    "write_sal_layout", "write_wtalc_layout", "write_acmnet_layout", "read_npy",
    "read_npy_shape", "read_split_file", "read_ground_truth_json",
    "snippets_for_duration", "FEATURE_DIM", "DATASETS", "LAYOUTS", "SPLITS",
]


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


# ---------------------------------------------------------------------------
# .npy files: plain arrays, and object arrays through a restricted unpickler.


def _numpy_reconstruct():
  return np.empty(0).__reduce__()[0]


def _numpy_scalar():
  return np.float64(0).__reduce__()[0]


_MULTIARRAY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")
_ALLOWED_GLOBALS = {
    **{(m, "_reconstruct"): _numpy_reconstruct() for m in _MULTIARRAY_MODULES},
    **{(m, "scalar"): _numpy_scalar() for m in _MULTIARRAY_MODULES},
    ("numpy", "ndarray"): np.ndarray,
    ("numpy", "dtype"): np.dtype,
    ("_codecs", "encode"): codecs.encode,
    **{(m, n): getattr(builtins, n)
       for m in ("builtins", "__builtin__")
       for n in ("list", "str", "bytes", "float", "int")},
}


class _RestrictedUnpickler(pickle.Unpickler):
  """An unpickler that rebuilds numpy arrays and plain data, and nothing else."""

  def __init__(self, file, path: str):
    super().__init__(file, encoding="latin1")
    self._path = path

  def find_class(self, module: str, name: str):
    try:
      return _ALLOWED_GLOBALS[(module, name)]
    except KeyError:
      raise DataError(
          f"{self._path}: refusing to unpickle {module}.{name}; only numpy arrays, "
          "dtypes and plain lists, strings and numbers may appear in a feature or "
          "annotation file", self._path) from None


def _read_header(f, path: str):
  """(shape, fortran_order, dtype) of the open .npy file `f`, positioned after it."""
  try:
    version = np.lib.format.read_magic(f)
    if version == (1, 0):
      return np.lib.format.read_array_header_1_0(f)
    if version == (2, 0):
      return np.lib.format.read_array_header_2_0(f)
  except (ValueError, EOFError, OSError) as e:
    raise DataError(f"{path}: not a readable .npy file ({e})", path) from e
  raise DataError(f"{path}: unsupported .npy format version {version}", path)


def _open_npy(path: str):
  try:
    return open(path, "rb")
  except FileNotFoundError:
    raise DataError(f"{path}: file not found", path) from None
  except OSError as e:
    raise DataError(f"{path}: cannot open ({e})", path) from e


def read_npy_shape(path: PathLike) -> Tuple[int, ...]:
  """The shape of the array in a .npy file, reading only its header."""
  path = os.fspath(path)
  with _open_npy(path) as f:
    shape, _, _ = _read_header(f, path)
  return tuple(shape)


def read_npy(path: PathLike, mmap: bool = False) -> np.ndarray:
  """The array in a .npy file.

  Plain arrays are read with `np.load` (memory-mapped when `mmap`); object arrays
  (W-TALC's pickles) go through `_RestrictedUnpickler`.

  Raises:
    DataError: the file is missing, unreadable, or holds anything but numpy arrays
      and plain data; the message names the file.
  """
  path = os.fspath(path)
  with _open_npy(path) as f:
    shape, _, dtype = _read_header(f, path)
    if dtype.hasobject:
      return _unpickle_object_array(f, path, shape)
  try:
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
  except (ValueError, EOFError, OSError) as e:
    raise DataError(f"{path}: unreadable .npy file ({e})", path) from e


def _unpickle_object_array(f, path: str, shape) -> np.ndarray:
  try:
    array = _RestrictedUnpickler(f, path).load()
  except DataError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise DataError(f"{path}: unreadable pickled array ({type(e).__name__}: {e})",
                    path) from e
  if not isinstance(array, np.ndarray) or tuple(array.shape) != tuple(shape):
    raise DataError(f"{path}: the pickle does not hold the array of shape "
                    f"{tuple(shape)} its header announces", path)
  return array


def _save_npy(path: str, array: np.ndarray) -> None:
  np.save(path, array, allow_pickle=bool(array.dtype.hasobject))


def _bytes_array(texts: Sequence[str]) -> np.ndarray:
  """[N] numpy bytes array of UTF-8 encoded `texts` (W-TALC stores names as bytes)."""
  return np.array([t.encode("utf-8") for t in texts], dtype=np.bytes_)


def _object_array(items: Sequence) -> np.ndarray:
  """[N] object array holding `items` as they are (never stacked into more dims)."""
  array = np.empty(len(items), dtype=object)
  for i, item in enumerate(items):
    array[i] = item
  return array


# ---------------------------------------------------------------------------
# Split lists and ActivityNet-style JSON ground truth.


def read_split_file(path: PathLike) -> List[str]:
  """Video names, one per line (blank lines skipped), in file order."""
  path = os.fspath(path)
  try:
    with open(path, encoding="utf-8") as f:
      return [line.strip() for line in f if line.strip()]
  except FileNotFoundError:
    raise DataError(f"{path}: split file not found", path) from None
  except OSError as e:
    raise DataError(f"{path}: cannot read split file ({e})", path) from e


def write_split_file(path: PathLike, names: Sequence[str]) -> None:
  with open(path, "w", encoding="utf-8") as f:
    f.writelines(f"{name}\n" for name in names)


def _as_seconds(value, path: str, video: str, what: str) -> float:
  try:
    seconds = float(value)
  except (TypeError, ValueError):
    raise DataError(f"{path}: video {video}: {what} {value!r} is not a number",
                    path) from None
  if not math.isfinite(seconds):
    raise DataError(f"{path}: video {video}: {what} {value!r} is not finite", path)
  return seconds


def _segments_array(pairs: Sequence[Sequence[float]]) -> np.ndarray:
  return np.asarray(pairs, np.float64).reshape(-1, 2)


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
                      f"two-value 'segment': {instance!r}", path)
    pairs.append([_as_seconds(v, path, name, "segment value") for v in segment])
    labels.append(str(instance["label"]))
  duration = entry.get("duration")
  if duration is not None:
    duration = _as_seconds(duration, path, name, "duration")
  return VideoAnnotation(
      name=name, subset=entry.get("subset"), segments=_segments_array(pairs),
      segment_labels=tuple(labels), video_labels=tuple(dict.fromkeys(labels)),
      duration=duration)


def read_ground_truth_json(path: PathLike) -> Dict[str, VideoAnnotation]:
  """{video: VideoAnnotation} of an ActivityNet-style gt.json, in file order.

  Segment values and durations may be numbers or numeric strings.
  """
  path = os.fspath(path)
  try:
    with open(path, encoding="utf-8") as f:
      data = json.load(f)
  except FileNotFoundError:
    raise DataError(f"{path}: ground-truth file not found", path) from None
  except (OSError, ValueError) as e:
    raise DataError(f"{path}: unreadable JSON ({e})", path) from e
  database = data.get("database") if isinstance(data, dict) else None
  if not isinstance(database, dict):
    raise DataError(f"{path}: expected a top-level 'database' object", path)
  return {str(name): _parse_json_video(path, str(name), entry)
          for name, entry in database.items()}


# ---------------------------------------------------------------------------
# The reader interface.


def _check_split(split: str) -> None:
  if split not in SPLITS:
    raise ValueError(f"unknown split {split!r}; expected one of {SPLITS}")


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
          database[name] = _ground_truth_entry(annotation, split)
    return {"database": database}

  def _required_annotation(self, split: str, name: str) -> VideoAnnotation:
    annotation = self.annotation(name)
    if annotation is None:
      raise DataError(
          f"{self.annotation_file}: no annotation for video {name} of the {split} "
          f"split (listed in {self.split_file(split)})", self.annotation_file)
    return annotation

  def _check_member(self, split: str, name: str) -> None:
    _check_split(split)
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
    if not np.issubdtype(features.dtype, np.number):
      raise DataError(f"{path}: video {name} has non-numeric features "
                      f"({features.dtype})", path)
    return np.asarray(features, np.float32)


def _ground_truth_entry(annotation: VideoAnnotation, split: str) -> dict:
  entry = {"subset": split}
  if annotation.duration is not None:
    entry["duration"] = float(annotation.duration)
  entry["annotations"] = [
      {"label": label, "segment": [float(start), float(end)]}
      for label, (start, end) in zip(annotation.segment_labels, annotation.segments)]
  return entry


def _resolve_class_names(data_dir: str, dataset: str,
                         class_names: Optional[Sequence[str]],
                         annotations: Mapping[str, VideoAnnotation],
                         annotation_file: str) -> Tuple[str, ...]:
  """Explicit names, else the folder's class list file, else the dataset default."""
  if class_names is not None:
    return tuple(class_names)
  class_list_file = classes.find_class_list_file(data_dir)
  if class_list_file is not None:
    return classes.read_class_list(class_list_file)
  used = {label for a in annotations.values() for label in a.video_labels}
  return classes.default_class_names(dataset, used, annotation_file)


class _JsonAnnotatedSource(FeatureSource):
  """The layouts with a gt.json and split_{train,test}.txt ('sal', 'acmnet')."""

  def __init__(self, data_dir: PathLike, dataset: str,
               class_names: Optional[Sequence[str]] = None,
               feature_dim: int = FEATURE_DIM):
    super().__init__(data_dir, dataset, feature_dim)
    self._gt_file = os.path.join(self._data_dir, "gt.json")
    self._annotations = read_ground_truth_json(self._gt_file)
    self._splits = {split: read_split_file(self.split_file(split)) for split in SPLITS}
    self._class_names = _resolve_class_names(
        self._data_dir, dataset, class_names, self._annotations, self._gt_file)

  @property
  def annotation_file(self) -> str:
    return self._gt_file

  def split_file(self, split: str) -> str:
    _check_split(split)
    return os.path.join(self._data_dir, f"split_{split}.txt")

  def video_names(self, split: str) -> List[str]:
    _check_split(split)
    return list(self._splits[split])

  def annotation(self, name: str) -> Optional[VideoAnnotation]:
    return self._annotations.get(name)

  def _missing_features(self, split: str, name: str, path: str) -> DataError:
    return DataError(f"{path}: no feature file for video {name} of the {split} split "
                     f"(listed in {self.split_file(split)})", path)

  def _header_length(self, split: str, name: str, path: str, width: int) -> int:
    if not os.path.isfile(path):
      raise self._missing_features(split, name, path)
    shape = read_npy_shape(path)
    if len(shape) != 2 or shape[1] != width:
      raise DataError(f"{path}: video {name} has features of shape {shape}, "
                      f"expected [L, {width}]", path)
    return shape[0]


class SalSource(_JsonAnnotatedSource):
  """The SAL / BaS-Net / UM layout: separate RGB and flow files per video."""

  layout = "sal"

  def stream_files(self, split: str, name: str) -> Tuple[str, str]:
    """(RGB file, flow file) of video `name`."""
    _check_split(split)
    folder = os.path.join(self._data_dir, "features", split)
    return (os.path.join(folder, "rgb", f"{name}.npy"),
            os.path.join(folder, "flow", f"{name}.npy"))

  def feature_file(self, split: str, name: str) -> str:
    return self.stream_files(split, name)[0]

  def feature_parts(self, split: str, name: str) -> List[Tuple[str, slice]]:
    half = self._feature_dim // 2
    rgb, flow = self.stream_files(split, name)
    return [(rgb, slice(0, half)), (flow, slice(half, self._feature_dim))]

  def load_features(self, split: str, name: str) -> np.ndarray:
    self._check_member(split, name)
    half = self._feature_dim // 2
    streams = []
    for path in self.stream_files(split, name):
      if not os.path.isfile(path):
        raise self._missing_features(split, name, path)
      stream = read_npy(path)
      if stream.ndim != 2 or stream.shape[1] != half:
        raise DataError(f"{path}: video {name} has features of shape "
                        f"{tuple(stream.shape)}, expected [L, {half}]", path)
      streams.append(stream)
    rgb, flow = streams
    if rgb.shape[0] != flow.shape[0]:
      raise DataError(
          f"{self.stream_files(split, name)[1]}: video {name} has {flow.shape[0]} flow "
          f"snippets but {rgb.shape[0]} RGB snippets", self.stream_files(split, name)[1])
    return self._check_features(np.concatenate([rgb, flow], axis=1),
                                self.feature_file(split, name), name)

  def num_snippets(self, split: str, name: str) -> int:
    self._check_member(split, name)
    half = self._feature_dim // 2
    rgb_path, flow_path = self.stream_files(split, name)
    rgb_length = self._header_length(split, name, rgb_path, half)
    flow_length = self._header_length(split, name, flow_path, half)
    if rgb_length != flow_length:
      raise DataError(f"{flow_path}: video {name} has {flow_length} flow snippets but "
                      f"{rgb_length} RGB snippets", flow_path)
    return rgb_length


class AcmNetSource(_JsonAnnotatedSource):
  """The ACM-Net layout: one [L, 2048] file per video under train/ and test/."""

  layout = "acmnet"

  def feature_file(self, split: str, name: str) -> str:
    _check_split(split)
    return os.path.join(self._data_dir, split, f"{name}.npy")

  def load_features(self, split: str, name: str) -> np.ndarray:
    self._check_member(split, name)
    path = self.feature_file(split, name)
    if not os.path.isfile(path):
      raise self._missing_features(split, name, path)
    return self._check_features(read_npy(path), path, name)

  def num_snippets(self, split: str, name: str) -> int:
    self._check_member(split, name)
    path = self.feature_file(split, name)
    return self._header_length(split, name, path, self._feature_dim)


# W-TALC file name prefixes and the subset names of its train and test splits.
WTALC_PREFIXES = {"thumos14": "Thumos14reduced", "activitynet12": "ActivityNet1.2",
                  "activitynet13": "ActivityNet1.3"}
WTALC_SUBSETS = {
    "thumos14": {"train": "validation", "test": "test"},
    "activitynet12": {"train": "training", "test": "validation"},
    "activitynet13": {"train": "training", "test": "validation"},
}
_WTALC_REQUIRED = ("videoname", "subset", "segments", "labels", "classlist")
_YOUTUBE_ID = re.compile(r"[?&]v=([^&#]+)")


def wtalc_paths(data_dir: PathLike, dataset: str) -> Tuple[str, str]:
  """(feature file, annotation folder) of the W-TALC layout of `dataset`."""
  prefix = WTALC_PREFIXES[dataset]
  data_dir = os.fspath(data_dir)
  return (os.path.join(data_dir, f"{prefix}-I3D-JOINTFeatures.npy"),
          os.path.join(data_dir, f"{prefix}-Annotations"))


def _text_list(values) -> List[str]:
  return [classes.as_text(v) for v in values]


class WtalcSource(FeatureSource):
  """The W-TALC layout: one pickled feature array and per-video annotation arrays.

  The annotation arrays are read when the source opens. The feature array is one
  pickle, so the first `load_features` / `num_snippets` reads all of it into memory
  and the source keeps it (about 2 GB for ActivityNet 1.2).
  """

  layout = "wtalc"

  def __init__(self, data_dir: PathLike, dataset: str,
               class_names: Optional[Sequence[str]] = None,
               feature_dim: int = FEATURE_DIM):
    super().__init__(data_dir, dataset, feature_dim)
    self._feature_path, self._annotation_dir = wtalc_paths(self._data_dir, dataset)
    self._features: Optional[np.ndarray] = None
    self._features_lock = threading.Lock()
    if not os.path.isfile(self._feature_path):
      raise DataError(f"{self._feature_path}: W-TALC feature file not found",
                      self._feature_path)
    arrays = self._read_annotation_arrays()
    self._names = self._video_names_from(arrays)
    self._index = {}
    for i, name in enumerate(self._names):
      self._index.setdefault(name, i)
    self._annotations = self._annotations_from(arrays)
    self._splits = self._splits_from(arrays["subset"])
    self._class_names = (tuple(class_names) if class_names is not None
                         else tuple(_text_list(arrays["classlist"])))

  @property
  def annotation_file(self) -> str:
    return self._annotation_file("segments")

  @property
  def feature_array_file(self) -> str:
    return self._feature_path

  @property
  def features_loaded(self) -> bool:
    """Whether the pickled feature array has been read into memory."""
    return self._features is not None

  def split_file(self, split: str) -> str:
    _check_split(split)
    return self._annotation_file("subset")

  def video_names(self, split: str) -> List[str]:
    _check_split(split)
    return list(self._splits[split])

  def annotation(self, name: str) -> Optional[VideoAnnotation]:
    return self._annotations.get(name)

  def feature_file(self, split: str, name: str) -> str:
    return self._feature_path

  def load_features(self, split: str, name: str) -> np.ndarray:
    self._check_member(split, name)
    features = np.asarray(self._all_features()[self._index[name]])
    return self._check_features(features, self._feature_path, name)

  def num_snippets(self, split: str, name: str) -> int:
    self._check_member(split, name)
    return int(np.shape(self._all_features()[self._index[name]])[0])

  def _annotation_file(self, key: str) -> str:
    return os.path.join(self._annotation_dir, f"{key}.npy")

  def _read_annotation_arrays(self) -> Dict[str, np.ndarray]:
    if not os.path.isdir(self._annotation_dir):
      raise DataError(f"{self._annotation_dir}: W-TALC annotation folder not found",
                      self._annotation_dir)
    arrays = {}
    for key in _WTALC_REQUIRED + ("labels_all", "duration", "url"):
      path = self._annotation_file(key)
      if key in _WTALC_REQUIRED or os.path.isfile(path):
        arrays[key] = read_npy(path)
    count = len(arrays["videoname"])
    for key, array in arrays.items():
      if key != "classlist" and len(array) != count:
        raise DataError(f"{self._annotation_file(key)}: {len(array)} entries, but "
                        f"videoname.npy lists {count} videos",
                        self._annotation_file(key))
    return arrays

  def _video_names_from(self, arrays) -> List[str]:
    """Video names; W-TALC's ActivityNet 'video_<n>' names become YouTube ids."""
    names = _text_list(arrays["videoname"])
    if "url" not in arrays or not all(re.fullmatch(r"video_\d+", n) for n in names):
      return names
    ids = []
    for url in _text_list(arrays["url"]):
      match = _YOUTUBE_ID.search(url)
      if match is None:
        raise DataError(f"{self._annotation_file('url')}: no YouTube id in {url!r}",
                        self._annotation_file("url"))
      ids.append(match.group(1))
    return ids

  def _annotations_from(self, arrays) -> Dict[str, VideoAnnotation]:
    annotations = {}
    durations = arrays.get("duration")
    for i, name in enumerate(self._names):
      pairs = [[float(v) for v in pair] for pair in arrays["segments"][i]]
      segment_labels = tuple(_text_list(arrays["labels"][i]))
      if len(segment_labels) != len(pairs):
        raise DataError(f"{self._annotation_file('labels')}: video {name} has "
                        f"{len(segment_labels)} labels for {len(pairs)} segments",
                        self._annotation_file("labels"))
      if "labels_all" in arrays:
        video_labels = tuple(_text_list(arrays["labels_all"][i]))
      else:
        video_labels = tuple(dict.fromkeys(segment_labels))
      duration = None if durations is None else float(durations[i])
      annotations.setdefault(name, VideoAnnotation(
          name=name, subset=classes.as_text(arrays["subset"][i]),
          segments=_segments_array(pairs), segment_labels=segment_labels,
          video_labels=video_labels,
          duration=duration if duration is not None and math.isfinite(duration)
          else None))
    return annotations

  def _splits_from(self, subsets) -> Dict[str, List[str]]:
    split_of_subset = {v: k for k, v in WTALC_SUBSETS[self._dataset].items()}
    splits = {split: [] for split in SPLITS}
    for name, subset in zip(self._names, _text_list(subsets)):
      if subset in split_of_subset:
        splits[split_of_subset[subset]].append(name)
    return splits

  def _all_features(self) -> np.ndarray:
    """The [V] object array of every video's features, read once."""
    with self._features_lock:
      if self._features is None:
        features = read_npy(self._feature_path)
        if features.ndim != 1 or len(features) != len(self._names):
          raise DataError(
              f"{self._feature_path}: holds {features.shape} entries, but "
              f"{self._annotation_file('videoname')} lists {len(self._names)} videos",
              self._feature_path)
        self._features = features
      return self._features


_SOURCES = {"sal": SalSource, "wtalc": WtalcSource, "acmnet": AcmNetSource}

# What each layout holds, for error messages.
LAYOUT_DESCRIPTIONS = (
    "'sal': gt.json, split_{train,test}.txt, features/{train,test}/{rgb,flow}/<video>.npy; "
    "'wtalc': <Prefix>-I3D-JOINTFeatures.npy and <Prefix>-Annotations/; "
    "'acmnet': gt.json, split_{train,test}.txt, {train,test}/<video>.npy")


def _missing_dir_error(data_dir: str, layout: str) -> DataError:
  expected = LAYOUT_DESCRIPTIONS if layout == "auto" else f"the {layout!r} layout"
  return DataError(f"data directory {data_dir} does not exist; expected {expected}; "
                   f"{SYNTHETIC_HINT}", data_dir)


def detect_layout(data_dir: PathLike) -> str:
  """'sal', 'wtalc' or 'acmnet': the layout of the data folder `data_dir`.

  Raises:
    DataError: the folder does not exist or matches no layout.
  """
  data_dir = os.fspath(data_dir)
  if not os.path.isdir(data_dir):
    raise _missing_dir_error(data_dir, "auto")
  entries = set(os.listdir(data_dir))
  if any(e.endswith("-I3D-JOINTFeatures.npy") or e.endswith("-Annotations")
         for e in entries):
    return "wtalc"
  if os.path.isdir(os.path.join(data_dir, "features")):
    return "sal"
  if any(os.path.isdir(os.path.join(data_dir, s)) for s in SPLITS):
    return "acmnet"
  raise DataError(f"{data_dir}: matches none of the feature layouts ("
                  f"{LAYOUT_DESCRIPTIONS}); {SYNTHETIC_HINT}", data_dir)


def open_source(data_dir: PathLike, dataset: str, layout: str = "auto",
                class_names: Optional[Sequence[str]] = None,
                feature_dim: int = FEATURE_DIM) -> FeatureSource:
  """The `FeatureSource` reading `dataset` from the folder `data_dir`.

  Args:
    data_dir: the data folder.
    dataset: 'thumos14', 'activitynet12' or 'activitynet13'.
    layout: 'sal', 'wtalc', 'acmnet', or 'auto' to detect it.
    class_names: the class order; by default the folder's classlist.txt /
      action_name.csv / W-TALC classlist.npy, else the dataset's default.
    feature_dim: the width of a feature vector (2048 for I3D).

  Raises:
    ValueError: unknown dataset or layout.
    DataError: missing folder or files, or malformed annotations.
  """
  if dataset not in DATASETS:
    raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")
  if layout != "auto" and layout not in LAYOUTS:
    raise ValueError(f"unknown layout {layout!r}; expected 'auto' or one of {LAYOUTS}")
  data_dir = os.path.expanduser(os.fspath(data_dir))
  if not os.path.isdir(data_dir):
    raise _missing_dir_error(data_dir, layout)
  if layout == "auto":
    layout = detect_layout(data_dir)
  return _SOURCES[layout](data_dir, dataset, class_names=class_names,
                          feature_dim=feature_dim)


# ---------------------------------------------------------------------------
# Writers.


def _split_of_videos(splits: Mapping[str, Sequence[str]]) -> Dict[str, str]:
  """{video: split}; a DataError for unknown splits or repeated videos."""
  split_of = {}
  for split, names in splits.items():
    if split not in SPLITS:
      raise DataError(f"unknown split {split!r}; expected one of {SPLITS}")
    for name in names:
      if name in split_of:
        raise DataError(f"video {name} is listed twice (in {split_of[name]} and "
                        f"{split})")
      split_of[name] = split
  return split_of


def _check_record(record: VideoRecord, class_names: Sequence[str],
                  labels_from_segments: bool, layout: str) -> None:
  """A DataError when `record` cannot be written faithfully."""
  features = np.asarray(record.features)
  if features.ndim != 2 or features.shape[1] % 2 or features.shape[0] < 1:
    raise DataError(f"video {record.name}: features of shape {features.shape} are not "
                    "[L, D] with L >= 1 and an even D")
  if np.shape(record.labels) != (len(class_names),):
    raise DataError(f"video {record.name}: labels of shape {np.shape(record.labels)} "
                    f"do not match the {len(class_names)} classes")
  if len(record.segment_labels) != len(np.reshape(record.segments, (-1, 2))):
    raise DataError(f"video {record.name}: {len(record.segment_labels)} segment labels "
                    f"for {len(np.reshape(record.segments, (-1, 2)))} segments")
  from_segments = classes.multi_hot(record.segment_labels, class_names,
                                    f"<{layout} writer>", record.name)
  if labels_from_segments and not np.array_equal(from_segments, record.labels):
    raise DataError(f"video {record.name}: the {layout} layout derives video labels "
                    "from the instances, but the record's labels differ from its "
                    "segment labels")


def _check_all_written(split_of: Mapping[str, str], written: Iterable[str]) -> None:
  missing = sorted(set(split_of) - set(written))
  if missing:
    raise DataError(f"{len(missing)} videos of the splits were not given: "
                    f"{missing[:5]}")


def _json_entry(record: VideoRecord, split: str) -> dict:
  segments = np.reshape(np.asarray(record.segments, np.float64), (-1, 2))
  annotation = VideoAnnotation(
      name=record.name, subset=split, segments=segments,
      segment_labels=tuple(record.segment_labels), video_labels=(),
      duration=record.duration)
  return _ground_truth_entry(annotation, split)


def _write_json_annotations(out_dir: str, entries: Mapping[str, dict],
                            splits: Mapping[str, Sequence[str]],
                            class_names: Sequence[str]) -> None:
  """gt.json (in split order), split_{train,test}.txt and classlist.txt."""
  ordered = {name: entries[name] for split in SPLITS
             for name in splits.get(split, ())}
  with open(os.path.join(out_dir, "gt.json"), "w", encoding="utf-8") as f:
    json.dump({"version": "salx", "database": ordered}, f)
  for split in SPLITS:
    write_split_file(os.path.join(out_dir, f"split_{split}.txt"), splits.get(split, ()))
  classes.write_class_list(os.path.join(out_dir, "classlist.txt"), class_names)


def _write_per_video_layout(out_dir: PathLike, videos: Iterable[VideoRecord],
                            splits: Mapping[str, Sequence[str]],
                            class_names: Sequence[str], layout: str) -> str:
  out_dir = os.fspath(out_dir)
  split_of = _split_of_videos(splits)
  entries = {}
  for record in videos:
    if record.name not in split_of:
      raise DataError(f"video {record.name} is in no split")
    _check_record(record, class_names, labels_from_segments=True, layout=layout)
    split = split_of[record.name]
    features = np.asarray(record.features, np.float32)
    if layout == "sal":
      half = features.shape[1] // 2
      folder = os.path.join(out_dir, "features", split)
      for stream, part in (("rgb", features[:, :half]), ("flow", features[:, half:])):
        os.makedirs(os.path.join(folder, stream), exist_ok=True)
        np.save(os.path.join(folder, stream, f"{record.name}.npy"), part)
    else:
      os.makedirs(os.path.join(out_dir, split), exist_ok=True)
      np.save(os.path.join(out_dir, split, f"{record.name}.npy"), features)
    entries[record.name] = _json_entry(record, split)
  _check_all_written(split_of, entries)
  _write_json_annotations(out_dir, entries, splits, class_names)
  return out_dir


def write_sal_layout(out_dir: PathLike, videos: Iterable[VideoRecord],
                     splits: Mapping[str, Sequence[str]],
                     class_names: Sequence[str]) -> str:
  """Writes `videos` in the 'sal' layout (one video at a time) and returns `out_dir`.

  Args:
    out_dir: the folder to write (created if needed).
    videos: the records of every video named in `splits`, any order.
    splits: {'train': [names], 'test': [names]}, the split lists in order.
    class_names: the class order of the records' labels (written to classlist.txt).

  Raises:
    DataError: a record that is in no split, is malformed, has video labels other
      than its instances' classes (gt.json only stores instances), or a split video
      without a record.
  """
  return _write_per_video_layout(out_dir, videos, splits, class_names, "sal")


def write_acmnet_layout(out_dir: PathLike, videos: Iterable[VideoRecord],
                        splits: Mapping[str, Sequence[str]],
                        class_names: Sequence[str]) -> str:
  """Writes `videos` in the 'acmnet' layout; arguments as in `write_sal_layout`."""
  return _write_per_video_layout(out_dir, videos, splits, class_names, "acmnet")


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
    out_dir, videos, splits, class_names: as in `write_sal_layout`.
    dataset: 'thumos14', 'activitynet12' or 'activitynet13' (file names, subsets).
  """
  if dataset not in WTALC_PREFIXES:
    raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")
  out_dir = os.fspath(out_dir)
  split_of = _split_of_videos(splits)
  records = {}
  for record in videos:
    if record.name not in split_of:
      raise DataError(f"video {record.name} is in no split")
    _check_record(record, class_names, labels_from_segments=False, layout="wtalc")
    records[record.name] = record
  _check_all_written(split_of, records)
  ordered = [records[name] for split in SPLITS for name in splits.get(split, ())]
  _write_wtalc_arrays(out_dir, ordered, split_of, class_names, dataset)
  return out_dir


def _write_wtalc_arrays(out_dir: str, ordered: Sequence[VideoRecord],
                        split_of: Mapping[str, str], class_names: Sequence[str],
                        dataset: str) -> None:
  feature_path, annotation_dir = wtalc_paths(out_dir, dataset)
  os.makedirs(annotation_dir, exist_ok=True)
  is_activitynet = dataset.startswith("activitynet")
  names = [r.name for r in ordered]
  arrays = {
      "videoname": _bytes_array(
          [f"video_{i}" if is_activitynet else n for i, n in enumerate(names)]),
      "subset": _bytes_array([WTALC_SUBSETS[dataset][split_of[n]] for n in names]),
      "segments": _object_array(
          [np.reshape(r.segments, (-1, 2)).astype(float).tolist() for r in ordered]),
      "labels": _object_array([list(r.segment_labels) for r in ordered]),
      "labels_all": _object_array(
          [[class_names[c] for c in np.flatnonzero(r.labels)] for r in ordered]),
      "duration": np.array([np.nan if r.duration is None else r.duration
                            for r in ordered], np.float64),
      "classlist": _bytes_array(list(class_names)),
  }
  if is_activitynet:
    arrays["url"] = _bytes_array(
        [f"https://www.youtube.com/watch?v={n}" for n in names])
  for key, array in arrays.items():
    _save_npy(os.path.join(annotation_dir, f"{key}.npy"), array)
  _save_npy(feature_path, _object_array(
      [np.asarray(r.features, np.float32) for r in ordered]))
