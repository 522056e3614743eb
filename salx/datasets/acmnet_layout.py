"""The 'acmnet' layout of ACM-Net (used for ActivityNet 1.3): one file per video.

    gt.json, split_train.txt, split_test.txt, classlist.txt?   see `json_annotated`
    train/<video>.npy, test/<video>.npy         [L, 2048] float32
"""

from __future__ import annotations

import os
from typing import Iterable, Mapping, Sequence

import numpy as np

from salx.datasets.errors import PathLike
from salx.datasets.json_annotated import JsonAnnotatedSource, write_json_annotated
from salx.datasets.source import VideoRecord, check_split, file_in_folder

DESCRIPTION = "gt.json, split_{train,test}.txt, {train,test}/<video>.npy"


def feature_path(data_dir: PathLike, split: str, name: str) -> str:
  """The [L, D] feature file of video `name` of `split` in the folder `data_dir`.

  Raises:
    UnsafeFileError: a name that would lead outside the split's folder.
  """
  check_split(split)
  return file_in_folder(os.path.join(os.fspath(data_dir), split), name)


class AcmNetSource(JsonAnnotatedSource):
  """Reads the 'acmnet' layout."""

  layout = "acmnet"

  def feature_file(self, split: str, name: str) -> str:
    return feature_path(self._data_dir, split, name)

  def load_features(self, split: str, name: str) -> np.ndarray:
    self._check_member(split, name)
    path = self.feature_file(split, name)
    return self._check_features(
        self._read_feature_file(split, name, path, self._feature_dim), path, name)

  def num_snippets(self, split: str, name: str) -> int:
    self._check_member(split, name)
    path = self.feature_file(split, name)
    return self._header_length(split, name, path, self._feature_dim)


def _save_joint(out_dir: str, split: str, record: VideoRecord) -> None:
  path = feature_path(out_dir, split, record.name)
  os.makedirs(os.path.dirname(path), exist_ok=True)
  np.save(path, np.asarray(record.features, np.float32))


def write_acmnet_layout(out_dir: PathLike, videos: Iterable[VideoRecord],
                        splits: Mapping[str, Sequence[str]],
                        class_names: Sequence[str]) -> str:
  """Writes `videos` in the 'acmnet' layout (one video at a time); returns `out_dir`.

  Arguments and errors as in `sal_layout.write_sal_layout`; features [L, D] are
  written whole.
  """
  return write_json_annotated(out_dir, videos, splits, class_names, "acmnet",
                              _save_joint)
