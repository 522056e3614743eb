"""TFDS builders for the SAL feature datasets, and random access to what they wrote.

The builders read nothing from the internet: the TFDS "manual dir" is the user's
data folder, in any layout that `layouts.open_source` understands (detected
automatically, or named with `layout=`). Preparing a builder copies every video of
the train and test splits, in the order of the source's split lists, into
`<tfds_data_dir>/salx_<dataset>/<version>/` in the array_record format, so that video i
of a split can be read directly (`builder.as_data_source(split)[i]`) without holding
the dataset in memory. Where array_record is not installed the builder falls back to
TFRecord; `TfdsSource` then reads the split sequentially once and keeps it in memory
(fine for THUMOS14, not for ActivityNet).

`TfdsSource` exposes a prepared dataset with the interface of `layouts.FeatureSource`
(`video_names`, `load`, `num_snippets`, `class_names`, `ground_truth`), so the input
pipeline takes either one.

Typical use:

  source = tfds_builders.prepare('thumos14', '/data/thumos14', '~/tensorflow_datasets')
  record = source.load('test', source.video_names('test')[0])

The builders register as salx_thumos14, salx_activitynet12 and salx_activitynet13,
so `tfds.builder('salx_thumos14', data_dir=...)` finds them once this module is
imported. (The `tfds build` command line of TFDS 4.9.10 also needs apache-beam.)

Prepare once, from one process: concurrent preparations of the same dataset into one
`tfds_data_dir` race. Reading is safe from any number of processes.
"""

from __future__ import annotations

import logging
import os
import pathlib
import threading
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
import tensorflow_datasets as tfds

from salx.datasets import errors
from salx.datasets import layouts

FEATURE_DIM = 2048
SPLITS = ("train", "test")
_VERSION = "1.0.0"

_MANUAL_DOWNLOAD_INSTRUCTIONS = """\
salx does not download features. Point the manual dir (`--manual_dir` of `tfds build`,
`tfds.download.DownloadConfig(manual_dir=...)`, or the `data_dir` argument of
`salx.datasets.tfds_builders.prepare`) at your data folder, in one of the layouts that
`salx.datasets.layouts.open_source` reads. The layout is detected automatically; pass
`layout=` to the builder to name it. For example, the SAL / BaS-Net / UM layout:

  <manual_dir>/
    gt.json                            ActivityNet-style ground truth
    split_train.txt, split_test.txt    one video name per line
    features/train/rgb/<video>.npy     [L, 1024] float32 I3D RGB features
    features/train/flow/<video>.npy    [L, 1024] float32 I3D flow features
    features/test/rgb/<video>.npy
    features/test/flow/<video>.npy

See salx/datasets/layouts.py for the other accepted layouts (W-TALC style
concatenated feature files, per-video 2048-d files, ...).
"""


def _feature_spec() -> tfds.features.FeaturesDict:
  """The stored features of one video (L snippets, C classes, N ground-truth segments)."""
  return tfds.features.FeaturesDict({
      # Video name as in the source's split list.
      "name": tfds.features.Text(),
      # [L, 2048] float32, RGB then flow; raw bytes keep it compact and exact.
      "features": tfds.features.Tensor(
          shape=(None, FEATURE_DIM), dtype=np.float32,
          encoding=tfds.features.Encoding.BYTES),
      # [C] float32 multi-hot video label.
      "labels": tfds.features.Tensor(shape=(None,), dtype=np.float32),
      # [N, 2] float64 ground-truth segments in seconds (empty for unannotated videos).
      "segments": tfds.features.Tensor(
          shape=(None, 2), dtype=np.float64,
          encoding=tfds.features.Encoding.BYTES),
      # [N] class name of each segment.
      "segment_labels": tfds.features.Sequence(tfds.features.Text()),
      # L, the original number of snippets.
      "num_snippets": np.int64,
      # Duration in seconds; NaN when the source does not know it. Stored as bytes:
      # a plain float64 scalar would go through a float32 tf.Example field.
      "duration": tfds.features.Tensor(
          shape=(), dtype=np.float64, encoding=tfds.features.Encoding.BYTES),
  })


class _SalFeatureBuilder(tfds.core.GeneratorBasedBuilder, skip_registration=True):
  """Shared builder of the SAL feature datasets; subclasses name the dataset.

  Besides the examples, the builder stores in `info.metadata`: the class names, the
  video names and snippet counts of each split (in record order), the source's
  ground-truth JSON dict and the layout it was read from.
  """

  VERSION = tfds.core.Version(_VERSION)
  RELEASE_NOTES = {_VERSION: "Initial release: I3D features, video labels, segments."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _MANUAL_DOWNLOAD_INSTRUCTIONS
  SOURCE_DATASET: str = ""  # The `layouts.open_source` dataset name.
  # TFDS finds a builder's file (for checksums, which manual downloads do not use) by
  # a package resource lookup that imports `importlib_resources`, a package TFDS
  # 4.9 no longer installs; naming the file directly avoids the lookup.
  code_path = pathlib.Path(__file__)

  def __init__(self, *, layout: str = "auto", **kwargs):
    """`layout` names the manual dir's layout; 'auto' detects it."""
    self._layout = layout
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return self.dataset_info_from_configs(
        description=(f"Pre-extracted two-stream I3D features of {self.SOURCE_DATASET} "
                     "with video-level labels and ground-truth segments, for SAL."),
        features=_feature_spec(),
        metadata=tfds.core.MetadataDict(),
        # Records keep the order of the source's split lists: record i is video i.
        disable_shuffling=True,
    )

  def _split_generators(self, dl_manager: tfds.download.DownloadManager):
    source = layouts.open_source(
        os.fspath(dl_manager.manual_dir), self.SOURCE_DATASET, layout=self._layout)
    self.info.metadata.update(_source_metadata(source))
    return {split: self._generate_examples(source, split) for split in SPLITS}

  def _generate_examples(self, source, split: str):
    for index, name in enumerate(source.video_names(split)):
      yield index, example_from_record(source.load(split, name))


class SalxThumos14(_SalFeatureBuilder):
  """THUMOS14 (20 classes): validation videos train, test videos test."""
  name = "salx_thumos14"
  SOURCE_DATASET = "thumos14"


class SalxActivitynet12(_SalFeatureBuilder):
  """ActivityNet 1.2 (100 classes): training videos train, validation videos test."""
  name = "salx_activitynet12"
  SOURCE_DATASET = "activitynet12"


class SalxActivitynet13(_SalFeatureBuilder):
  """ActivityNet 1.3 (200 classes): training videos train, validation videos test."""
  name = "salx_activitynet13"
  SOURCE_DATASET = "activitynet13"


BUILDERS = {
    "thumos14": SalxThumos14,
    "activitynet12": SalxActivitynet12,
    "activitynet13": SalxActivitynet13,
}


def _source_metadata(source) -> Dict[str, Any]:
  """JSON-able facts of a source that readers need without decoding any record."""
  return {
      "dataset": source.dataset,
      "layout": source.layout,
      "class_names": list(source.class_names),
      "video_names": {s: list(source.video_names(s)) for s in SPLITS},
      "num_snippets": {s: [int(source.num_snippets(s, n)) for n in source.video_names(s)]
                       for s in SPLITS},
      "ground_truth": source.ground_truth(),
  }


def example_from_record(record: layouts.VideoRecord) -> Dict[str, Any]:
  """The TFDS example of one `VideoRecord`."""
  features = np.asarray(record.features, np.float32)
  if features.ndim != 2 or features.shape[1] != FEATURE_DIM:
    raise errors.DataError(
        f"video {record.name}: features have shape {features.shape}, "
        f"expected [L, {FEATURE_DIM}]")
  segments = np.asarray(record.segments, np.float64).reshape(-1, 2)
  duration = np.nan if record.duration is None else float(record.duration)
  return {
      "name": record.name,
      "features": features,
      "labels": np.asarray(record.labels, np.float32),
      "segments": segments,
      "segment_labels": [str(label) for label in record.segment_labels],
      "num_snippets": features.shape[0],
      "duration": duration,
  }


def record_from_example(example: Mapping[str, Any]) -> layouts.VideoRecord:
  """The `VideoRecord` of one decoded TFDS example (inverse of `example_from_record`)."""
  duration = float(example["duration"])
  return layouts.VideoRecord(
      name=_text(example["name"]),
      features=np.asarray(example["features"], np.float32),
      labels=np.asarray(example["labels"], np.float32),
      segments=np.asarray(example["segments"], np.float64).reshape(-1, 2),
      segment_labels=tuple(_text(label) for label in example["segment_labels"]),
      duration=None if np.isnan(duration) else duration,
  )


def _text(value) -> str:
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def _array_record_available() -> bool:
  try:
    import array_record.python.array_record_module  # noqa: F401  pylint: disable=g-import-not-at-top,unused-import
  except ImportError:
    return False
  return True


def default_file_format() -> str:
  """'array_record' (random access) when installed, else 'tfrecord'."""
  if _array_record_available():
    return "array_record"
  logging.warning("array_record is not installed: TFDS datasets are written as "
                  "TFRecord and read into memory (fine for THUMOS14 only).")
  return "tfrecord"


def builder(dataset: str, tfds_data_dir: str, *, layout: str = "auto"
            ) -> _SalFeatureBuilder:
  """The (maybe unprepared) builder of `dataset` writing under `tfds_data_dir`."""
  try:
    cls = BUILDERS[dataset]
  except KeyError:
    raise errors.DataError(
        f"Unknown dataset {dataset!r}; expected one of {sorted(BUILDERS)}") from None
  return cls(data_dir=os.path.expanduser(os.fspath(tfds_data_dir)), layout=layout)


def prepare(dataset: str, data_dir: str, tfds_data_dir: str, *,
            layout: str = "auto", file_format: Optional[str] = None) -> "TfdsSource":
  """Builds the TFDS dataset from the data folder if it is not prepared yet.

  Args:
    dataset: 'thumos14', 'activitynet12' or 'activitynet13'.
    data_dir: the user's data folder (the TFDS manual dir), any supported layout.
    tfds_data_dir: where TFDS datasets live (written once, then only read).
    layout: the data folder's layout, 'auto' to detect it.
    file_format: 'array_record' or 'tfrecord'; default `default_file_format()`.

  Returns:
    A `TfdsSource` reading the prepared dataset.
  """
  data_dir = os.path.expanduser(os.fspath(data_dir))
  if not os.path.isdir(data_dir):
    raise errors.DataError(
        f"data folder {data_dir} does not exist; it must hold the {dataset} features "
        f"in one of the layouts of salx/datasets/layouts.py")
  dataset_builder = builder(dataset, tfds_data_dir, layout=layout)
  if not dataset_builder.is_prepared():
    dataset_builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=data_dir),
        file_format=file_format or default_file_format())
  return TfdsSource(dataset_builder)


def load(dataset: str, tfds_data_dir: str) -> "TfdsSource":
  """A `TfdsSource` over an already prepared dataset; a clear error if it is not."""
  dataset_builder = builder(dataset, tfds_data_dir)
  if not dataset_builder.is_prepared():
    raise errors.DataError(
        f"TFDS dataset {dataset_builder.name} is not prepared under {tfds_data_dir} "
        f"(looked in {dataset_builder.data_dir}); run "
        f"salx.datasets.tfds_builders.prepare({dataset!r}, <data folder>, "
        f"{tfds_data_dir!r}) first")
  return TfdsSource(dataset_builder)


class TfdsSource:
  """A prepared salx TFDS dataset with the reading interface of `layouts.FeatureSource`.

  `load(split, name)` reads one record: with array_record directly by index (nothing
  else is held in memory); with TFRecord the whole split is read once and kept.
  Thread-safe: the tf.data pipeline reads from several threads.
  """

  def __init__(self, dataset_builder: tfds.core.DatasetBuilder):
    if not dataset_builder.is_prepared():
      raise errors.DataError(
          f"TFDS dataset {dataset_builder.name} is not prepared in "
          f"{dataset_builder.data_dir}")
    self.builder = dataset_builder
    metadata = dataset_builder.info.metadata
    self.dataset: str = metadata["dataset"]
    self.layout: str = metadata["layout"]
    self.class_names: Tuple[str, ...] = tuple(metadata["class_names"])
    self._names = {s: tuple(metadata["video_names"][s]) for s in SPLITS}
    self._lengths = {s: dict(zip(self._names[s], metadata["num_snippets"][s]))
                     for s in SPLITS}
    self._index = {s: {n: i for i, n in enumerate(self._names[s])} for s in SPLITS}
    self._lock = threading.Lock()
    self._readers: Dict[str, Any] = {}

  def __repr__(self) -> str:
    return f"TfdsSource({self.builder.name}, {self.builder.data_dir})"

  @property
  def feature_dim(self) -> int:
    """D, the width of a feature vector (always 2048 in these builders)."""
    return FEATURE_DIM

  @property
  def random_access(self) -> bool:
    """Whether records are read one by one (array_record) or kept in memory."""
    formats = self.builder.info.available_file_formats()
    return any(f in tfds.core.FileFormat.with_random_access() for f in formats)

  def video_names(self, split: str) -> Tuple[str, ...]:
    """Names of the videos of `split` ('train' or 'test') in record order."""
    return self._names[_check_split(split)]

  def num_snippets(self, split: str, name: str) -> int:
    """L, the original snippet count of one video (no record is read)."""
    try:
      return int(self._lengths[_check_split(split)][name])
    except KeyError:
      raise errors.DataError(
          f"video {name!r} is not in the {split} split of {self!r}") from None

  def ground_truth(self) -> Dict[str, Any]:
    """The source's ActivityNet-style ground-truth dict, as stored at preparation."""
    return self.builder.info.metadata["ground_truth"]

  def load(self, split: str, name: str) -> layouts.VideoRecord:
    """Reads one video of `split` by name."""
    try:
      index = self._index[_check_split(split)][name]
    except KeyError:
      raise errors.DataError(
          f"video {name!r} is not in the {split} split of {self!r}") from None
    return self.load_index(split, index)

  def load_index(self, split: str, index: int) -> layouts.VideoRecord:
    """Reads record `index` of `split` (the index-th name of `video_names(split)`)."""
    return record_from_example(self._reader(_check_split(split))[index])

  def _reader(self, split: str) -> Sequence[Mapping[str, Any]]:
    with self._lock:
      if split not in self._readers:
        self._readers[split] = (self.builder.as_data_source(split)
                                if self.random_access else self._read_all(split))
      return self._readers[split]

  def _read_all(self, split: str) -> List[Mapping[str, Any]]:
    """All records of a TFRecord split, in `video_names` order."""
    by_name = {}
    for example in tfds.as_numpy(self.builder.as_dataset(split, shuffle_files=False)):
      by_name[_text(example["name"])] = example
    missing = [n for n in self._names[split] if n not in by_name]
    if missing:
      raise errors.DataError(
          f"{self!r}: {len(missing)} videos of the {split} split are missing from the "
          f"records, e.g. {missing[0]!r}; delete {self.builder.data_dir} and prepare again")
    return [by_name[n] for n in self._names[split]]


def _check_split(split: str) -> str:
  if split not in SPLITS:
    raise errors.DataError(f"Unknown split {split!r}; expected one of {SPLITS}")
  return split
