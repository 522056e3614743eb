"""Hand-made video records and small data folders in any layout, for reader tests."""

import numpy as np

from salx.core.constants import FEATURE_DIM
from salx.datasets import classes
from salx.datasets import layouts
from salx.datasets.source import VideoRecord

TINY_CLASSES = ("Jump", "Run")
TINY_SPLITS = {"train": ["v_a", "v_b"], "test": ["v_c"]}


def record(name, length, labels, segments, duration=None, seed=0,
           class_names=TINY_CLASSES):
  """A VideoRecord with [length, 2048] random features and one label per segment."""
  rng = np.random.default_rng(seed)
  return VideoRecord(
      name=name, features=rng.standard_normal((length, FEATURE_DIM)).astype(np.float32),
      labels=classes.multi_hot(labels, class_names),
      segments=np.array(segments, np.float64).reshape(-1, 2),
      segment_labels=tuple(labels), duration=duration)


def tiny_records():
  """Three videos: two labelled train videos (one of unknown duration), one test."""
  return [
      record("v_a", 12, ["Jump", "Run"], [[0.5, 2.0], [3.0, 4.5]], 8.0, seed=1),
      record("v_b", 9, ["Run"], [[1.0, 3.0]], None, seed=2),
      record("v_c", 15, [], [], 10.0, seed=3),
  ]


def write_tiny(folder, layout, dataset="thumos14"):
  """Writes `tiny_records()` into `folder` in `layout`; returns the records."""
  records = tiny_records()
  layouts.write_layout(layout, folder, records, TINY_SPLITS, TINY_CLASSES, dataset)
  return records
