"""What the salx TFDS datasets store, as plain NumPy and JSON (no TensorFlow here).

One TFDS example per video (`example_from_record` / `record_from_example`), and in
the dataset's metadata the facts a reader needs without decoding any record
(`source_metadata`): class names, the videos and snippet counts of each split in
record order, every video's annotation, and the folder and layout it was read from.
`salx.datasets.tfds_builders` writes and reads them.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional

import numpy as np

from salx.core import constants
from salx.datasets import errors
from salx.datasets import source


def text(value) -> str:
  """A str from the bytes TFDS decodes text features to."""
  return value.decode("utf-8") if isinstance(value, bytes) else str(value)


def example_from_record(record: source.VideoRecord) -> Dict[str, Any]:
  """The TFDS example of one `VideoRecord` (features [L, 2048], segments [N, 2])."""
  features = np.asarray(record.features, np.float32)
  if features.ndim != 2 or features.shape[1] != constants.FEATURE_DIM:
    raise errors.DataError(
        f"video {record.name}: features have shape {features.shape}, "
        f"expected [L, {constants.FEATURE_DIM}]")
  duration = np.nan if record.duration is None else float(record.duration)
  return {
      "name": record.name,
      "features": features,
      "labels": np.asarray(record.labels, np.float32),
      "segments": np.asarray(record.segments, np.float64).reshape(-1, 2),
      "segment_labels": [str(label) for label in record.segment_labels],
      "num_snippets": features.shape[0],
      "duration": duration,
  }


def record_from_example(example: Mapping[str, Any]) -> source.VideoRecord:
  """The `VideoRecord` of one decoded TFDS example (inverse of `example_from_record`)."""
  duration = float(example["duration"])
  return source.VideoRecord(
      name=text(example["name"]),
      features=np.asarray(example["features"], np.float32),
      labels=np.asarray(example["labels"], np.float32),
      segments=np.asarray(example["segments"], np.float64).reshape(-1, 2),
      segment_labels=tuple(text(label) for label in example["segment_labels"]),
      duration=None if np.isnan(duration) else duration,
  )


def _annotation_json(annotation: Optional[source.VideoAnnotation]
                     ) -> Optional[Dict[str, Any]]:
  if annotation is None:
    return None
  return {"subset": annotation.subset,
          "segments": np.asarray(annotation.segments, np.float64).tolist(),
          "segment_labels": list(annotation.segment_labels),
          "video_labels": list(annotation.video_labels),
          "duration": annotation.duration}


def source_metadata(source: source.FeatureSource, data_dir) -> Dict[str, Any]:
  """The JSON-able metadata of a dataset prepared from `source`, read at `data_dir`."""
  names = {s: list(source.video_names(s)) for s in constants.SPLITS}
  return {
      "dataset": source.dataset,
      "source_layout": source.layout,
      "source_data_dir": os.path.realpath(os.fspath(data_dir)),
      "class_names": list(source.class_names),
      "video_names": names,
      "num_snippets": {s: [int(source.num_snippets(s, n)) for n in names[s]]
                       for s in constants.SPLITS},
      "annotations": {n: _annotation_json(source.annotation(n))
                      for s in constants.SPLITS for n in names[s]},
  }


def annotations_from_metadata(metadata: Mapping[str, Any]
                              ) -> Dict[str, Optional[source.VideoAnnotation]]:
  """{video: its VideoAnnotation, None when the source had none} of `source_metadata`."""
  annotations = {}
  for name, entry in metadata["annotations"].items():
    if entry is None:
      annotations[name] = None
      continue
    duration = entry["duration"]
    annotations[name] = source.VideoAnnotation(
        name=name, subset=entry["subset"],
        segments=np.asarray(entry["segments"], np.float64).reshape(-1, 2),
        segment_labels=tuple(entry["segment_labels"]),
        video_labels=tuple(entry["video_labels"]),
        duration=None if duration is None else float(duration))
  return annotations
