"""Tests of salx.datasets.input_pipeline on a tiny SAL-layout dataset written in a temp dir.

Every video's features carry its identity: column 0 holds the video id and column 1
the snippet index, so a batch row tells which video and which snippets it took.
"""

import itertools

import numpy as np
import pytest

from salx.datasets import input_pipeline
from salx.datasets import errors
from salx.datasets import layouts
from salx.datasets import sampling

CLASSES = ("Alpha", "Beta", "Gamma")
TRAIN_LENGTHS = (5, 9, 12, 3, 17, 8, 11)   # N = 7 training videos.
TEST_LENGTHS = (4, 6, 15, 8, 21)           # 5 test videos.
T = 8


def _record(name: str, video_id: int, length: int) -> layouts.VideoRecord:
  """A video whose features say (video_id, snippet index) in columns 0 and 1."""
  rng = np.random.default_rng(video_id)
  features = rng.normal(size=(length, layouts.FEATURE_DIM)).astype(np.float32)
  features[:, 0] = video_id
  features[:, 1] = np.arange(length)
  first, second = video_id % 3, (video_id + 1) % 3
  segment_labels = (CLASSES[first],) if video_id % 2 else (CLASSES[first],
                                                           CLASSES[second])
  labels = np.zeros(len(CLASSES), np.float32)
  for label in segment_labels:
    labels[CLASSES.index(label)] = 1.0
  segments = np.array([[0.5, 1.25], [2.0, 3.5]][:len(segment_labels)], np.float64)
  return layouts.VideoRecord(
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
  writer = {"sal": layouts.write_sal_layout, "acmnet": layouts.write_acmnet_layout,
            "wtalc": layouts.write_wtalc_layout}[layout]
  return writer(str(root), records, splits, CLASSES)


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
  batches = _batches(source, batch_size=2, seed=0, num_steps=4)
  assert len(batches) == 4
  for batch in batches:
    assert batch["features"].shape == (2, T, layouts.FEATURE_DIM)
    assert batch["features"].dtype == np.float32
    assert batch["labels"].shape == (2, len(CLASSES))
    assert batch["labels"].dtype == np.float32


def test_train_batches_are_deterministic_for_a_seed(source):
  first = _batches(source, batch_size=2, seed=3, num_steps=7)
  _assert_same_batches(first, _batches(source, batch_size=2, seed=3, num_steps=7))
  other = _batches(source, batch_size=2, seed=4, num_steps=7)
  assert any(not np.array_equal(a["features"], b["features"])
             for a, b in zip(first, other))


def test_rows_follow_the_documented_order_and_sampling(source):
  """Row r of step s is the documented video with the documented snippets."""
  seed, batch_size, steps = 11, 2, 10   # N = 7: 3 steps per epoch, 4 epochs.
  names = source.video_names("train")
  batches = _batches(source, batch_size=batch_size, seed=seed, num_steps=steps)
  for step, batch in enumerate(batches):
    epoch, batch_in_epoch = divmod(step, len(names) // batch_size)
    order = np.random.default_rng([seed, 0, epoch]).permutation(len(names))
    for row in range(batch_size):
      position = batch_in_epoch * batch_size + row
      record = source.load("train", names[order[position]])
      indices = sampling.random_perturb_indices(
          record.num_snippets, T, np.random.default_rng([seed, 1, epoch, position]))
      np.testing.assert_array_equal(batch["features"][row], record.features[indices])
      np.testing.assert_array_equal(batch["labels"][row], record.labels)


def test_each_epoch_visits_distinct_videos_and_drops_the_remainder(source):
  """Floor steps per epoch: 3 batches of 2 over 7 videos, no video twice an epoch."""
  batches = _batches(source, batch_size=2, seed=5, num_steps=9)
  video_ids = [int(v) for b in batches for v in b["features"][:, 0, 0]]
  epochs = [video_ids[i:i + 6] for i in range(0, 18, 6)]
  for epoch in epochs:
    assert len(set(epoch)) == 6 and set(epoch) <= set(range(len(TRAIN_LENGTHS)))
  assert len({tuple(e) for e in epochs}) == 3   # Each epoch has its own order.


def test_snippets_are_sorted_and_cover_each_bin(source):
  """The sampled snippet indices (column 1) never decrease and stay in range."""
  for batch in _batches(source, batch_size=2, seed=2, num_steps=6):
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
    assert first["features"].shape == (2, T, layouts.FEATURE_DIM)
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


def test_cache_gives_the_same_batches(source):
  _assert_same_batches(_batches(source, batch_size=2, seed=0, num_steps=6),
                       _batches(source, batch_size=2, seed=0, num_steps=6, cache=True))


def test_non_source_is_refused_with_a_clear_error():
  with pytest.raises(TypeError, match="is not a data source"):
    input_pipeline.train_dataset(object(), batch_size=2, num_segments=T, seed=0)


def test_wrong_label_count_names_the_video(source):
  class WrongLabels:
    class_names = source.class_names + ("Delta",)
    feature_dim = layouts.FEATURE_DIM

    def video_names(self, split):
      return source.video_names(split)

    def load(self, split, name):
      return source.load(split, name)

  reader = input_pipeline.SplitReader(WrongLabels(), "train")
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
    assert video["features"].shape == (expected_count, layouts.FEATURE_DIM)
    indices = np.arange(expected_count) * length // expected_count
    np.testing.assert_array_equal(video["features"], record.features[indices])
    np.testing.assert_array_equal(video["labels"], record.labels)


def test_eval_batches_pad_and_mask(source):
  batches = list(input_pipeline.eval_batches(
      source, num_segments=T, batch_size=2, keep_all_if_shorter=True))
  assert len(batches) == input_pipeline.num_eval_batches(len(TEST_LENGTHS), 2) == 3
  names = source.video_names("test")
  for k, batch in enumerate(batches):
    assert batch["features"].shape == (2, T, layouts.FEATURE_DIM)
    assert batch["mask"].shape == (2, T) and batch["mask"].dtype == bool
    for row in range(2):
      index = 2 * k + row
      if index >= len(names):   # The padding row of the last batch.
        assert not batch["valid"][row] and batch["names"][row] == ""
        assert not batch["mask"][row].any() and batch["num_snippets"][row] == 0
        assert not batch["features"][row].any() and not batch["labels"][row].any()
        continue
      length = TEST_LENGTHS[index]
      kept = min(length, T)
      assert batch["valid"][row] and batch["names"][row] == names[index]
      assert batch["num_snippets"][row] == length
      np.testing.assert_array_equal(batch["mask"][row], np.arange(T) < kept)
      record = source.load("test", names[index])
      indices = sampling.uniform_indices(length, T, keep_all_if_shorter=True)
      np.testing.assert_array_equal(batch["features"][row, :kept],
                                    record.features[indices])
      assert not batch["features"][row, kept:].any()
      np.testing.assert_array_equal(batch["labels"][row], record.labels)


def test_eval_batches_without_keep_all_fill_every_snippet(source):
  batches = list(input_pipeline.eval_batches(source, num_segments=T, batch_size=4))
  masks = np.concatenate([b["mask"] for b in batches])
  valid = np.concatenate([b["valid"] for b in batches])
  assert valid.tolist() == [True] * 5 + [False] * 3
  assert masks[valid].all() and not masks[~valid].any()


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


def test_train_batch_is_the_pure_function_behind_the_dataset(source):
  reader = input_pipeline.SplitReader(source, "train")
  batches = _batches(source, batch_size=2, seed=6, start_step=4, num_steps=3)
  for step, batch in enumerate(batches, start=4):
    expected = input_pipeline.train_batch(reader, step, batch_size=2, num_segments=T,
                                          seed=6)
    np.testing.assert_array_equal(batch["features"], expected["features"])
    np.testing.assert_array_equal(batch["labels"], expected["labels"])


def test_tensorflow_sees_no_gpu():
  import tensorflow as tf  # pylint: disable=g-import-not-at-top
  assert not tf.config.get_visible_devices("GPU")
