"""The batches of a run, pure NumPy functions: training (SPEC 2.9, 4), test (SPEC 3, 4).

Nothing here imports TensorFlow or JAX: `salx.datasets.input_pipeline` prefetches
these batches with tf.data, and a benchmark or a test can call them directly.

Sources. Every function reads a `SplitReader` over a data source: a
`source.FeatureSource` (a data folder) or a `tfds_builders.TfdsSource` (a prepared
TFDS dataset); both give the same records for the same data.

Training batches are a pure function of (seed, step). With N training videos (in the
source's `video_names('train')` order) and global batch size B:

  steps_per_epoch = N // B   (floor: each epoch drops the last N % B videos of its
                              order, like a PyTorch DataLoader with drop_last=True)
  epoch e = step // steps_per_epoch, batch j = step % steps_per_epoch,
  order_e = np.random.default_rng([seed, 0, e]).permutation(N),
  global row r of the batch is video order_e[p], p = j * B + r (its position in the epoch),
  its T snippets are features[idx] with
  idx = sampling.train_indices(L, T, np.random.default_rng([seed, 1, e, p]), sampling),
  `sampling` the variant's code path ('thumos14' or 'activitynet').

(The 0 / 1 word separates the permutation stream from the sampling streams: numpy's
SeedSequence pads keys with zeros, so [seed, e] and [seed, e, 0] would coincide.)

A method that chooses the videos of a batch itself (CO2-Net and DELU pair videos by
class) passes a `video_sampler(rng, labels [N, C], B) -> [B] video indices`; then
batch `step` holds video_sampler(np.random.default_rng([seed, 2, step]), ...) and
row r's snippets are drawn with np.random.default_rng([seed, 3, step, r]): still a
pure function of (seed, step), with no epochs.

Hosts. The global batch does not depend on the number of processes: process i of P
receives rows [i * b, (i + 1) * b) of it, b = B / P (B must divide by P). Test batch k
holds videos [k * B, (k + 1) * B) of the split, zero-padded past the last video, and
is split between processes the same way.
"""

from __future__ import annotations

import functools
import logging
import threading
from typing import Any, Callable, Dict, Optional, Tuple

import numpy as np

from salx.core import constants
from salx.datasets import errors
from salx.datasets import sampling as sampling_lib
from salx.datasets import source

_PERMUTATION_STREAM = 0
_SAMPLING_STREAM = 1
_SAMPLER_STREAM = 2
_SAMPLER_SNIPPET_STREAM = 3
_SOURCE_INTERFACE = ("video_names", "load", "class_names")


def check_source(source):
  """`source` itself if it reads like a data source; a TypeError otherwise."""
  if not all(hasattr(source, a) for a in _SOURCE_INTERFACE):
    raise TypeError(
        f"{source!r} is not a data source: pass a source.FeatureSource, a "
        "tfds_builders.TfdsSource or a prepared salx TFDS builder")
  return source


class SplitReader:
  """Random access by index to the videos of one split of a source.

  Attributes:
    source: the data source.
    split: 'train' or 'test'.
    names: the split's video names; video i is `names[i]`.
    num_classes: C.
    feature_dim: D, the width of a feature vector (2048 for I3D).
  """

  def __init__(self, source, split: str, *, cache: bool = False):
    self.source = check_source(source)
    self.split = split
    self.names: Tuple[str, ...] = tuple(self.source.video_names(split))
    self.num_classes = len(self.source.class_names)
    self.feature_dim = int(getattr(self.source, "feature_dim", constants.FEATURE_DIM))
    self._cache: Optional[Dict[int, source.VideoRecord]] = {} if cache else None
    self._labels: Optional[np.ndarray] = None
    self._warned: set = set()
    self._lock = threading.Lock()

  def labels(self) -> np.ndarray:
    """[N, C] float32 multi-hot labels of every video of the split (read once; from
    the annotations where the source has them, else from the records)."""
    with self._lock:
      if self._labels is not None:
        return self._labels
    rows = []
    index = {c: i for i, c in enumerate(self.source.class_names)}
    for i, name in enumerate(self.names):
      annotation = (self.source.annotation(name) if hasattr(self.source, "annotation")
                    else None)
      if annotation is None:
        rows.append(np.asarray(self.load(i).labels, np.float32))
        continue
      row = np.zeros(self.num_classes, np.float32)
      row[[index[c] for c in annotation.video_labels if c in index]] = 1.0
      rows.append(row)
    labels = np.stack(rows) if rows else np.zeros((0, self.num_classes), np.float32)
    labels.flags.writeable = False
    with self._lock:
      self._labels = labels
    return labels

  def __len__(self) -> int:
    return len(self.names)

  def load(self, index: int) -> source.VideoRecord:
    """Video `index` of the split, its features [L, D] and labels [C] checked."""
    index = int(index)
    if self._cache is not None:
      with self._lock:
        if index in self._cache:
          return self._cache[index]
    record = self._read(index)
    if self._cache is not None:
      with self._lock:
        self._cache[index] = record
    return record

  def _read(self, index: int) -> source.VideoRecord:
    name = self.names[index]
    if hasattr(self.source, "load_index"):
      record = self.source.load_index(self.split, index)
    else:
      record = self.source.load(self.split, name)
    features, labels = np.shape(record.features), np.shape(record.labels)
    if len(features) != 2 or features[1] != self.feature_dim or features[0] < 1:
      raise errors.DataError(
          f"{self.split} video {name!r} of {self.source!r}: features have shape "
          f"{features}, expected [L >= 1, {self.feature_dim}]")
    if labels != (self.num_classes,):
      raise errors.DataError(
          f"{self.split} video {name!r} of {self.source!r}: labels have shape {labels}, "
          f"expected [{self.num_classes}] (one per class name)")
    if name not in self._warned and not np.all(np.isfinite(record.features)):
      self._warned.add(name)   # Loud once per video, also with the data checks off.
      logging.warning("%s video %r of %r has NaN or infinite features: its outputs "
                      "are meaningless (a training batch holding it stops the run; a "
                      "test video scores nothing). python -m salx.datasets.check names "
                      "every damaged file.", self.split, name, self.source)
    return record


def check_process(process_index: int, process_count: int) -> None:
  """A ValueError unless 0 <= process_index < process_count."""
  if not 0 <= process_index < process_count:
    raise ValueError(f"process index {process_index} is outside [0, {process_count})")


def host_batch_size(batch_size: int, process_count: int) -> int:
  """b = B / P, the rows of each global batch one process receives."""
  if batch_size < 1 or batch_size % process_count:
    raise ValueError(
        f"global batch size {batch_size} must be a positive multiple of the process "
        f"count {process_count}: every process takes the same number of rows")
  return batch_size // process_count


# ---------------------------------------------------------------------------- training


def steps_per_epoch(num_videos: int, batch_size: int) -> int:
  """Full global batches per epoch: N // B (the remainder is dropped each epoch)."""
  if num_videos < batch_size:
    raise ValueError(
        f"batch size {batch_size} is larger than the {num_videos} training videos")
  return num_videos // batch_size


@functools.lru_cache(maxsize=8)
def epoch_order(seed: int, epoch: int, num_videos: int) -> np.ndarray:
  """[N] the video indices of `epoch` in training order (read-only)."""
  rng = np.random.default_rng([seed, _PERMUTATION_STREAM, epoch])
  order = rng.permutation(num_videos)
  order.flags.writeable = False
  return order


def sampling_rng(seed: int, epoch: int, position: int) -> np.random.Generator:
  """The generator of the snippet sampling of the video at `position` of `epoch`."""
  return np.random.default_rng([seed, _SAMPLING_STREAM, epoch, position])


def train_slot(step: int, row: int, *, batch_size: int, num_videos: int
               ) -> Tuple[int, int]:
  """(epoch, position in the epoch order) of global row `row` of batch `step`."""
  per_epoch = steps_per_epoch(num_videos, batch_size)
  epoch, batch_in_epoch = divmod(step, per_epoch)
  return epoch, batch_in_epoch * batch_size + row


def train_example(reader: SplitReader, step: int, row: int, *, batch_size: int,
                  num_segments: int, seed: int, sampling: str = "thumos14"
                  ) -> Tuple[np.ndarray, np.ndarray]:
  """Global row `row` of training batch `step`: features [T, D], labels [C]."""
  epoch, position = train_slot(step, row, batch_size=batch_size, num_videos=len(reader))
  record = reader.load(epoch_order(seed, epoch, len(reader))[position])
  features = np.asarray(record.features, np.float32)
  indices = sampling_lib.train_indices(
      features.shape[0], num_segments, sampling_rng(seed, epoch, position), sampling)
  return features[indices], np.asarray(record.labels, np.float32)


def sampled_example(reader: SplitReader, step: int, row: int, video: int, *,
                    num_segments: int, seed: int, sampling: str = "thumos14"
                    ) -> Tuple[np.ndarray, np.ndarray]:
  """Row `row` of batch `step` when a video sampler chose video `video` for it."""
  record = reader.load(video)
  features = np.asarray(record.features, np.float32)
  rng = np.random.default_rng([seed, _SAMPLER_SNIPPET_STREAM, step, row])
  indices = sampling_lib.train_indices(features.shape[0], num_segments, rng, sampling)
  return features[indices], np.asarray(record.labels, np.float32)


def sampled_videos(reader: SplitReader, step: int, *, batch_size: int, seed: int,
                   video_sampler: Callable[..., np.ndarray]) -> np.ndarray:
  """[B] the videos `video_sampler` chooses for batch `step` (a pure function of
  (seed, step))."""
  rng = np.random.default_rng([seed, _SAMPLER_STREAM, step])
  videos = np.asarray(video_sampler(rng, reader.labels(), batch_size), np.int64)
  if videos.shape != (batch_size,) or videos.min() < 0 or videos.max() >= len(reader):
    raise ValueError(f"the video sampler gave {videos.tolist()} for a batch of "
                     f"{batch_size} of {len(reader)} videos")
  return videos


def train_batch(reader: SplitReader, step: int, *, batch_size: int, num_segments: int,
                seed: int, process_index: int = 0, process_count: int = 1,
                sampling: str = "thumos14",
                video_sampler: Optional[Callable[..., np.ndarray]] = None
                ) -> Dict[str, np.ndarray]:
  """This process's rows of global training batch `step`.

  Args:
    video_sampler: None for epochs over the videos; or the method's own choice of
      videos (module docstring).

  Returns:
    {'features': [b, T, D] float32, 'labels': [b, C] float32}, b = B / process_count,
    rows [process_index * b, (process_index + 1) * b) of the global batch.
  """
  check_process(process_index, process_count)
  local = host_batch_size(batch_size, process_count)
  first = process_index * local
  if video_sampler is None:
    rows = [train_example(reader, step, first + r, batch_size=batch_size,
                          num_segments=num_segments, seed=seed, sampling=sampling)
            for r in range(local)]
  else:
    videos = sampled_videos(reader, step, batch_size=batch_size, seed=seed,
                            video_sampler=video_sampler)
    rows = [sampled_example(reader, step, first + r, int(videos[first + r]),
                            num_segments=num_segments, seed=seed, sampling=sampling)
            for r in range(local)]
  return {"features": np.stack([features for features, _ in rows]),
          "labels": np.stack([labels for _, labels in rows])}


# -------------------------------------------------------------------------- evaluation


def eval_video(reader: SplitReader, index: int, *, num_segments: int,
               sampling: str = "thumos14", keep_all_if_shorter: Optional[bool] = None
               ) -> Dict[str, Any]:
  """Test video `index` sampled for inference (`sampling.eval_indices`).

  Returns:
    {'name': str, 'features': [T', D] float32 (T' = T, or the kept length: L when
    a video of L <= T is kept whole, 2 for a one-snippet ActivityNet video),
    'num_snippets': L (int, the original count), 'labels': [C] float32}.
  """
  record = reader.load(index)
  features = np.asarray(record.features, np.float32)
  indices = sampling_lib.eval_indices(features.shape[0], num_segments, sampling,
                                      keep_all_if_shorter)
  return {"name": reader.names[index], "features": features[indices],
          "num_snippets": features.shape[0],
          "labels": np.asarray(record.labels, np.float32)}


def num_eval_batches(num_videos: int, batch_size: int) -> int:
  """ceil(N / B): global padded batches that cover every test video once."""
  return -(-num_videos // batch_size)


def eval_batch(reader: SplitReader, batch: int, *, num_segments: int, batch_size: int,
               sampling: str = "thumos14", keep_all_if_shorter: Optional[bool] = None,
               process_index: int = 0, process_count: int = 1) -> Dict[str, np.ndarray]:
  """This process's rows of padded global test batch `batch` (videos [k B, (k + 1) B)).

  Returns:
    {'features': [b, T, D] float32 zero-padded, 'mask': [b, T] bool (the T' sampled
    snippets that exist), 'num_snippets': [b] int64 (L), 'names': [b] object array
    of str ('' for padding), 'labels': [b, C] float32, 'valid': [b] bool},
    b = B / process_count.

  Raises:
    ValueError: a sample longer than T (an ActivityNet video of one snippet keeps
      two, so T must be at least 2).
  """
  check_process(process_index, process_count)
  local = host_batch_size(batch_size, process_count)
  out = {"features": np.zeros((local, num_segments, reader.feature_dim), np.float32),
         "mask": np.zeros((local, num_segments), bool),
         "num_snippets": np.zeros((local,), np.int64),
         "names": np.full((local,), "", object),
         "labels": np.zeros((local, reader.num_classes), np.float32),
         "valid": np.zeros((local,), bool)}
  for row in range(local):
    index = batch * batch_size + process_index * local + row
    if index >= len(reader):
      continue
    video = eval_video(reader, index, num_segments=num_segments, sampling=sampling,
                       keep_all_if_shorter=keep_all_if_shorter)
    kept = video["features"].shape[0]
    if kept > num_segments:
      raise ValueError(
          f"test video {video['name']!r} is sampled to {kept} snippets, more than "
          f"num_segments = {num_segments}")
    out["features"][row, :kept] = video["features"]
    out["mask"][row, :kept] = True
    out["num_snippets"][row] = video["num_snippets"]
    out["names"][row] = video["name"]
    out["labels"][row] = video["labels"]
    out["valid"][row] = True
  return out
