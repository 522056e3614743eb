"""A tiny dataset whose features say which video and snippet they are (a helper of the
feed and TFDS tests): column 0 holds the video id and column 1 the snippet index."""

import numpy as np

from salx.core import constants
from salx.datasets import layouts
from salx.datasets import source as source_lib

CLASSES = ("Alpha", "Beta", "Gamma")
TRAIN_LENGTHS = (5, 9, 12, 3, 17, 8, 11)   # N = 7 training videos.
TEST_LENGTHS = (4, 6, 15, 8, 21, 1)        # 6 test videos, one of a single snippet.


def _record(name: str, video_id: int, length: int) -> source_lib.VideoRecord:
  """A video whose features say (video_id, snippet index) in columns 0 and 1."""
  rng = np.random.default_rng(video_id)
  features = rng.normal(size=(length, constants.FEATURE_DIM)).astype(np.float32)
  features[:, 0] = video_id
  features[:, 1] = np.arange(length)
  first, second = video_id % 3, (video_id + 1) % 3
  segment_labels = (CLASSES[first],) if video_id % 2 else (CLASSES[first],
                                                           CLASSES[second])
  labels = np.zeros(len(CLASSES), np.float32)
  for label in segment_labels:
    labels[CLASSES.index(label)] = 1.0
  segments = np.array([[0.5, 1.25], [2.0, 3.5]][:len(segment_labels)], np.float64)
  return source_lib.VideoRecord(
      name=name, features=features, labels=labels, segments=segments,
      segment_labels=segment_labels, duration=None if video_id % 2 else 0.64 * length)


def write_tiny_dataset(root, layout: str = "sal") -> str:
  """Writes the tiny dataset in `layout` under `root`; returns the folder."""
  records, splits = [], {"train": [], "test": []}
  for split, lengths, offset in (("train", TRAIN_LENGTHS, 0),
                                 ("test", TEST_LENGTHS, 100)):
    for i, length in enumerate(lengths):
      name = f"video_{split}_{i:03d}"
      splits[split].append(name)
      records.append(_record(name, offset + i, length))
  return layouts.write_layout(layout, str(root), records, splits, CLASSES)
