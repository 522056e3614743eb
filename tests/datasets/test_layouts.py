"""The three feature layouts: same videos, same arrays; clear errors on bad input."""

import csv
import fractions
import json
import math
import os
import subprocess
import sys

import numpy as np
import pytest

from salx.core.constants import FEATURE_DIM, SPLITS
from salx.datasets import classes
from salx.datasets import layouts
from salx.datasets import npy
from salx.datasets import source as source_lib
from salx.datasets import wtalc_layout
from salx.datasets.errors import DataError
from tests.conftest import ROOT, data_file
from tests.datasets.layout_records import TINY_CLASSES, TINY_SPLITS, tiny_records, write_tiny
from tests.datasets import layout_records

# Few videos, short ones, keep the three layouts of each benchmark fast.
MAX_VIDEOS = 12
MAX_SNIPPETS = 40

REAL = {
    "thumos14": dict(annotations="thumos14/gt.json",
                     split_files=("thumos14/split_train.txt",
                                  "thumos14/split_test.txt")),
    "activitynet12": dict(annotations="activitynet12/gt_from_wtalc.json",
                          split_files=("activitynet12/split_train.txt",
                                       "activitynet12/split_test.txt")),
    "activitynet13": dict(annotations="activitynet13/gt_from_bsn.json",
                          split_files=("activitynet13/acmnet_split_train.txt",
                                       "activitynet13/acmnet_split_test.txt")),
}


def _real_records(dataset):
  """(records, splits, class names) of the first real videos, random features."""
  case = REAL[dataset]
  path = data_file(case["annotations"])
  real = source_lib.read_ground_truth_json(path)
  used = {label for a in real.values() for label in a.segment_labels}
  class_names = classes.default_class_names(dataset, used, path)
  splits, records = {}, []
  for split, split_file in zip(SPLITS, case["split_files"]):
    listed = [n for n in source_lib.read_split_file(data_file(split_file))
              if n in real and real[n].segment_labels]
    splits[split] = listed[:MAX_VIDEOS]
    for i, name in enumerate(splits[split]):
      annotation = real[name]
      records.append(layout_records.record(
          name, 1 + (7 * i) % MAX_SNIPPETS, annotation.segment_labels,
          annotation.segments, annotation.duration, seed=i, class_names=class_names))
  return records, splits, class_names


@pytest.fixture(scope="module", params=sorted(REAL))
def real_copies(request, tmp_path_factory):
  """(dataset, records, {layout: folder}) of a few real videos, random features."""
  dataset = request.param
  records, splits, class_names = _real_records(dataset)
  root = tmp_path_factory.mktemp(dataset)
  folders = {layout: layouts.write_layout(layout, root / layout, records, splits,
                                          class_names, dataset)
             for layout in layouts.LAYOUTS}
  return dataset, records, folders


def _assert_same_record(a, b):
  assert a.name == b.name
  np.testing.assert_array_equal(a.features, b.features)
  assert a.features.dtype == b.features.dtype == np.float32
  np.testing.assert_array_equal(a.labels, b.labels)
  np.testing.assert_array_equal(a.segments, b.segments)
  assert a.segment_labels == b.segment_labels
  if b.duration is None:
    assert a.duration is None
  else:
    assert a.duration == pytest.approx(b.duration)


def test_every_layout_gives_back_the_real_videos(real_copies):
  dataset, records, folders = real_copies
  by_name = {r.name: r for r in records}
  sources = {layout: layouts.open_source(folder, dataset)
             for layout, folder in folders.items()}
  reference = sources["sal"]
  assert len(reference.video_names("train")) == MAX_VIDEOS
  assert len(reference.video_names("test")) == MAX_VIDEOS
  for layout, source in sources.items():
    assert source.layout == layout
    assert layouts.detect_layout(folders[layout]) == layout
    assert source.class_names == reference.class_names
    assert source.ground_truth() == reference.ground_truth()
    for split in SPLITS:
      assert source.video_names(split) == reference.video_names(split)
      for name in source.video_names(split):
        loaded = source.load(split, name)
        _assert_same_record(loaded, by_name[name])
        assert loaded.features.shape == (source.num_snippets(split, name), FEATURE_DIM)
        assert loaded.labels.sum() >= 1


def test_ground_truth_is_activitynet_json_with_train_and_test(real_copies):
  dataset, _, folders = real_copies
  truth = layouts.open_source(folders["acmnet"], dataset).ground_truth()
  database = truth["database"]
  assert len(database) == 2 * MAX_VIDEOS
  assert {v["subset"] for v in database.values()} == {"train", "test"}
  json.dumps(truth)   # Plain JSON types only.
  for video in database.values():
    for instance in video["annotations"]:
      start, end = instance["segment"]
      assert isinstance(start, float) and 0 <= start < end


def test_real_lengths_are_floor_of_duration_times_25_over_16():
  with open(data_file("thumos14/video_info.csv"), newline="") as f:
    durations = [r["duration_s"] for r in csv.DictReader(f)]
  assert len(durations) > 100
  for text in durations:
    # Exact decimal arithmetic: 294.4 s is exactly 460 snippets.
    exact = math.floor(fractions.Fraction(text) * 25 / 16)
    assert source_lib.snippets_for_duration(float(text)) == exact


def test_thumos14_classes_are_the_sorted_gt_labels():
  real = source_lib.read_ground_truth_json(data_file("thumos14/gt.json"))
  used = {label for a in real.values() for label in a.segment_labels}
  assert classes.THUMOS14_CLASSES == tuple(sorted(used))
  assert len(classes.THUMOS14_CLASSES) == 20


def test_activitynet12_default_order_is_the_wtalc_classlist():
  real = source_lib.read_ground_truth_json(
      data_file("activitynet12/gt_from_wtalc.json"))
  used = {label for a in real.values() for label in a.segment_labels}
  derived = classes.default_class_names("activitynet12", used, "gt.json")
  assert derived == classes.read_class_list(data_file("activitynet12/classlist.txt"))


def test_activitynet13_without_class_list_is_a_clear_error(tmp_path):
  write_tiny(tmp_path, "acmnet")
  os.remove(tmp_path / "classlist.txt")
  with pytest.raises(DataError, match="action_name.csv") as error:
    layouts.open_source(tmp_path, "activitynet13")
  assert str(error.value).startswith(f"{tmp_path / 'gt.json'}: ")


# ---------------------------------------------------------------------------
# Hand-made folders.

@pytest.mark.parametrize("layout", layouts.LAYOUTS)
@pytest.mark.parametrize("dataset", layouts.DATASETS)
def test_hand_made_records_round_trip(tmp_path, layout, dataset):
  records = write_tiny(tmp_path, layout, dataset)
  source = layouts.open_source(tmp_path, dataset)
  assert source.layout == layout
  assert source.class_names == TINY_CLASSES
  assert source.video_names("train") == ["v_a", "v_b"]
  assert source.video_names("test") == ["v_c"]
  split_of = {"v_a": "train", "v_b": "train", "v_c": "test"}
  for record in records:
    loaded = source.load(split_of[record.name], record.name)
    _assert_same_record(loaded, record)
    assert (source.num_snippets(split_of[record.name], record.name)
            == record.num_snippets)
  assert source.ground_truth()["database"]["v_a"] == {
      "subset": "train", "duration": 8.0,
      "annotations": [{"label": "Jump", "segment": [0.5, 2.0]},
                      {"label": "Run", "segment": [3.0, 4.5]}]}
  assert "duration" not in source.ground_truth()["database"]["v_b"]


def test_rgb_dims_come_first(tmp_path):
  records = write_tiny(tmp_path, "sal")
  rgb = np.load(tmp_path / "features" / "train" / "rgb" / "v_a.npy")
  flow = np.load(tmp_path / "features" / "train" / "flow" / "v_a.npy")
  np.testing.assert_array_equal(rgb, records[0].features[:, :1024])
  np.testing.assert_array_equal(flow, records[0].features[:, 1024:])


def test_string_segments_and_missing_duration_are_read(tmp_path):
  real = json.loads(data_file("thumos14/gt.json").read_text())["database"]
  name = "video_validation_0000051"
  assert isinstance(real[name]["annotations"][0]["segment"][0], str)
  write_tiny(tmp_path, "sal")
  (tmp_path / "gt.json").write_text(json.dumps({"database": {
      "v_a": real[name], "v_b": {"subset": "train", "annotations": []},
      "v_c": {"subset": "test", "annotations": []}}}))
  os.remove(tmp_path / "classlist.txt")   # THUMOS14's own classes then.
  record = layouts.open_source(tmp_path, "thumos14").load("train", "v_a")
  expected = [[float(s), float(e)] for s, e in
              (a["segment"] for a in real[name]["annotations"])]
  np.testing.assert_array_equal(record.segments, expected)
  assert record.duration is None
  assert record.labels.shape == (20,)
  assert record.labels[classes.THUMOS14_CLASSES.index("Billiards")] == 1


def test_wtalc_keeps_video_labels_without_instances(tmp_path):
  unlabelled = layout_records.record("v_a", 5, [], [], 4.0)
  record = source_lib.VideoRecord(
      name="v_a", features=unlabelled.features, labels=np.array([0, 1], np.float32),
      segments=unlabelled.segments, segment_labels=(), duration=4.0)
  wtalc_layout.write_wtalc_layout(tmp_path, [record], {"train": ["v_a"]}, TINY_CLASSES)
  loaded = layouts.open_source(tmp_path, "thumos14").load("train", "v_a")
  np.testing.assert_array_equal(loaded.labels, [0, 1])
  with pytest.raises(DataError, match="derives video labels"):
    layouts.write_layout("sal", tmp_path / "sal", [record], {"train": ["v_a"]},
                         TINY_CLASSES)


def test_wtalc_reads_features_only_when_needed(tmp_path):
  write_tiny(tmp_path, "wtalc")
  source = layouts.open_source(tmp_path, "thumos14")
  assert source.video_names("train") == ["v_a", "v_b"]
  assert not source.features_loaded
  source.load("train", "v_a")
  assert source.features_loaded


def test_wtalc_activitynet_names_come_from_urls(tmp_path):
  write_tiny(tmp_path, "wtalc", "activitynet12")
  annotations = tmp_path / "ActivityNet1.2-Annotations"
  names = npy.read_npy(annotations / "videoname.npy")
  assert [n.decode() for n in names] == ["video_0", "video_1", "video_2"]
  subsets = npy.read_npy(annotations / "subset.npy")
  assert [s.decode() for s in subsets] == ["training", "training", "validation"]
  assert layouts.open_source(tmp_path, "activitynet12").video_names("test") == ["v_c"]


# ---------------------------------------------------------------------------
# Reader errors.


def test_missing_data_dir_names_layout_and_synthetic_config(tmp_path):
  missing = tmp_path / "nowhere"
  with pytest.raises(DataError) as error:
    layouts.open_source(missing, "thumos14", layout="sal")
  message = str(error.value)
  assert str(missing) in message
  assert "'sal' layout" in message
  assert "--config=configs/synthetic.py" in message
  with pytest.raises(DataError, match="features/"):
    layouts.open_source(missing, "thumos14")


def test_folder_of_no_layout_is_a_clear_error(tmp_path):
  (tmp_path / "notes.txt").write_text("hello")
  with pytest.raises(DataError, match="matches none of the feature layouts"):
    layouts.detect_layout(tmp_path)


def test_unknown_dataset_or_layout(tmp_path):
  with pytest.raises(ValueError, match="unknown dataset"):
    layouts.open_source(tmp_path, "thumos15")
  with pytest.raises(ValueError, match="unknown layout"):
    layouts.open_source(tmp_path, "thumos14", layout="bsn")


@pytest.mark.parametrize("layout", ["sal", "acmnet"])
def test_split_video_without_feature_file(tmp_path, layout):
  write_tiny(tmp_path, layout)
  source = layouts.open_source(tmp_path, "thumos14")
  missing = source.feature_file("train", "v_b")
  os.remove(missing)
  for read in (source.load, source.num_snippets):
    with pytest.raises(DataError) as error:
      read("train", "v_b")
    assert missing in str(error.value) and "no feature file" in str(error.value)
    assert error.value.path == missing


def test_rgb_flow_length_mismatch(tmp_path):
  write_tiny(tmp_path, "sal")
  flow = tmp_path / "features" / "train" / "flow" / "v_a.npy"
  np.save(flow, np.zeros((11, 1024), np.float32))
  source = layouts.open_source(tmp_path, "thumos14")
  for read in (source.load, source.num_snippets):
    with pytest.raises(DataError, match="11 flow snippets but 12 RGB") as error:
      read("train", "v_a")
    assert str(flow) in str(error.value)


@pytest.mark.parametrize("layout,relative,shape", [
    ("sal", "features/test/rgb/v_c.npy", (15, 1000)),
    ("acmnet", "test/v_c.npy", (15, 1024)),
    ("acmnet", "test/v_c.npy", (15,)),
])
def test_wrong_feature_dim(tmp_path, layout, relative, shape):
  write_tiny(tmp_path, layout)
  np.save(tmp_path / relative, np.zeros(shape, np.float32))
  source = layouts.open_source(tmp_path, "thumos14")
  with pytest.raises(DataError, match="expected") as error:
    source.load("test", "v_c")
  assert str(tmp_path / relative) in str(error.value)


def test_wtalc_wrong_feature_dim(tmp_path):
  write_tiny(tmp_path, "wtalc")
  path = tmp_path / "Thumos14reduced-I3D-JOINTFeatures.npy"
  features = npy.read_npy(path)
  features[1] = features[1][:, :2000]
  np.save(path, features, allow_pickle=True)
  source = layouts.open_source(tmp_path, "thumos14")
  source.load("train", "v_a")
  with pytest.raises(DataError, match=r"shape \(9, 2000\)"):
    source.load("train", "v_b")


def test_label_outside_the_class_list(tmp_path):
  write_tiny(tmp_path, "sal")
  gt = json.loads((tmp_path / "gt.json").read_text())
  gt["database"]["v_b"]["annotations"][0]["label"] = "Swim"
  (tmp_path / "gt.json").write_text(json.dumps(gt))
  source = layouts.open_source(tmp_path, "thumos14")
  source.load("train", "v_a")
  with pytest.raises(DataError, match="'Swim'") as error:
    source.load("train", "v_b")
  assert str(tmp_path / "gt.json") in str(error.value)


def test_split_video_without_annotation(tmp_path):
  write_tiny(tmp_path, "acmnet")
  gt = json.loads((tmp_path / "gt.json").read_text())
  del gt["database"]["v_b"]
  (tmp_path / "gt.json").write_text(json.dumps(gt))
  with pytest.raises(DataError, match="no annotation for video v_b"):
    layouts.open_source(tmp_path, "thumos14").load("train", "v_b")


def test_video_outside_the_split(tmp_path):
  write_tiny(tmp_path, "sal")
  with pytest.raises(DataError, match="split_test.txt: video v_a is not"):
    layouts.open_source(tmp_path, "thumos14").load("test", "v_a")


def test_malformed_segment_names_the_file(tmp_path):
  write_tiny(tmp_path, "sal")
  gt = json.loads((tmp_path / "gt.json").read_text())
  gt["database"]["v_a"]["annotations"][0]["segment"] = ["1.0", "soon"]
  (tmp_path / "gt.json").write_text(json.dumps(gt))
  with pytest.raises(DataError, match="v_a: segment value 'soon'"):
    layouts.open_source(tmp_path, "thumos14")


def test_wtalc_feature_count_mismatch(tmp_path):
  write_tiny(tmp_path, "wtalc")
  path = tmp_path / "Thumos14reduced-I3D-JOINTFeatures.npy"
  np.save(path, npy.read_npy(path)[:2], allow_pickle=True)
  with pytest.raises(DataError, match="lists 3 videos"):
    layouts.open_source(tmp_path, "thumos14").load("train", "v_a")


def test_writer_refuses_a_video_in_two_splits(tmp_path):
  with pytest.raises(DataError, match="listed twice"):
    layouts.write_layout("sal", tmp_path, tiny_records(),
                         {"train": ["v_a", "v_b"], "test": ["v_c", "v_a"]},
                         TINY_CLASSES)


def test_writer_refuses_a_split_video_without_record(tmp_path):
  with pytest.raises(DataError, match="were not given"):
    layouts.write_layout("acmnet", tmp_path, tiny_records()[:2], TINY_SPLITS,
                         TINY_CLASSES)


@pytest.mark.slow
def test_the_readers_and_the_validator_import_numpy_only():
  code = ("import sys, salx.datasets.layouts, salx.datasets.validate; "
          "print(sorted({m.split('.')[0] for m in sys.modules} & "
          "{'tensorflow', 'tensorflow_datasets', 'absl', 'clu', 'jax', 'flax'}))")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT,
                        timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.strip() == "[]"
