"""Tests of the salx TFDS builders and of TfdsSource, the data source of a run with
config.data_source = 'tfds': on the tiny dataset of test_input_pipeline and on a
small synthetic folder, TFDS gives the same records, annotations and batches."""

import os

import numpy as np
import pytest
import tensorflow_datasets as tfds

from salx.app import data as data_lib
from salx.app.runtime import ConfigError
from salx.datasets import errors
from salx.datasets import input_pipeline
from salx.datasets import layouts
from salx.datasets import tfds_builders
from salx.datasets import source as source_lib
from salx.core import constants
from salx.datasets import validate
from tests.datasets.pipeline_records import TEST_LENGTHS, TRAIN_LENGTHS, write_tiny_dataset
from tests.conftest import synthetic_config

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


def _assert_same_record(actual: source_lib.VideoRecord, expected: source_lib.VideoRecord):
  assert actual.name == expected.name
  np.testing.assert_array_equal(actual.features, expected.features)
  assert actual.features.dtype == np.float32
  np.testing.assert_array_equal(actual.labels, expected.labels)
  np.testing.assert_array_equal(actual.segments, expected.segments)
  assert actual.segments.shape == (len(expected.segment_labels), 2)
  assert actual.segment_labels == expected.segment_labels
  assert actual.duration == expected.duration


def test_prepared_dataset_is_random_access_with_the_source_facts(prepared, source,
                                                                 data_dir):
  assert isinstance(prepared, source_lib.FeatureSource)
  assert prepared.random_access
  assert prepared.dataset == "thumos14" and prepared.layout == "tfds"
  assert prepared.source_layout == "sal"
  assert prepared.source_data_dir == os.path.realpath(data_dir)
  assert prepared.data_dir == os.fspath(prepared.builder.data_dir)
  assert prepared.class_names == source.class_names
  assert prepared.feature_dim == constants.FEATURE_DIM
  for split in tfds_builders.SPLITS:
    names = source.video_names(split)
    assert prepared.video_names(split) == names
    assert [prepared.num_snippets(split, n) for n in names] == [
        source.num_snippets(split, n) for n in names]
  assert prepared.ground_truth() == source.ground_truth()


def test_annotations_come_from_the_metadata_unchanged(prepared, source):
  assert os.path.isfile(prepared.annotation_file)
  assert prepared.annotation_file.endswith(".json")
  assert prepared.split_file("train") == prepared.annotation_file
  for split in tfds_builders.SPLITS:
    for name in source.video_names(split):
      actual, expected = prepared.annotation(name), source.annotation(name)
      assert (actual.name, actual.subset, actual.segment_labels, actual.video_labels,
              actual.duration) == (expected.name, expected.subset,
                                   expected.segment_labels, expected.video_labels,
                                   expected.duration)
      np.testing.assert_array_equal(actual.segments, expected.segments)
      assert actual.segments.dtype == np.float64
  assert prepared.annotation("not_a_video") is None


def test_feature_file_is_the_record_file_holding_the_video(prepared, source):
  for split in tfds_builders.SPLITS:
    for name in source.video_names(split):
      path = prepared.feature_file(split, name)
      assert os.path.isfile(path) and f"-{split}." in os.path.basename(path)
      np.testing.assert_array_equal(prepared.load_features(split, name),
                                    source.load_features(split, name))


def test_the_data_checks_read_a_prepared_dataset(prepared):
  assert list(validate.iter_problems(prepared)) == []
  for mode in ("quick", "full"):
    data_lib.check_data(prepared, mode, "thumos14")


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
      "train": len(TRAIN_LENGTHS), "test": len(TEST_LENGTHS)}
  assert "split_{train,test}.txt" in prepared.builder.MANUAL_DOWNLOAD_INSTRUCTIONS


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
  loaded = tfds_builders.open_prepared("thumos14", tfds_dir)
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
  assert prepared.source_layout == "wtalc"
  assert prepared.video_names("train") == source.video_names("train")
  for name in source.video_names("train"):
    _assert_same_record(prepared.load("train", name), source.load("train", name))
  with pytest.raises(errors.DataError, match="gt.json"):   # Not an 'acmnet' folder.
    tfds_builders.prepare("thumos14", wtalc_dir, str(tmp_path / "tfds_acmnet"),
                          layout="acmnet")


def test_opening_an_unprepared_dataset_names_the_folder_and_the_command(tmp_path):
  with pytest.raises(errors.DataError) as raised:
    tfds_builders.open_prepared("activitynet12", str(tmp_path))
  message = str(raised.value)
  assert f"no prepared salx_activitynet12 1.1.0 in {tmp_path}" in message
  assert "tfds_builders.prepare('activitynet12', 'DATA_DIR'" in message
  assert "\n" not in message
  assert raised.value.path.startswith(str(tmp_path))


def test_a_dataset_prepared_from_another_folder_is_refused(prepared, tfds_dir, tmp_path):
  other = write_tiny_dataset(tmp_path / "other")
  with pytest.raises(errors.DataError, match="prepared from .* not from .*other"):
    tfds_builders.prepare("thumos14", other, tfds_dir)


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


# ---------------------------------------------------------------------------
# A run with config.data_source = 'tfds' (salx.app.data.open_data).

TINY_SYNTHETIC = dict(num_classes=3, num_train=5, num_test=3, min_length=10,
                      max_length=60)


def _synthetic_config(data_dir, **overrides):
  """configs/synthetic.py at a tiny size, its data in `data_dir`."""
  config = synthetic_config(data_dir=str(data_dir), **overrides)
  config.synthetic.update(TINY_SYNTHETIC)
  return config


@pytest.fixture(scope="module")
def synthetic_sources(tmp_path_factory):
  """(folder source, TFDS source) of one small synthetic dataset, through open_data."""
  root = tmp_path_factory.mktemp("synthetic")
  folder = data_lib.open_data(_synthetic_config(root / "data"))
  prepared = data_lib.open_data(_synthetic_config(
      root / "data", data_source="tfds", tfds_data_dir=str(root / "tfds")))
  return folder, prepared


def test_open_data_reads_the_synthetic_dataset_through_tfds(synthetic_sources):
  folder, prepared = synthetic_sources
  assert isinstance(prepared, tfds_builders.TfdsSource)
  assert folder.layout == "sal" and prepared.source_data_dir == folder.data_dir
  assert prepared.video_names("test") == folder.video_names("test")
  assert data_lib.num_classes_of(_synthetic_config(""), prepared) == 3


@pytest.mark.parametrize("sampling", ["thumos14", "activitynet"])
def test_first_training_and_evaluation_batches_equal_the_folders(synthetic_sources,
                                                                 sampling):
  """Exact arrays: the first two epochs of training, and every test batch."""
  folder, prepared = synthetic_sources
  train = dict(batch_size=2, num_segments=16, seed=3, num_steps=4, process_index=0,
               process_count=1, sampling=sampling)
  for a, b in zip(input_pipeline.train_batches(prepared, **train),
                  input_pipeline.train_batches(folder, **train), strict=True):
    assert a["features"].shape == (2, 16, constants.FEATURE_DIM)
    np.testing.assert_array_equal(a["features"], b["features"])
    np.testing.assert_array_equal(a["labels"], b["labels"])
  test = dict(num_segments=16, batch_size=2, sampling=sampling)
  produced = 0
  for a, b in zip(input_pipeline.eval_batches(prepared, **test),
                  input_pipeline.eval_batches(folder, **test), strict=True):
    assert a.keys() == b.keys()
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
    produced += 1
  assert produced == 2   # 3 test videos, the second batch padded.


def test_open_data_from_tfds_needs_a_prepared_dataset(tmp_path):
  config = _synthetic_config("", dataset="thumos14", data_source="tfds",
                             tfds_data_dir=str(tmp_path / "empty"))
  with pytest.raises(errors.DataError, match=f"no prepared salx_thumos14 .* in "
                                             f"{tmp_path / 'empty'}"):
    data_lib.open_data(config)


@pytest.mark.parametrize("overrides,field", [
    (dict(data_source="gcs"), "config.data_source 'gcs'"),
    (dict(data_source="tfds", feature_dim=64), "config.feature_dim is 64"),
])
def test_open_data_refuses_a_config_tfds_cannot_serve(tmp_path, overrides, field):
  with pytest.raises(ConfigError, match=field):
    data_lib.open_data(_synthetic_config(tmp_path / "data", **overrides))
  assert not (tmp_path / "data").exists()


@pytest.mark.slow
def test_the_evaluator_reads_the_same_test_split_from_tfds(synthetic_sources):
  """The evaluator's ground truth and test batches from a TfdsSource are the folder's."""
  from salx.app import evaluation  # pylint: disable=g-import-not-at-top
  from salx.app import config as config_lib  # pylint: disable=g-import-not-at-top
  from salx.core import sharding  # pylint: disable=g-import-not-at-top
  folder, prepared = synthetic_sources
  config = _synthetic_config("")
  config.update(eval_batch_size=2)
  config.sal.update(hidden_dim=8, num_segments=32)
  method, members = config_lib.method_of(config), config_lib.members_of(config)
  hp = members[0].hp
  model = config_lib.make_model(config, 3, method, hp)
  mesh = sharding.make_mesh()
  states, keys, stacked = config_lib.init_members(method, model, config, members, mesh)
  from_folder, from_tfds = (
      evaluation.Evaluator(config_lib.Run(config, method, members, s, 3, model, mesh,
                                          states, keys, stacked))
      for s in (folder, prepared))
  assert from_tfds.scorer.ground_truth.source == prepared.annotation_file
  for field in ("video_ids", "class_names", "video", "label", "start", "end"):
    np.testing.assert_array_equal(getattr(from_tfds.scorer.ground_truth, field),
                                  getattr(from_folder.scorer.ground_truth, field))
  for (a, *_), (b, *_) in zip(from_tfds.test.batches(), from_folder.test.batches(),
                              strict=True):
    for key in a:
      np.testing.assert_array_equal(a[key], b[key])
  (tfds_member,) = from_tfds.run(states.params, 0).members
  (folder_member,) = from_folder.run(states.params, 0).members
  record_tfds, detections_tfds = tfds_member.record, tfds_member.detections
  record_folder, detections_folder = folder_member.record, folder_member.detections
  assert record_tfds.mAP == record_folder.mAP and len(detections_tfds) > 0
  np.testing.assert_array_equal(detections_tfds.score, detections_folder.score)
