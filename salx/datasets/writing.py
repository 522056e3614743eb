"""What every layout writer checks of its input: the splits and each record."""

from __future__ import annotations

from typing import Dict, Iterable, Iterator, Mapping, Sequence, Tuple

import numpy as np

from salx.core.constants import SPLITS
from salx.datasets import classes
from salx.datasets.errors import DataError
from salx.datasets.source import VideoRecord


def split_of_videos(splits: Mapping[str, Sequence[str]]) -> Dict[str, str]:
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


def check_record(record: VideoRecord, class_names: Sequence[str],
                 labels_from_segments: bool, layout: str) -> None:
  """A DataError when `record` cannot be written faithfully in `layout`.

  Args:
    record: features [L, D] (L >= 1, D even), labels [C], segments [N, 2] with N
      segment labels.
    class_names: the C classes.
    labels_from_segments: the layout stores only instances, so the video labels must
      be the classes of the instances.
    layout: for messages.
  """
  features = np.asarray(record.features)
  if features.ndim != 2 or features.shape[1] % 2 or features.shape[0] < 1:
    raise DataError(f"video {record.name}: features of shape {features.shape} are not "
                    "[L, D] with L >= 1 and an even D")
  if np.shape(record.labels) != (len(class_names),):
    raise DataError(f"video {record.name}: labels of shape {np.shape(record.labels)} "
                    f"do not match the {len(class_names)} classes")
  num_segments = len(np.reshape(record.segments, (-1, 2)))
  if len(record.segment_labels) != num_segments:
    raise DataError(f"video {record.name}: {len(record.segment_labels)} segment labels "
                    f"for {num_segments} segments")
  from_segments = classes.multi_hot(record.segment_labels, class_names,
                                    f"<{layout} writer>", record.name)
  if labels_from_segments and not np.array_equal(from_segments, record.labels):
    raise DataError(f"video {record.name}: the {layout} layout derives video labels "
                    "from the instances, but the record's labels differ from its "
                    "segment labels")


def checked_records(videos: Iterable[VideoRecord], splits: Mapping[str, Sequence[str]],
                    class_names: Sequence[str], labels_from_segments: bool,
                    layout: str) -> Iterator[Tuple[VideoRecord, str]]:
  """(record, split) of each of `videos`, checked one at a time as they come.

  Raises (when the iteration reaches them):
    DataError: bad splits (see `split_of_videos`), a record that is in no split or is
      malformed (see `check_record`), or, once `videos` is exhausted, a video of the
      splits that had no record.
  """
  split_of = split_of_videos(splits)
  written = set()
  for record in videos:
    if record.name not in split_of:
      raise DataError(f"video {record.name} is in no split")
    check_record(record, class_names, labels_from_segments, layout)
    written.add(record.name)
    yield record, split_of[record.name]
  missing = sorted(set(split_of) - written)
  if missing:
    raise DataError(f"{len(missing)} videos of the splits were not given: "
                    f"{missing[:5]}")
