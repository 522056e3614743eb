"""Tests of the salx TFDS builders on the tiny dataset of test_input_pipeline."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from salx.datasets import input_pipeline
from salx.datasets import errors
from salx.datasets import layouts
from salx.datasets import tfds_builders
from tests.test_input_pipeline import write_tiny_dataset

T = 8


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  tfds.disable_progress_bar()
  return write_tiny_dataset(tmp_path_factory.mktemp("tiny_sal"))


@pytest.fixture(scope="module")
def source(data_dir):
  return layouts.open_source(data_dir, "thumos14")


@pytest.fixture(scope="module")
def tfds_dir(tmp_path_factory):
  return str(tmp_path_factory.mktemp("tfds"))


@pytest.fixture(scope="module")
def prepared(data_dir, tfds_dir):
  return tfds_builders.prepare("thumos14", data_dir, tfds_dir)


def _assert_same_record(actual: layouts.VideoRecord, expected: layouts.VideoRecord):
  assert actual.name == expected.name
  np.testing.assert_array_equal(actual.features, expected.features)
  assert actual.features.dtype == np.float32
  np.testing.assert_array_equal(actual.labels, expected.labels)
  np.testing.assert_array_equal(actual.segments, expected.segments)
  assert actual.segments.shape == (len(expected.segment_labels), 2)
  assert actual.segment_labels == expected.segment_labels
  assert actual.duration == expected.duration


def test_prepared_dataset_is_random_access_with_the_source_facts(prepared, source):
  assert prepared.random_access
  assert prepared.dataset == "thumos14" and prepared.layout == "sal"
  assert prepared.class_names == source.class_names
  for split in tfds_builders.SPLITS:
    names = source.video_names(split)
    assert list(prepared.video_names(split)) == names
    assert [prepared.num_snippets(split, n) for n in names] == [
        source.num_snippets(split, n) for n in names]
  assert prepared.ground_truth() == source.ground_truth()


def test_prepared_records_equal_the_source_records(prepared, source):
  for split in tfds_builders.SPLITS:
    for name in source.video_names(split):
      _assert_same_record(prepared.load(split, name), source.load(split, name))


def test_record_i_is_video_i_of_the_split_list(prepared, source):
  data = prepared.builder.as_data_source("train")
  names = source.video_names("train")
  assert len(data) == len(names)
  for i in (0, len(names) - 1, 3):
    assert data[i]["name"].decode() == names[i]
    assert data[i]["num_snippets"] == source.num_snippets("train", names[i])


def test_builder_describes_its_features_and_splits(prepared):
  info = prepared.builder.info
  assert set(info.features.keys()) == {
      "name", "features", "labels", "segments", "segment_labels", "num_snippets",
      "duration"}
  assert info.features["features"].shape == (None, 2048)
  assert {s: info.splits[s].num_examples for s in ("train", "test")} == {
      "train": 7, "test": 5}
  assert "split_train.txt" in prepared.builder.MANUAL_DOWNLOAD_INSTRUCTIONS


@pytest.mark.parametrize("as_builder", [False, True])
def test_pipeline_gives_the_same_batches_from_tfds(prepared, source, as_builder):
  tfds_source = prepared.builder if as_builder else prepared
  kwargs = dict(batch_size=2, num_segments=T, seed=4, start_step=2, num_steps=5,
                process_index=0, process_count=1)
  expected = list(input_pipeline.train_batches(source, **kwargs))
  actual = list(input_pipeline.train_batches(tfds_source, **kwargs))
  for a, b in zip(actual, expected, strict=True):
    np.testing.assert_array_equal(a["features"], b["features"])
    np.testing.assert_array_equal(a["labels"], b["labels"])
  eval_kwargs = dict(num_segments=T, batch_size=2, keep_all_if_shorter=True)
  for a, b in zip(input_pipeline.eval_batches(tfds_source, **eval_kwargs),
                  input_pipeline.eval_batches(source, **eval_kwargs), strict=True):
    assert a.keys() == b.keys()
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])


def test_prepare_reuses_a_prepared_dataset(prepared, data_dir, tfds_dir, monkeypatch):
  def fail(*args, **kwargs):
    raise AssertionError("the prepared dataset was built again")
  monkeypatch.setattr(tfds_builders.SalxThumos14, "_split_generators", fail)
  again = tfds_builders.prepare("thumos14", data_dir, tfds_dir)
  assert again.video_names("test") == prepared.video_names("test")
  loaded = tfds_builders.load("thumos14", tfds_dir)
  _assert_same_record(loaded.load_index("test", 2), prepared.load_index("test", 2))


def test_tfrecord_fallback_reads_the_same_records(data_dir, source, tmp_path):
  fallback = tfds_builders.prepare("thumos14", data_dir, str(tmp_path),
                                   file_format="tfrecord")
  assert not fallback.random_access
  for name in source.video_names("test"):
    _assert_same_record(fallback.load("test", name), source.load("test", name))


def test_builder_reads_a_named_layout(source, tmp_path):
  wtalc_dir = write_tiny_dataset(tmp_path / "wtalc", layout="wtalc")
  prepared = tfds_builders.prepare("thumos14", wtalc_dir, str(tmp_path / "tfds"),
                                   layout="wtalc")
  assert prepared.layout == "wtalc"
  assert list(prepared.video_names("train")) == source.video_names("train")
  for name in source.video_names("train"):
    _assert_same_record(prepared.load("train", name), source.load("train", name))
  with pytest.raises(errors.DataError, match="gt.json"):   # Not an 'acmnet' folder.
    tfds_builders.prepare("thumos14", wtalc_dir, str(tmp_path / "tfds_acmnet"),
                          layout="acmnet")


def test_loading_an_unprepared_dataset_says_how_to_prepare(tmp_path):
  with pytest.raises(errors.DataError, match="salx_activitynet12 is not prepared.*prepare"):
    tfds_builders.load("activitynet12", str(tmp_path))


def test_missing_data_folder_is_named(tmp_path):
  missing = os.path.join(str(tmp_path), "nowhere")
  with pytest.raises(errors.DataError, match="nowhere does not exist"):
    tfds_builders.prepare("thumos14", missing, str(tmp_path))


def test_unknown_dataset_and_video_are_refused(prepared, tmp_path):
  with pytest.raises(errors.DataError, match="Unknown dataset 'thumos15'"):
    tfds_builders.builder("thumos15", str(tmp_path))
  with pytest.raises(errors.DataError, match="'nope' is not in the test split"):
    prepared.load("test", "nope")
  with pytest.raises(errors.DataError, match="Unknown split 'val'"):
    prepared.video_names("val")
