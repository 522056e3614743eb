"""TFDS builders for the SAL feature datasets, and a data source reading what they wrote.

The builders read nothing from the internet: the TFDS "manual dir" is the user's
data folder, in any layout of `layouts.open_source`. Preparing a builder copies
every video of the train and test splits, in the order of the source's split lists, into
`<tfds_data_dir>/salx_<dataset>/<version>/` in the array_record format, so that video i
of a split can be read directly (`builder.as_data_source(split)[i]`) without holding
the dataset in memory. Where array_record is not installed the builder falls back to
TFRecord; `TfdsSource` then reads the split sequentially once and keeps it in memory
(fine for THUMOS14, not for ActivityNet).

`TfdsSource` is a `source.FeatureSource`: the trainer, the evaluator, the data
checks and the input pipeline read it as they read a data folder, and get the same
records, annotations and batches. Its layout is 'tfds', its `data_dir` the prepared
folder; `source_data_dir` and `source_layout` name the folder it was prepared from.

Typical use (prepare once, from one process; then any run opens it):

  tfds_builders.prepare('thumos14', '/data/thumos14', '~/tensorflow_datasets')
  source = tfds_builders.open_prepared('thumos14', '~/tensorflow_datasets')
  record = source.load('test', source.video_names('test')[0])

The builders register as salx_thumos14, salx_activitynet12 and salx_activitynet13,
so `tfds.builder('salx_thumos14', data_dir=...)` finds them once this module is
imported. (The `tfds build` command line of TFDS 4.9.10 also needs apache-beam.)

Concurrent preparations of the same dataset into one `tfds_data_dir` race. Reading
is safe from any number of processes.
"""

from __future__ import annotations

import logging
import os
import pathlib
import threading
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np
import tensorflow_datasets as tfds

from salx.core import constants
from salx.datasets import errors
from salx.datasets import layouts
from salx.datasets import tfds_records
from salx.datasets import source

FEATURE_DIM = constants.FEATURE_DIM
SPLITS = constants.SPLITS
_VERSION = "1.1.0"
_RELEASE_NOTES = {
    "1.0.0": "Initial release: I3D features, video labels, segments.",
    "1.1.0": "Every video's annotation and the source folder in the metadata.",
}
_METADATA_FILE = "metadata.json"   # Where TFDS writes `info.metadata`.

_MANUAL_DOWNLOAD_INSTRUCTIONS = f"""\
salx does not download features. Point the manual dir (`--manual_dir` of `tfds build`,
`tfds.download.DownloadConfig(manual_dir=...)`, or the `data_dir` argument of
`salx.datasets.tfds_builders.prepare`) at your data folder, in one of the layouts that
`salx.datasets.layouts.open_source` reads (detected automatically; pass `layout=` to
the builder to name it): {layouts.LAYOUT_DESCRIPTIONS}.
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
  video names and snippet counts of each split (in record order), the annotation of
  every video, and the folder and layout it was read from.
  """

  VERSION = tfds.core.Version(_VERSION)
  RELEASE_NOTES = _RELEASE_NOTES
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
    self.info.metadata.update(tfds_records.source_metadata(source, dl_manager.manual_dir))
    return {split: self._generate_examples(source, split) for split in SPLITS}

  def _generate_examples(self, source, split: str):
    for index, name in enumerate(source.video_names(split)):
      yield index, tfds_records.example_from_record(source.load(split, name))


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


def builder(dataset: str, tfds_data_dir: Optional[str], *, layout: str = "auto"
            ) -> _SalFeatureBuilder:
  """The (maybe unprepared) builder of `dataset` under `tfds_data_dir` ('' or None:
  TFDS's default folder, $TFDS_DATA_DIR or ~/tensorflow_datasets)."""
  try:
    cls = BUILDERS[dataset]
  except KeyError:
    raise errors.DataError(
        f"Unknown dataset {dataset!r}; expected one of {sorted(BUILDERS)}") from None
  data_dir = os.path.expanduser(os.fspath(tfds_data_dir)) if tfds_data_dir else None
  return cls(data_dir=data_dir, layout=layout)


def prepare(dataset: str, data_dir: str, tfds_data_dir: Optional[str], *,
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

  Raises:
    DataError: a missing data folder, one no layout reads, or a dataset prepared
      under `tfds_data_dir` from another folder.
  """
  data_dir = os.path.expanduser(os.fspath(data_dir))
  if not os.path.isdir(data_dir):
    raise errors.DataError(
        f"data folder {data_dir} does not exist; it must hold the {dataset} features "
        f"in one of the layouts of salx/datasets/layouts.py", data_dir)
  dataset_builder = builder(dataset, tfds_data_dir, layout=layout)
  if not dataset_builder.is_prepared():
    dataset_builder.download_and_prepare(
        download_config=tfds.download.DownloadConfig(manual_dir=data_dir),
        file_format=file_format or default_file_format())
  source = TfdsSource(dataset_builder)
  if source.source_data_dir != os.path.realpath(data_dir):
    raise errors.DataError(
        f"{source.data_dir} holds {dataset} prepared from {source.source_data_dir}, "
        f"not from {data_dir}; choose another tfds_data_dir or delete that folder",
        source.data_dir)
  return source


def open_prepared(dataset: str, tfds_data_dir: Optional[str]) -> "TfdsSource":
  """The `TfdsSource` of a prepared dataset (what a run with data_source 'tfds' reads).

  Raises:
    DataError: nothing of this version is prepared there; the message names the
      folder and the command that prepares it.
  """
  dataset_builder = builder(dataset, tfds_data_dir)
  if not dataset_builder.is_prepared():
    where = tfds_data_dir or "the default TFDS folder"
    raise errors.DataError(
        f"no prepared {dataset_builder.name} {_VERSION} in {where} (looked for "
        f"{dataset_builder.data_dir}); prepare it once from the data folder with: "
        f"python -c \"from salx.datasets import tfds_builders; "
        f"tfds_builders.prepare({dataset!r}, 'DATA_DIR', {tfds_data_dir!r})\"",
        dataset_builder.data_dir)
  return TfdsSource(dataset_builder)


class TfdsSource(source.FeatureSource):
  """A prepared salx TFDS dataset, read as a `source.FeatureSource`.

  `load(split, name)` reads one record: with array_record directly by index (nothing
  else is held in memory); with TFRecord the whole split is read once and kept.
  Annotations, class names and snippet counts come from the metadata, without
  reading any record. Thread-safe: the tf.data pipeline reads from several threads.

  Attributes:
    builder: the prepared TFDS builder.
    source_data_dir: the data folder the dataset was prepared from.
    source_layout: that folder's layout.
  """

  layout = "tfds"

  def __init__(self, dataset_builder: tfds.core.DatasetBuilder):
    if not dataset_builder.is_prepared():
      raise errors.DataError(
          f"TFDS dataset {dataset_builder.name} is not prepared in "
          f"{dataset_builder.data_dir}", dataset_builder.data_dir)
    metadata = dataset_builder.info.metadata
    super().__init__(os.fspath(dataset_builder.data_dir), metadata["dataset"],
                     FEATURE_DIM)
    self.builder = dataset_builder
    self.source_data_dir: str = metadata["source_data_dir"]
    self.source_layout: str = metadata["source_layout"]
    self._class_names = tuple(metadata["class_names"])
    self._names = {s: tuple(metadata["video_names"][s]) for s in SPLITS}
    self._lengths = {s: dict(zip(self._names[s], metadata["num_snippets"][s]))
                     for s in SPLITS}
    self._index = {s: {n: i for i, n in enumerate(self._names[s])} for s in SPLITS}
    self._annotations = tfds_records.annotations_from_metadata(metadata)
    self._lock = threading.Lock()
    self._readers: Dict[str, Any] = {}

  def __repr__(self) -> str:
    return f"TfdsSource({self.builder.name} at {self.data_dir})"

  @property
  def random_access(self) -> bool:
    """Whether records are read one by one (array_record) or kept in memory."""
    formats = self.builder.info.available_file_formats()
    return any(f in tfds.core.FileFormat.with_random_access() for f in formats)

  @property
  def annotation_file(self) -> str:
    """The prepared metadata file, which holds the annotations and split lists."""
    return os.path.join(self.data_dir, _METADATA_FILE)

  def split_file(self, split: str) -> str:
    _check_split(split)
    return self.annotation_file

  def video_names(self, split: str) -> List[str]:
    """Names of the videos of `split` ('train' or 'test') in record order."""
    return list(self._names[_check_split(split)])

  def annotation(self, name: str) -> Optional[source.VideoAnnotation]:
    return self._annotations.get(name)

  def feature_file(self, split: str, name: str) -> str:
    """The record file (shard) holding video `name` of `split`."""
    index = self._position(split, name)
    info = self.builder.info.splits[split]
    shard = int(np.searchsorted(np.cumsum(info.shard_lengths), index, side="right"))
    return os.fspath(info.filepaths[shard])

  def num_snippets(self, split: str, name: str) -> int:
    """L, the original snippet count of one video (no record is read)."""
    self._position(split, name)
    return int(self._lengths[split][name])

  def load_features(self, split: str, name: str) -> np.ndarray:
    return self.load(split, name).features

  def load(self, split: str, name: str) -> source.VideoRecord:
    """Reads one video of `split` by name."""
    return self.load_index(split, self._position(split, name))

  def load_index(self, split: str, index: int) -> source.VideoRecord:
    """Reads record `index` of `split` (the index-th name of `video_names(split)`)."""
    return tfds_records.record_from_example(self._reader(_check_split(split))[index])

  def _position(self, split: str, name: str) -> int:
    try:
      return self._index[_check_split(split)][name]
    except KeyError:
      raise errors.DataError(
          f"video {name!r} is not in the {split} split of {self!r}",
          self.annotation_file) from None

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
      by_name[tfds_records.text(example["name"])] = example
    missing = [n for n in self._names[split] if n not in by_name]
    if missing:
      raise errors.DataError(
          f"{self!r}: {len(missing)} videos of the {split} split are missing from the "
          f"records, e.g. {missing[0]!r}; delete {self.data_dir} and prepare again",
          self.data_dir)
    return [by_name[n] for n in self._names[split]]


def _check_split(split: str) -> str:
  if split not in SPLITS:
    raise errors.DataError(f"Unknown split {split!r}; expected one of {SPLITS}")
  return split
