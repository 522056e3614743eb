"""Class lists of the benchmarks, and video labels as multi-hot vectors.

The class order fixes the meaning of every class axis (C) in salx: model outputs,
multi-hot labels, converted checkpoints. It is:
  - THUMOS14: the 20 classes of the BaS-Net/UM/SAL `gt.json`, sorted alphabetically
    (`THUMOS14_CLASSES`; the same order as the W-TALC `classlist.npy`).
  - ActivityNet 1.2: the W-TALC `classlist.npy` order (which is alphabetical, so the
    sorted labels of a complete annotation file give the same list).
  - ActivityNet 1.3: the authors' order (SPEC 4), the 200 names sorted as Python sorts
    strings (code point order: "BMX" before "Baking cookies"). BSN's `action_name.csv`
    lists the same names in another order; salx reads its names and sorts them.
A data folder can always state its order in a `classlist.txt` (every salx writer
emits one), which takes precedence over any default.
"""

from __future__ import annotations

import csv
import os
from typing import Iterable, Mapping, Optional, Sequence, Tuple

import numpy as np

from salx.datasets.errors import DataError, PathLike

THUMOS14_CLASSES: Tuple[str, ...] = (
    "BaseballPitch", "BasketballDunk", "Billiards", "CleanAndJerk", "CliffDiving",
    "CricketBowling", "CricketShot", "Diving", "FrisbeeCatch", "GolfSwing",
    "HammerThrow", "HighJump", "JavelinThrow", "LongJump", "PoleVault", "Shotput",
    "SoccerPenalty", "TennisSwing", "ThrowDiscus", "VolleyballSpiking",
)

NUM_CLASSES = {"thumos14": 20, "activitynet12": 100, "activitynet13": 200}

# File names, inside a data folder, that state the class order (first found wins).
CLASS_LIST_FILES = ("classlist.txt", "action_name.csv")


def as_text(value) -> str:
  """A name stored as str, bytes or a numpy string scalar, as str."""
  if isinstance(value, (bytes, np.bytes_)):
    return bytes(value).decode("utf-8")
  return str(value)


def labels_in_annotations(database: Mapping[str, Mapping]) -> set:
  """All class names used by the instances of an ActivityNet-style `database`."""
  return {str(instance["label"])
          for video in database.values()
          for instance in video.get("annotations", ())}


def classes_from_ground_truth(database: Mapping[str, Mapping]) -> Tuple[str, ...]:
  """The sorted class names used in an ActivityNet-style `database` dict."""
  return tuple(sorted(labels_in_annotations(database)))


def read_class_list(path: PathLike) -> Tuple[str, ...]:
  """The class order a `classlist.txt` or an `action_name.csv` states.

  A `classlist.txt` holds one class per line, in class-index order. A CSV file is
  BSN's `action_name.csv` (header `action`, a class name in the first column); its
  row order is not the class order of the authors' ActivityNet 1.3 code, so the
  names are returned sorted (SPEC 4).

  Raises:
    DataError: an unreadable or empty file, or a repeated name.
  """
  path = os.fspath(path)
  try:
    with open(path, newline="", encoding="utf-8") as f:
      if path.endswith(".csv"):
        rows = list(csv.reader(f))[1:]
        names = [row[0].strip() for row in rows if row and row[0].strip()]
      else:
        names = [line.strip() for line in f if line.strip()]
  except (OSError, UnicodeDecodeError) as e:
    raise DataError(f"{path}: cannot read the class list ({e})", path) from e
  if not names:
    raise DataError(f"{path}: the class list is empty", path)
  duplicates = sorted({n for n in names if names.count(n) > 1})
  if duplicates:
    raise DataError(f"{path}: the class list repeats {duplicates}", path)
  return tuple(sorted(names)) if path.endswith(".csv") else tuple(names)


def write_class_list(path: PathLike, class_names: Sequence[str]) -> None:
  """Writes `classlist.txt`: one class name per line, in class-index order."""
  with open(path, "w", encoding="utf-8") as f:
    f.writelines(f"{name}\n" for name in class_names)


def find_class_list_file(data_dir: PathLike) -> Optional[str]:
  """The class list file of a data folder (see `CLASS_LIST_FILES`), or None."""
  for file_name in CLASS_LIST_FILES:
    path = os.path.join(os.fspath(data_dir), file_name)
    if os.path.isfile(path):
      return path
  return None


def default_class_names(dataset: str, used_labels: Iterable[str],
                        annotation_file: PathLike) -> Tuple[str, ...]:
  """The class order of `dataset` when its data folder states none.

  Args:
    dataset: 'thumos14', 'activitynet12' or 'activitynet13'.
    used_labels: the class names used by the folder's annotations.
    annotation_file: the file the labels came from, for error messages.

  Returns:
    THUMOS14: `THUMOS14_CLASSES`. ActivityNet 1.2 and 1.3: the sorted labels (the
    W-TALC order for 1.2, the authors' for 1.3), which must number 100 and 200.

  Raises:
    DataError: ActivityNet annotations that do not use all of its classes (the
      order of the missing ones is unknown).
  """
  if dataset == "thumos14":
    return THUMOS14_CLASSES
  used = tuple(sorted(set(used_labels)))
  if dataset in NUM_CLASSES and len(used) == NUM_CLASSES[dataset]:
    return used
  folder = os.path.dirname(os.fspath(annotation_file))
  raise DataError(
      f"{annotation_file}: cannot tell the class order of {dataset} "
      f"({len(used)} classes used, {NUM_CLASSES.get(dataset, '?')} expected): put a "
      f"classlist.txt (one class per line) or BSN's action_name.csv into {folder}",
      annotation_file)


def resolve_class_names(data_dir: PathLike, dataset: str,
                        explicit: Optional[Sequence[str]], used_labels: Iterable[str],
                        annotation_file: PathLike) -> Tuple[str, ...]:
  """The class order of a data folder: `explicit` names when given, else the
  folder's class list file (`CLASS_LIST_FILES`), else `default_class_names`."""
  if explicit is not None:
    return tuple(explicit)
  class_list_file = find_class_list_file(data_dir)
  if class_list_file is not None:
    return read_class_list(class_list_file)
  return default_class_names(dataset, used_labels, annotation_file)


def class_index(class_names: Sequence[str]) -> dict:
  """{class name: index} for `class_names`."""
  return {name: i for i, name in enumerate(class_names)}


def multi_hot(labels: Iterable[str], class_names: Sequence[str],
              source: PathLike = "?", video: str = "?") -> np.ndarray:
  """[C] float32 multi-hot vector of `labels` over `class_names`.

  Raises:
    DataError: a label is not in `class_names`; the message names `source` and `video`.
  """
  index = class_index(class_names)
  vector = np.zeros(len(class_names), np.float32)
  for label in labels:
    if label not in index:
      raise DataError(
          f"{os.fspath(source)}: video {video} has label {label!r}, which is not one "
          f"of the {len(class_names)} classes of the class list", source)
    vector[index[label]] = 1.0
  return vector

