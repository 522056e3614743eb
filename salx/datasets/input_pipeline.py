"""The tf.data feed of salx: the batches of `salx.datasets.batches`, prefetched.

What a batch holds, and why it is a pure function of (seed, step), is stated in
`salx.datasets.batches`; this module only runs those NumPy functions in tf.data
worker threads and prefetches their results, so that reading and sampling overlap
the training step. Resuming at step s is starting `train_dataset` at `start_step=s`.

Sources. Every function takes a `source.FeatureSource` (a data folder: the synthetic
demo, benchmarks and tests), a `tfds_builders.TfdsSource` or a prepared salx TFDS
builder (`tfds_builders.open_prepared`). Videos are read one at a time, so nothing
holds a whole split in memory unless `cache=True` (sensible for THUMOS14-sized data).

Sampling. `sampling` is the variant's code path ('thumos14' or 'activitynet',
`Variant.sampling`); the caller passes it to the training and to the test feeds.

Hosts. Training batches are split between processes (JAX's process index and count
by default). Evaluation is the same on every host by default (each host reads every
test video); `eval_batches(process_index=, process_count=)` splits each padded global
batch the same way as training when the loop prefers to shard evaluation.

TensorFlow here only feeds data: it is kept off the GPUs (JAX's) before it is used.
"""

from __future__ import annotations

import logging
import sys
from typing import Any, Dict, Iterator, Optional, Tuple

import jax
import numpy as np
import tensorflow as tf

from salx.datasets import batches as batches_lib
from salx.datasets import sampling as sampling_lib


def hide_gpus_from_tensorflow() -> None:
  """Makes no GPU visible to TensorFlow, so that it leaves the accelerators to JAX.

  Called on import and again before every dataset is built. Once TensorFlow has
  initialised its devices the list can no longer change: if GPUs are visible by
  then (TensorFlow was used before salx), a warning says so.
  """
  try:
    tf.config.set_visible_devices([], "GPU")
  except RuntimeError:
    if tf.config.get_visible_devices("GPU"):
      logging.warning("TensorFlow was initialised before salx could hide the GPUs "
                      "from it; it may hold accelerator memory JAX needs.")


hide_gpus_from_tensorflow()


def as_source(source_or_tfds):
  """A data source from a FeatureSource, TfdsSource or prepared salx TFDS builder."""
  # A TFDS builder exists only once TFDS is imported: no need to import it here.
  tfds = sys.modules.get("tensorflow_datasets")
  if tfds is not None and isinstance(source_or_tfds, tfds.core.DatasetBuilder):
    from salx.datasets import tfds_builders  # pylint: disable=g-import-not-at-top
    return tfds_builders.TfdsSource(source_or_tfds)
  return batches_lib.check_source(source_or_tfds)


def _process(process_index: Optional[int], process_count: Optional[int]
             ) -> Tuple[int, int]:
  """(index, count) of this process, JAX's when not given."""
  count = jax.process_count() if process_count is None else int(process_count)
  index = jax.process_index() if process_index is None else int(process_index)
  batches_lib.check_process(index, count)
  return index, count


# ---------------------------------------------------------------------------- training


def train_dataset(source_or_tfds, *, batch_size: int, num_segments: int, seed: int,
                  start_step: int = 0, num_steps: Optional[int] = None,
                  process_index: Optional[int] = None,
                  process_count: Optional[int] = None, cache: bool = False,
                  split: str = "train", sampling: str = "thumos14",
                  video_sampler=None, reader=None) -> tf.data.Dataset:
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
    sampling: 'thumos14' or 'activitynet', the method's snippet sampling.
    video_sampler: the method's choice of each batch's videos, None for epochs
      (`batches.train_batch`).
    reader: a `batches.SplitReader` of the split to read from (several feeds may
      share one, and its cache); default a new one over `source_or_tfds`.

  Returns:
    A deterministic dataset of `batches.train_batch` results: {'features': [b, T, D]
    float32, 'labels': [b, C] float32}, b = B / process_count.
  """
  hide_gpus_from_tensorflow()
  if seed < 0 or start_step < 0 or num_segments < 1:
    raise ValueError(f"need seed >= 0, start_step >= 0 and num_segments >= 1; got "
                     f"{seed}, {start_step}, {num_segments}")
  sampling_lib.check_sampling(sampling)
  index, count = _process(process_index, process_count)
  local = batches_lib.host_batch_size(batch_size, count)
  if reader is None:
    reader = batches_lib.SplitReader(as_source(source_or_tfds), split, cache=cache)
  batches_lib.steps_per_epoch(len(reader), batch_size)  # Fails early when B > N.

  def load(step):
    batch = batches_lib.train_batch(
        reader, int(step), batch_size=batch_size, num_segments=num_segments,
        seed=seed, process_index=index, process_count=count, sampling=sampling,
        video_sampler=video_sampler)
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


def eval_videos(source_or_tfds, *, num_segments: int,
                keep_all_if_shorter: Optional[bool] = None, split: str = "test",
                cache: bool = False, sampling: str = "thumos14"
                ) -> Iterator[Dict[str, Any]]:
  """Every video of `split`, in the source's order, sampled for inference.

  `keep_all_if_shorter` and `sampling` as in `sampling.eval_indices`.

  Yields:
    `batches.eval_video` results: {'name': str, 'features': [T', D] float32,
    'num_snippets': L (int, the original count), 'labels': [C] float32}.
  """
  hide_gpus_from_tensorflow()
  sampling_lib.check_eval_sampling(sampling, keep_all_if_shorter)
  reader = batches_lib.SplitReader(as_source(source_or_tfds), split, cache=cache)

  def load(index):
    video = batches_lib.eval_video(reader, int(index), num_segments=num_segments,
                                   sampling=sampling,
                                   keep_all_if_shorter=keep_all_if_shorter)
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


_EVAL_KEYS = ("names", "features", "mask", "num_snippets", "labels", "valid")
_EVAL_TYPES = (tf.string, tf.float32, tf.bool, tf.int64, tf.float32, tf.bool)


def eval_batches(source_or_tfds, *, num_segments: int, batch_size: int,
                 keep_all_if_shorter: Optional[bool] = None, split: str = "test",
                 process_index: int = 0, process_count: int = 1, cache: bool = False,
                 sampling: str = "thumos14") -> Iterator[Dict[str, np.ndarray]]:
  """The test videos in padded, masked batches for the model (`batches.eval_batch`).

  Global batch k holds videos [k * B, (k + 1) * B) of the split; the last one is
  padded with rows of zeros (`valid` False). With the default process_index=0,
  process_count=1 every host gets every batch; otherwise process i gets rows
  [i * b, (i + 1) * b), b = B / process_count, and all processes the same number of
  batches, `batches.num_eval_batches(N, B)`.

  Yields:
    {'features': [b, T, D] float32 zero-padded, 'mask': [b, T] bool (snippets that
    exist: all T, or the first T' of a video kept whole), 'num_snippets': [b] int64
    (L), 'names': [b] object array of str ('' for padding), 'labels': [b, C]
    float32, 'valid': [b] bool}.
  """
  hide_gpus_from_tensorflow()
  sampling_lib.check_eval_sampling(sampling, keep_all_if_shorter)
  batches_lib.check_process(process_index, process_count)
  local = batches_lib.host_batch_size(batch_size, process_count)
  reader = batches_lib.SplitReader(as_source(source_or_tfds), split, cache=cache)

  def load(batch):
    out = batches_lib.eval_batch(
        reader, int(batch), num_segments=num_segments, batch_size=batch_size,
        sampling=sampling, keep_all_if_shorter=keep_all_if_shorter,
        process_index=process_index, process_count=process_count)
    out["names"] = np.array([n.encode("utf-8") for n in out["names"]], object)
    return tuple(out[k] for k in _EVAL_KEYS)

  def load_tf(batch):
    outputs = tf.numpy_function(load, [batch], _EVAL_TYPES, stateful=False)
    shapes = ((local,), (local, num_segments, reader.feature_dim),
              (local, num_segments), (local,), (local, reader.num_classes), (local,))
    for tensor, shape in zip(outputs, shapes):
      tensor.set_shape(shape)
    return dict(zip(_EVAL_KEYS, outputs))

  count = batches_lib.num_eval_batches(len(reader), batch_size)
  dataset = tf.data.Dataset.range(count).map(
      load_tf, num_parallel_calls=tf.data.AUTOTUNE, deterministic=True)
  for batch in dataset.prefetch(2).as_numpy_iterator():
    batch["names"] = np.array([n.decode("utf-8") for n in batch["names"]], object)
    yield batch
