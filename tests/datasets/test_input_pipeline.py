"""Tests of the tf.data feed (salx.datasets.input_pipeline) and of the NumPy batches
behind it (salx.datasets.batches) on a tiny SAL-layout dataset written in a temp dir.

Every video's features carry its identity: column 0 holds the video id and column 1
the snippet index, so a batch row tells which video and which snippets it took.
"""

import itertools
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest
import tensorflow as tf

from salx.datasets import batches
from salx.datasets import errors
from salx.datasets import input_pipeline
from salx.datasets import layouts
from salx.datasets import sampling
from salx.datasets import source as source_lib
from salx.core import constants
from tests.datasets.pipeline_records import (CLASSES, TEST_LENGTHS, TRAIN_LENGTHS,
                                            write_tiny_dataset)

T = 8


@pytest.fixture(scope="module")
def source(tmp_path_factory):
  data_dir = write_tiny_dataset(tmp_path_factory.mktemp("tiny_sal"))
  return layouts.open_source(data_dir, "thumos14")


def _batches(source, **kwargs):
  kwargs.setdefault("num_segments", T)
  kwargs.setdefault("process_index", 0)
  kwargs.setdefault("process_count", 1)
  return list(input_pipeline.train_batches(source, **kwargs))


def _assert_same_batches(first, second):
  assert len(first) == len(second)
  for a, b in zip(first, second):
    assert a.keys() == b.keys() == {"features", "labels"}
    np.testing.assert_array_equal(a["features"], b["features"])
    np.testing.assert_array_equal(a["labels"], b["labels"])


def test_train_batches_have_the_documented_shapes(source):
  produced = _batches(source, batch_size=2, seed=0, num_steps=4)
  assert len(produced) == 4
  for batch in produced:
    assert batch["features"].shape == (2, T, constants.FEATURE_DIM)
    assert batch["features"].dtype == np.float32
    assert batch["labels"].shape == (2, len(CLASSES))
    assert batch["labels"].dtype == np.float32


def test_train_batches_are_deterministic_for_a_seed(source):
  first = _batches(source, batch_size=2, seed=3, num_steps=7)
  _assert_same_batches(first, _batches(source, batch_size=2, seed=3, num_steps=7))
  other = _batches(source, batch_size=2, seed=4, num_steps=7)
  assert any(not np.array_equal(a["features"], b["features"])
             for a, b in zip(first, other))


@pytest.mark.parametrize("sampling_name", sampling.SAMPLINGS)
def test_rows_follow_the_documented_order_and_sampling(source, sampling_name):
  """Row r of step s is the documented video with the documented snippets."""
  seed, batch_size, steps = 11, 2, 10   # N = 7: 3 steps per epoch, 4 epochs.
  names = source.video_names("train")
  produced = _batches(source, batch_size=batch_size, seed=seed, num_steps=steps,
                      sampling=sampling_name)
  for step, batch in enumerate(produced):
    epoch, batch_in_epoch = divmod(step, len(names) // batch_size)
    order = np.random.default_rng([seed, 0, epoch]).permutation(len(names))
    for row in range(batch_size):
      position = batch_in_epoch * batch_size + row
      record = source.load("train", names[order[position]])
      indices = sampling.train_indices(
          record.num_snippets, T, np.random.default_rng([seed, 1, epoch, position]),
          sampling_name)
      np.testing.assert_array_equal(batch["features"][row], record.features[indices])
      np.testing.assert_array_equal(batch["labels"][row], record.labels)


def test_the_two_samplings_give_different_batches(source):
  """Short videos (L < T) repeat snippets in bins (THUMOS14) or by sorted draws."""
  thumos = _batches(source, batch_size=2, seed=0, num_steps=3)
  activitynet = _batches(source, batch_size=2, seed=0, num_steps=3,
                         sampling="activitynet")
  for a, b in zip(thumos, activitynet):
    np.testing.assert_array_equal(a["labels"], b["labels"])   # Same videos.
    np.testing.assert_array_equal(a["features"][:, 0, 0], b["features"][:, 0, 0])
  assert any(not np.array_equal(a["features"], b["features"])
             for a, b in zip(thumos, activitynet))


def test_unknown_sampling_is_refused_before_reading(source):
  with pytest.raises(ValueError, match="sampling 'kinetics' is not one of"):
    input_pipeline.train_dataset(source, batch_size=2, num_segments=T, seed=0,
                                 process_index=0, process_count=1,
                                 sampling="kinetics")
  with pytest.raises(ValueError, match="sampling 'kinetics'"):
    next(input_pipeline.eval_batches(source, num_segments=T, batch_size=2,
                                     sampling="kinetics"))


def test_each_epoch_visits_distinct_videos_and_drops_the_remainder(source):
  """Floor steps per epoch: 3 batches of 2 over 7 videos, no video twice an epoch."""
  produced = _batches(source, batch_size=2, seed=5, num_steps=9)
  video_ids = [int(v) for b in produced for v in b["features"][:, 0, 0]]
  epochs = [video_ids[i:i + 6] for i in range(0, 18, 6)]
  for epoch in epochs:
    assert len(set(epoch)) == 6 and set(epoch) <= set(range(len(TRAIN_LENGTHS)))
  assert len({tuple(e) for e in epochs}) == 3   # Each epoch has its own order.


@pytest.mark.parametrize("sampling_name", sampling.SAMPLINGS)
def test_snippets_are_sorted_and_in_range(source, sampling_name):
  """The sampled snippet indices (column 1) never decrease and stay in range."""
  for batch in _batches(source, batch_size=2, seed=2, num_steps=6,
                        sampling=sampling_name):
    for row in batch["features"]:
      video_id, snippets = int(row[0, 0]), row[:, 1].astype(int)
      assert np.all(np.diff(snippets) >= 0)
      assert 0 <= snippets.min() and snippets.max() < TRAIN_LENGTHS[video_id]


@pytest.mark.parametrize("start_step", [1, 3, 5])
def test_resuming_at_a_step_gives_the_tail_of_an_uninterrupted_run(source, start_step):
  full = _batches(source, batch_size=2, seed=7, num_steps=8)
  resumed = _batches(source, batch_size=2, seed=7, start_step=start_step,
                     num_steps=8 - start_step)
  _assert_same_batches(full[start_step:], resumed)


def test_endless_stream_matches_a_finite_one(source):
  stream = input_pipeline.train_batches(
      source, batch_size=2, num_segments=T, seed=1, start_step=2, process_index=0,
      process_count=1)
  endless = list(itertools.islice(stream, 6))
  _assert_same_batches(endless, _batches(source, batch_size=2, seed=1, start_step=2,
                                         num_steps=6))


def test_two_hosts_concatenate_to_the_one_host_global_batch(source):
  one_host = _batches(source, batch_size=4, seed=9, num_steps=5)
  host_0 = _batches(source, batch_size=4, seed=9, num_steps=5, process_index=0,
                    process_count=2)
  host_1 = _batches(source, batch_size=4, seed=9, num_steps=5, process_index=1,
                    process_count=2)
  for whole, first, second in zip(one_host, host_0, host_1):
    assert first["features"].shape == (2, T, constants.FEATURE_DIM)
    for key in ("features", "labels"):
      np.testing.assert_array_equal(
          whole[key], np.concatenate([first[key], second[key]]))


def test_batch_size_must_divide_by_the_process_count(source):
  with pytest.raises(ValueError, match="multiple of the process count 2"):
    input_pipeline.train_dataset(source, batch_size=3, num_segments=T, seed=0,
                                 process_index=0, process_count=2)


def test_batch_larger_than_the_training_set_is_refused(source):
  with pytest.raises(ValueError, match="larger than the 7 training videos"):
    input_pipeline.train_dataset(source, batch_size=8, num_segments=T, seed=0,
                                 process_index=0, process_count=1)


def test_process_index_outside_the_count_is_refused(source):
  with pytest.raises(ValueError, match="process index 2 is outside \\[0, 2\\)"):
    input_pipeline.train_dataset(source, batch_size=2, num_segments=T, seed=0,
                                 process_index=2, process_count=2)
  reader = batches.SplitReader(source, "test")
  with pytest.raises(ValueError, match="process index -1 is outside"):
    batches.eval_batch(reader, 0, num_segments=T, batch_size=2, process_index=-1,
                       process_count=2)


def test_cache_gives_the_same_batches(source):
  _assert_same_batches(_batches(source, batch_size=2, seed=0, num_steps=6),
                       _batches(source, batch_size=2, seed=0, num_steps=6, cache=True))


def test_non_source_is_refused_with_a_clear_error():
  with pytest.raises(TypeError, match="is not a data source"):
    input_pipeline.train_dataset(object(), batch_size=2, num_segments=T, seed=0)


def test_wrong_label_count_names_the_video(source):
  class WrongLabels:
    class_names = source.class_names + ("Delta",)
    feature_dim = constants.FEATURE_DIM

    def video_names(self, split):
      return source.video_names(split)

    def load(self, split, name):
      return source.load(split, name)

  reader = batches.SplitReader(WrongLabels(), "train")
  with pytest.raises(errors.DataError, match="video_train_000.*expected \\[4\\]"):
    reader.load(0)


@pytest.mark.parametrize("keep_all", [False, True])
def test_eval_videos_are_uniformly_sampled(source, keep_all):
  videos = list(input_pipeline.eval_videos(source, num_segments=T,
                                           keep_all_if_shorter=keep_all))
  assert [v["name"] for v in videos] == source.video_names("test")
  for video, length in zip(videos, TEST_LENGTHS):
    record = source.load("test", video["name"])
    assert video["num_snippets"] == length
    expected_count = length if keep_all and length <= T else T
    assert video["features"].shape == (expected_count, constants.FEATURE_DIM)
    indices = np.arange(expected_count) * length // expected_count
    np.testing.assert_array_equal(video["features"], record.features[indices])
    np.testing.assert_array_equal(video["labels"], record.labels)


def test_eval_videos_of_the_activitynet_sampling(source):
  """L = 1 gives two copies of snippet 0; 1 < L <= T all L; L > T floor(i * (L / T))."""
  videos = {v["name"]: v for v in input_pipeline.eval_videos(
      source, num_segments=T, sampling="activitynet")}
  expected = {4: [0, 1, 2, 3], 6: [0, 1, 2, 3, 4, 5], 8: list(range(8)), 1: [0, 0],
              15: [0, 1, 3, 5, 7, 9, 11, 13],        # 15 / 8 = 1.875
              21: [0, 2, 5, 7, 10, 13, 15, 18]}      # 21 / 8 = 2.625
  for name, length in zip(source.video_names("test"), TEST_LENGTHS):
    video = videos[name]
    assert video["num_snippets"] == length
    np.testing.assert_array_equal(video["features"][:, 1], expected[length])
    np.testing.assert_array_equal(
        video["features"], source.load("test", name).features[expected[length]])


def _check_padded_batches(source, produced, batch_size, sampling_name, keep_all):
  names = source.video_names("test")
  assert len(produced) == batches.num_eval_batches(len(names), batch_size)
  for k, batch in enumerate(produced):
    assert batch["features"].shape == (batch_size, T, constants.FEATURE_DIM)
    assert batch["mask"].shape == (batch_size, T) and batch["mask"].dtype == bool
    for row in range(batch_size):
      index = batch_size * k + row
      if index >= len(names):   # The padding rows of the last batch.
        assert not batch["valid"][row] and batch["names"][row] == ""
        assert not batch["mask"][row].any() and batch["num_snippets"][row] == 0
        assert not batch["features"][row].any() and not batch["labels"][row].any()
        continue
      length = TEST_LENGTHS[index]
      record = source.load("test", names[index])
      indices = sampling.eval_indices(length, T, sampling_name, keep_all)
      kept = len(indices)
      assert batch["valid"][row] and batch["names"][row] == names[index]
      assert batch["num_snippets"][row] == length
      np.testing.assert_array_equal(batch["mask"][row], np.arange(T) < kept)
      np.testing.assert_array_equal(batch["features"][row, :kept],
                                    record.features[indices])
      assert not batch["features"][row, kept:].any()
      np.testing.assert_array_equal(batch["labels"][row], record.labels)


@pytest.mark.parametrize("sampling_name,keep_all",
                         [("thumos14", True), ("activitynet", None),
                          ("activitynet", True)])
def test_eval_batches_pad_and_mask(source, sampling_name, keep_all):
  produced = list(input_pipeline.eval_batches(
      source, num_segments=T, batch_size=4, keep_all_if_shorter=keep_all,
      sampling=sampling_name))
  assert len(produced) == 2
  _check_padded_batches(source, produced, 4, sampling_name, keep_all)


def test_activitynet_eval_batch_masks_the_kept_lengths(source):
  """Valid lengths are the kept snippets: L for 1 < L <= T, 2 for L = 1, T beyond."""
  reader = batches.SplitReader(source, "test")
  masks = np.concatenate([
      batches.eval_batch(reader, k, num_segments=T, batch_size=4,
                         sampling="activitynet")["mask"] for k in range(2)])
  assert masks.sum(axis=1).tolist() == [4, 6, 8, 8, 8, 2, 0, 0]


def test_activitynet_eval_sampling_refuses_to_cut_short_videos(source):
  with pytest.raises(ValueError, match="keep_all_if_shorter=False contradicts"):
    next(input_pipeline.eval_batches(source, num_segments=T, batch_size=2,
                                     keep_all_if_shorter=False,
                                     sampling="activitynet"))


def test_one_snippet_activitynet_video_needs_two_segments(source):
  reader = batches.SplitReader(source, "test")
  with pytest.raises(ValueError, match="sampled to 2 snippets, more than num_segments"):
    batches.eval_batch(reader, 5, num_segments=1, batch_size=1, sampling="activitynet")


def test_eval_batches_without_keep_all_fill_every_snippet(source):
  produced = list(input_pipeline.eval_batches(source, num_segments=T, batch_size=4))
  masks = np.concatenate([b["mask"] for b in produced])
  valid = np.concatenate([b["valid"] for b in produced])
  assert valid.tolist() == [True] * 6 + [False] * 2
  assert masks[valid].all() and not masks[~valid].any()
  _check_padded_batches(source, produced, 4, "thumos14", None)


def test_eval_batches_split_between_two_hosts(source):
  whole = list(input_pipeline.eval_batches(source, num_segments=T, batch_size=4))
  halves = [list(input_pipeline.eval_batches(
      source, num_segments=T, batch_size=4, process_index=i, process_count=2))
            for i in range(2)]
  assert len(halves[0]) == len(halves[1]) == len(whole) == 2
  for k, batch in enumerate(whole):
    for key in batch:
      np.testing.assert_array_equal(
          batch[key], np.concatenate([halves[0][k][key], halves[1][k][key]]))


@pytest.mark.parametrize("sampling_name", sampling.SAMPLINGS)
def test_numpy_batches_are_what_the_feed_yields(source, sampling_name):
  reader = batches.SplitReader(source, "train")
  produced = _batches(source, batch_size=2, seed=6, start_step=4, num_steps=3,
                      sampling=sampling_name)
  for step, batch in enumerate(produced, start=4):
    expected = batches.train_batch(reader, step, batch_size=2, num_segments=T, seed=6,
                                   sampling=sampling_name)
    _assert_same_batches([batch], [expected])
  test_reader = batches.SplitReader(source, "test")
  for k, batch in enumerate(input_pipeline.eval_batches(
      source, num_segments=T, batch_size=4, sampling=sampling_name)):
    expected = batches.eval_batch(test_reader, k, num_segments=T, batch_size=4,
                                  sampling=sampling_name)
    assert batch.keys() == expected.keys()
    for key in batch:
      np.testing.assert_array_equal(batch[key], expected[key])


def test_the_feed_hides_the_gpus_before_building_a_dataset(source, monkeypatch):
  """TensorFlow is told to see no GPU before any tf.data dataset exists."""
  events = []
  real_range = tf.data.Dataset.range

  def set_visible_devices(devices, device_type=None):
    events.append(("set_visible_devices", list(devices), device_type))

  def dataset_range(*args, **kwargs):
    events.append(("dataset",))
    return real_range(*args, **kwargs)

  monkeypatch.setattr(tf.config, "set_visible_devices", set_visible_devices)
  monkeypatch.setattr(tf.data.Dataset, "range", staticmethod(dataset_range))
  for build in (
      lambda: input_pipeline.train_dataset(source, batch_size=2, num_segments=T,
                                           seed=0, num_steps=1, process_index=0,
                                           process_count=1),
      lambda: next(input_pipeline.eval_batches(source, num_segments=T, batch_size=2)),
      lambda: next(input_pipeline.eval_videos(source, num_segments=T))):
    events.clear()
    build()
    assert events[0] == ("set_visible_devices", [], "GPU")
    assert ("dataset",) in events


@pytest.mark.slow
def test_the_numpy_batches_import_no_tensorflow_and_no_jax():
  """Benchmarks and tests build the trainer's batches without TensorFlow or JAX."""
  code = ("import sys, salx.datasets.batches, salx.datasets.sampling; "
          "print(sorted({m.split('.')[0] for m in sys.modules} & "
          "{'tensorflow', 'tensorflow_datasets', 'jax', 'absl'}))")
  root = pathlib.Path(__file__).resolve().parents[2]
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        env=dict(os.environ, PYTHONPATH=str(root)), timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.strip() == "[]"
