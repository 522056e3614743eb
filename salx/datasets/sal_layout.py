"""The 'sal' layout of SAL, BaS-Net and UM: separate RGB and flow files per video.

    gt.json, split_train.txt, split_test.txt, classlist.txt?   see `json_annotated`
    features/{train,test}/rgb/<video>.npy    [L, 1024] float32
    features/{train,test}/flow/<video>.npy   [L, 1024] float32
Segment values may be strings ("18.6"), "duration" may be absent.
"""

from __future__ import annotations

import os
from typing import Iterable, List, Mapping, Sequence, Tuple

import numpy as np

from salx.datasets.errors import DataError, PathLike
from salx.datasets.json_annotated import JsonAnnotatedSource, write_json_annotated
from salx.datasets.source import VideoRecord, check_split, file_in_folder

DESCRIPTION = ("gt.json, split_{train,test}.txt, "
               "features/{train,test}/{rgb,flow}/<video>.npy")
STREAMS = ("rgb", "flow")


def stream_files(data_dir: PathLike, split: str, name: str) -> Tuple[str, str]:
  """(RGB file, flow file) of video `name` of `split` in the folder `data_dir`.

  Raises:
    UnsafeFileError: a name that would lead outside the stream folders.
  """
  check_split(split)
  folder = os.path.join(os.fspath(data_dir), "features", split)
  return tuple(file_in_folder(os.path.join(folder, stream), name) for stream in STREAMS)


class SalSource(JsonAnnotatedSource):
  """Reads the 'sal' layout: [L, D/2] RGB and flow files, joined into [L, D]."""

  layout = "sal"

  def stream_files(self, split: str, name: str) -> Tuple[str, str]:
    """(RGB file, flow file) of video `name`."""
    return stream_files(self._data_dir, split, name)

  def feature_file(self, split: str, name: str) -> str:
    return self.stream_files(split, name)[0]

  def feature_parts(self, split: str, name: str) -> List[Tuple[str, slice]]:
    half = self._feature_dim // 2
    rgb, flow = self.stream_files(split, name)
    return [(rgb, slice(0, half)), (flow, slice(half, self._feature_dim))]

  def load_features(self, split: str, name: str) -> np.ndarray:
    self._check_member(split, name)
    half = self._feature_dim // 2
    rgb, flow = (self._read_feature_file(split, name, path, half)
                 for path in self.stream_files(split, name))
    self._check_lengths(split, name, len(rgb), len(flow))
    return self._check_features(np.concatenate([rgb, flow], axis=1),
                                self.feature_file(split, name), name)

  def num_snippets(self, split: str, name: str) -> int:
    self._check_member(split, name)
    half = self._feature_dim // 2
    rgb, flow = (self._header_length(split, name, path, half)
                 for path in self.stream_files(split, name))
    self._check_lengths(split, name, rgb, flow)
    return rgb

  def _check_lengths(self, split: str, name: str, rgb: int, flow: int) -> None:
    if rgb != flow:
      flow_path = self.stream_files(split, name)[1]
      raise DataError(f"{flow_path}: video {name} has {flow} flow snippets but "
                      f"{rgb} RGB snippets", flow_path)


def _save_streams(out_dir: str, split: str, record: VideoRecord) -> None:
  features = np.asarray(record.features, np.float32)
  half = features.shape[1] // 2
  for path, part in zip(stream_files(out_dir, split, record.name),
                        (features[:, :half], features[:, half:])):
    os.makedirs(os.path.dirname(path), exist_ok=True)
    np.save(path, part)


def write_sal_layout(out_dir: PathLike, videos: Iterable[VideoRecord],
                     splits: Mapping[str, Sequence[str]],
                     class_names: Sequence[str]) -> str:
  """Writes `videos` in the 'sal' layout (one video at a time) and returns `out_dir`.

  Args:
    out_dir: the folder to write (created if needed).
    videos: the records of every video named in `splits`, any order; features
      [L, D], written as [L, D/2] RGB and flow files.
    splits: {'train': [names], 'test': [names]}, the split lists in order.
    class_names: the class order of the records' labels (written to classlist.txt).

  Raises:
    DataError: a record that is in no split, is malformed, has video labels other
      than its instances' classes (gt.json only stores instances), or a split video
      without a record.
  """
  return write_json_annotated(out_dir, videos, splits, class_names, "sal",
                              _save_streams)
