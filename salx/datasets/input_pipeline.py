"""The tf.data feed of salx: training batches (SPEC 2.9) and evaluation videos (SPEC 3).

Sources. Every function takes a `layouts.FeatureSource` (the data folder read
directly: the synthetic demo, benchmarks and tests), a `tfds_builders.TfdsSource` or a
prepared salx TFDS builder (real data). Videos are read one at a time, so nothing
holds a whole split in memory unless `cache=True` (sensible for THUMOS14-sized data).

Training batches are a pure function of (seed, step); resuming at step s is starting
the pipeline at `start_step=s`. With N training videos (in the source's
`video_names('train')` order) and global batch size B:

  steps_per_epoch = N // B   (floor: each epoch drops the last N % B videos of its
                              order, like a PyTorch DataLoader with drop_last=True)
  epoch e = step // steps_per_epoch, batch j = step % steps_per_epoch,
  order_e = np.random.default_rng([seed, 0, e]).permutation(N),
  global row r of the batch is video order_e[p], p = j * B + r (its position in the epoch),
  its T snippets are features[idx] with
  idx = sampling.random_perturb_indices(L, T, np.random.default_rng([seed, 1, e, p])).

(The 0 / 1 word separates the permutation stream from the sampling streams: numpy's
SeedSequence pads keys with zeros, so [seed, e] and [seed, e, 0] would coincide.)

Hosts. The global batch does not depend on the number of processes: process i of P
receives rows [i * b, (i + 1) * b) of it, b = B / P (B must divide by P). Evaluation is
the same on every host by default (each host reads every test video; the loop reports
from process 0); `eval_batches(process_index=, process_count=)` splits each padded
global batch the same way as training when the loop prefers to shard evaluation.

TensorFlow here only feeds data: importing this module hides every GPU from it.
"""

from __future__ import annotations

import functools
import threading
from typing import Any, Dict, Iterator, Optional, Tuple

import jax
import numpy as np
import tensorflow as tf

from salx.datasets import errors
from salx.datasets import layouts
from salx.datasets import sampling

FEATURE_DIM = 2048
_PERMUTATION_STREAM = 0
_SAMPLING_STREAM = 1


def _hide_gpus_from_tensorflow() -> None:
  """Keeps TensorFlow off the accelerators JAX uses (no-op once TF is initialised)."""
  try:
    tf.config.set_visible_devices([], "GPU")
  except (RuntimeError, ValueError):
    pass


_hide_gpus_from_tensorflow()


# ----------------------------------------------------------------------------- sources


def as_source(source_or_tfds):
  """A FeatureSource-like reader from a FeatureSource, TfdsSource or TFDS builder."""
  import tensorflow_datasets as tfds  # pylint: disable=g-import-not-at-top
  if isinstance(source_or_tfds, tfds.core.DatasetBuilder):
    from salx.datasets import tfds_builders  # pylint: disable=g-import-not-at-top
    return tfds_builders.TfdsSource(source_or_tfds)
  if not all(hasattr(source_or_tfds, a) for a in ("video_names", "load", "class_names")):
    raise TypeError(
        f"{source_or_tfds!r} is not a data source: pass a layouts.FeatureSource, a "
        "tfds_builders.TfdsSource or a prepared salx TFDS builder")
  return source_or_tfds


class SplitReader:
  """Random access by index to the videos of one split of a source.

  Attributes:
    names: the split's video names; video i is `names[i]`.
    num_classes: C.
    feature_dim: D, the width of a feature vector (2048 for I3D).
  """

  def __init__(self, source_or_tfds, split: str, *, cache: bool = False):
    self.source = as_source(source_or_tfds)
    self.split = split
    self.names: Tuple[str, ...] = tuple(self.source.video_names(split))
    self.num_classes = len(self.source.class_names)
    self.feature_dim = int(getattr(self.source, "feature_dim", FEATURE_DIM))
    self._cache: Optional[Dict[int, layouts.VideoRecord]] = {} if cache else None
    self._lock = threading.Lock()

  def __len__(self) -> int:
    return len(self.names)

  def load(self, index: int) -> layouts.VideoRecord:
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

  def _read(self, index: int) -> layouts.VideoRecord:
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
    return record


# ---------------------------------------------------------------------------- training


def steps_per_epoch(num_videos: int, batch_size: int) -> int:
  """Full global batches per epoch: N // B (the remainder is dropped each epoch)."""
  if num_videos < batch_size:
    raise ValueError(
        f"batch size {batch_size} is larger than the {num_videos} training videos")
  return num_videos // batch_size


def host_batch_size(batch_size: int, process_count: int) -> int:
  """b = B / P, the rows of each global batch one process receives."""
  if batch_size < 1 or batch_size % process_count:
    raise ValueError(
        f"global batch size {batch_size} must be a positive multiple of the process "
        f"count {process_count}: every process takes the same number of rows")
  return batch_size // process_count


@functools.lru_cache(maxsize=8)
def epoch_order(seed: int, epoch: int, num_videos: int) -> np.ndarray:
  """[N] the video indices of `epoch` in training order (read-only)."""
  rng = np.random.default_rng([seed, _PERMUTATION_STREAM, epoch])
  order = rng.permutation(num_videos)
  order.flags.writeable = False
  return order


def sampling_rng(seed: int, epoch: int, position: int) -> np.random.Generator:
  """The generator of the random-perturb sampling of the video at `position` of `epoch`."""
  return np.random.default_rng([seed, _SAMPLING_STREAM, epoch, position])


def train_slot(step: int, row: int, *, batch_size: int, num_videos: int
               ) -> Tuple[int, int]:
  """(epoch, position in the epoch order) of global row `row` of batch `step`."""
  per_epoch = steps_per_epoch(num_videos, batch_size)
  epoch, batch_in_epoch = divmod(step, per_epoch)
  return epoch, batch_in_epoch * batch_size + row


def train_example(reader: SplitReader, step: int, row: int, *, batch_size: int,
                  num_segments: int, seed: int) -> Tuple[np.ndarray, np.ndarray]:
  """Global row `row` of training batch `step`: features [T, D], labels [C]."""
  epoch, position = train_slot(step, row, batch_size=batch_size, num_videos=len(reader))
  record = reader.load(epoch_order(seed, epoch, len(reader))[position])
  features = np.asarray(record.features, np.float32)
  indices = sampling.random_perturb_indices(
      features.shape[0], num_segments, sampling_rng(seed, epoch, position))
  return features[indices], np.asarray(record.labels, np.float32)


def train_batch(reader: SplitReader, step: int, *, batch_size: int, num_segments: int,
                seed: int, process_index: int = 0, process_count: int = 1
                ) -> Dict[str, np.ndarray]:
  """This process's rows of global training batch `step` (what `train_dataset` yields).

  Returns:
    {'features': [b, T, D] float32, 'labels': [b, C] float32}, b = B / process_count,
    rows [process_index * b, (process_index + 1) * b) of the global batch.
  """
  local = host_batch_size(batch_size, process_count)
  rows = [train_example(reader, step, process_index * local + r, batch_size=batch_size,
                        num_segments=num_segments, seed=seed) for r in range(local)]
  return {"features": np.stack([features for features, _ in rows]),
          "labels": np.stack([labels for _, labels in rows])}


def _process(process_index: Optional[int], process_count: Optional[int]
             ) -> Tuple[int, int]:
  """(index, count) of this process, JAX's when not given."""
  count = jax.process_count() if process_count is None else int(process_count)
  index = jax.process_index() if process_index is None else int(process_index)
  if not 0 <= index < count:
    raise ValueError(f"process index {index} is outside [0, {count})")
  return index, count


def train_dataset(source_or_tfds, *, batch_size: int, num_segments: int, seed: int,
                  start_step: int = 0, num_steps: Optional[int] = None,
                  process_index: Optional[int] = None,
                  process_count: Optional[int] = None, cache: bool = False,
                  split: str = "train") -> tf.data.Dataset:
  """Training batches `start_step`, `start_step + 1`, ... of this process, as tf.data.

  Args:
    source_or_tfds: a FeatureSource, TfdsSource or prepared salx TFDS builder.
    batch_size: B, the global batch size (all processes together).
    num_segments: T, snippets per sampled video.
    seed: non-negative seed of the epoch orders and of the snippet sampling.
    start_step: the first step (resume: the step to train next).
    num_steps: how many batches; None for an endless stream.
    process_index, process_count: this process and the process count (JAX's by default).
    cache: keep every video read in memory (THUMOS14-sized datasets only).
    split: the split to train on.

  Returns:
    A deterministic dataset of {'features': [b, T, D] float32, 'labels': [b, C]
    float32}, b = B / process_count, rows [i * b, (i + 1) * b) of each global batch.
  """
  if seed < 0 or start_step < 0 or num_segments < 1:
    raise ValueError(f"need seed >= 0, start_step >= 0 and num_segments >= 1; got "
                     f"{seed}, {start_step}, {num_segments}")
  index, count = _process(process_index, process_count)
  local = host_batch_size(batch_size, count)
  reader = SplitReader(source_or_tfds, split, cache=cache)
  steps_per_epoch(len(reader), batch_size)  # Fails early when B > N.

  def load(step):
    batch = train_batch(reader, int(step), batch_size=batch_size,
                        num_segments=num_segments, seed=seed, process_index=index,
                        process_count=count)
    return batch["features"], batch["labels"]

  def load_tf(step):
    features, labels = tf.numpy_function(
        load, [step], (tf.float32, tf.float32), stateful=False)
    features.set_shape((local, num_segments, reader.feature_dim))
    labels.set_shape((local, reader.num_classes))
    return {"features": features, "labels": labels}

  if num_steps is None:
    steps = tf.data.Dataset.counter(start=start_step)
  else:
    steps = tf.data.Dataset.range(start_step, start_step + num_steps)
  dataset = steps.map(load_tf, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  return dataset.prefetch(tf.data.AUTOTUNE)


def train_batches(source_or_tfds, **kwargs) -> Iterator[Dict[str, np.ndarray]]:
  """NumPy batches of `train_dataset(source_or_tfds, **kwargs)` (same arguments)."""
  return train_dataset(source_or_tfds, **kwargs).as_numpy_iterator()


# -------------------------------------------------------------------------- evaluation


def eval_indices(num_snippets: int, num_segments: int, keep_all_if_shorter: bool
                 ) -> np.ndarray:
  """Uniform test sampling (SPEC 3): [T] indices, or [L] when kept whole."""
  return sampling.uniform_indices(num_snippets, num_segments,
                                  keep_all_if_shorter=keep_all_if_shorter)


def _eval_video(reader: SplitReader, index: int, num_segments: int,
                keep_all_if_shorter: bool) -> Dict[str, Any]:
  """Test video `index` uniformly sampled: features [T' <= T, D] and facts."""
  record = reader.load(index)
  features = np.asarray(record.features, np.float32)
  indices = eval_indices(features.shape[0], num_segments, keep_all_if_shorter)
  return {"name": reader.names[index], "features": features[indices],
          "num_snippets": features.shape[0],
          "labels": np.asarray(record.labels, np.float32)}


def eval_videos(source_or_tfds, *, num_segments: int, keep_all_if_shorter: bool = False,
                split: str = "test", cache: bool = False
                ) -> Iterator[Dict[str, Any]]:
  """Every video of `split`, in the source's order, sampled for inference (SPEC 3).

  Yields:
    {'name': str, 'features': [T', D] float32 (T' = T, or L when
    keep_all_if_shorter and L <= T), 'num_snippets': L (int, the original count),
    'labels': [C] float32}.
  """
  reader = SplitReader(source_or_tfds, split, cache=cache)

  def load(index):
    video = _eval_video(reader, index, num_segments, keep_all_if_shorter)
    return (video["name"].encode("utf-8"), video["features"],
            np.int64(video["num_snippets"]), video["labels"])

  def load_tf(index):
    name, features, length, labels = tf.numpy_function(
        load, [index], (tf.string, tf.float32, tf.int64, tf.float32), stateful=False)
    features.set_shape((None, reader.feature_dim))
    labels.set_shape((reader.num_classes,))
    return name, features, length, labels

  dataset = tf.data.Dataset.range(len(reader)).map(
      load_tf, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  for name, features, length, labels in dataset.prefetch(4).as_numpy_iterator():
    yield {"name": name.decode("utf-8"), "features": features,
           "num_snippets": int(length), "labels": labels}


def num_eval_batches(num_videos: int, batch_size: int) -> int:
  """ceil(N / B): global padded batches that cover every test video once."""
  return -(-num_videos // batch_size)


def _padded_eval_example(reader: SplitReader, global_index: int, num_segments: int,
                         keep_all_if_shorter: bool):
  """(name, features [T, D], mask [T], L, labels [C], valid) of one padded row."""
  features = np.zeros((num_segments, reader.feature_dim), np.float32)
  mask = np.zeros((num_segments,), bool)
  labels = np.zeros((reader.num_classes,), np.float32)
  if global_index >= len(reader):
    return b"", features, mask, np.int64(0), labels, False
  video = _eval_video(reader, global_index, num_segments, keep_all_if_shorter)
  length = video["features"].shape[0]
  features[:length] = video["features"]
  mask[:length] = True
  return (video["name"].encode("utf-8"), features, mask,
          np.int64(video["num_snippets"]), video["labels"], True)


def eval_batches(source_or_tfds, *, num_segments: int, batch_size: int,
                 keep_all_if_shorter: bool = False, split: str = "test",
                 process_index: int = 0, process_count: int = 1, cache: bool = False
                 ) -> Iterator[Dict[str, np.ndarray]]:
  """The test videos in padded, masked batches for the model.

  Global batch k holds videos [k * B, (k + 1) * B) of the split; the last one is
  padded with rows of zeros (`valid` False). With the default process_index=0,
  process_count=1 every host gets every batch; otherwise process i gets rows
  [i * b, (i + 1) * b), b = B / process_count, and all processes the same number of
  batches, `num_eval_batches(N, B)`.

  Yields:
    {'features': [b, T, D] float32 zero-padded, 'mask': [b, T] bool (snippets that
    exist: all T, or the first L when kept whole), 'num_snippets': [b] int64 (L),
    'names': [b] object array of str ('' for padding), 'labels': [b, C] float32,
    'valid': [b] bool}.
  """
  local = host_batch_size(batch_size, process_count)
  if not 0 <= process_index < process_count:
    raise ValueError(f"process index {process_index} is outside [0, {process_count})")
  reader = SplitReader(source_or_tfds, split, cache=cache)

  def load(element):
    batch, row = divmod(int(element), local)
    global_index = batch * batch_size + process_index * local + row
    return _padded_eval_example(reader, global_index, num_segments, keep_all_if_shorter)

  def load_tf(element):
    outputs = tf.numpy_function(
        load, [element], (tf.string, tf.float32, tf.bool, tf.int64, tf.float32, tf.bool),
        stateful=False)
    name, features, mask, length, labels, valid = outputs
    name.set_shape(())
    features.set_shape((num_segments, reader.feature_dim))
    mask.set_shape((num_segments,))
    length.set_shape(())
    labels.set_shape((reader.num_classes,))
    valid.set_shape(())
    return {"names": name, "features": features, "mask": mask, "num_snippets": length,
            "labels": labels, "valid": valid}

  elements = tf.data.Dataset.range(num_eval_batches(len(reader), batch_size) * local)
  dataset = elements.map(load_tf, num_parallel_calls=tf.data.AUTOTUNE,
                         deterministic=True)
  dataset = dataset.batch(local).prefetch(2)
  for batch in dataset.as_numpy_iterator():
    batch["names"] = np.array([n.decode("utf-8") for n in batch["names"]], object)
    yield batch
