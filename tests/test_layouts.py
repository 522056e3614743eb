"""The three feature layouts: same videos, same arrays; clear errors on bad input."""

import csv
import json
import math
import os
import pickle

import numpy as np
import pytest

from salx.datasets import classes
from salx.datasets import layouts
from salx.datasets import synthetic
from tests.conftest import data_file

# Short videos and few of them keep the three layouts of each benchmark fast.
SMALL = synthetic.SyntheticSpec(noise_smoothness=0.0)
MAX_VIDEOS = 12
MAX_SNIPPETS = 40

REAL = {
    "thumos14": dict(
        annotations="thumos14/gt.json", video_info="thumos14/video_info.csv",
        split_files={"train": "thumos14/split_train.txt",
                     "test": "thumos14/split_test.txt"},
        class_list=None),
    "activitynet12": dict(
        annotations="activitynet12/gt_from_wtalc.json", video_info=None,
        split_files={"train": "activitynet12/split_train.txt",
                     "test": "activitynet12/split_test.txt"},
        class_list=None),
    "activitynet13": dict(
        annotations="activitynet13/gt_from_bsn.json", video_info=None,
        split_files={"train": "activitynet13/acmnet_split_train.txt",
                     "test": "activitynet13/acmnet_split_test.txt"},
        class_list="activitynet13/action_name.csv"),
}


def _real_arguments(dataset):
  case = REAL[dataset]
  return dict(
      annotations=data_file(case["annotations"]),
      video_info=data_file(case["video_info"]) if case["video_info"] else None,
      split_files={k: data_file(v) for k, v in case["split_files"].items()},
      class_list=data_file(case["class_list"]) if case["class_list"] else None)


@pytest.fixture(scope="module", params=sorted(REAL))
def real_copies(request, tmp_path_factory):
  """(dataset, {layout: folder}) of a few real videos with synthetic features."""
  dataset = request.param
  arguments = _real_arguments(dataset)
  root = tmp_path_factory.mktemp(dataset)
  plans, class_names = synthetic.plan_from_annotations(
      dataset=dataset, max_videos=MAX_VIDEOS, max_snippets=MAX_SNIPPETS,
      annotations_file=arguments.pop("annotations"), **arguments)
  folders = {
      layout: synthetic.write_plans(root / layout, plans, class_names, SMALL, layout,
                                    dataset)
      for layout in layouts.LAYOUTS}
  return dataset, folders


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


def test_every_layout_gives_the_same_videos(real_copies):
  dataset, folders = real_copies
  sources = {layout: layouts.open_source(folder, dataset)
             for layout, folder in folders.items()}
  reference = sources["sal"]
  assert len(reference.video_names("train")) == MAX_VIDEOS
  assert len(reference.video_names("test")) == MAX_VIDEOS
  for layout, source in sources.items():
    assert source.layout == layout
    assert source.class_names == reference.class_names
    assert source.ground_truth() == reference.ground_truth()
    for split in layouts.SPLITS:
      assert source.video_names(split) == reference.video_names(split)
      for name in source.video_names(split):
        record = source.load(split, name)
        _assert_same_record(record, reference.load(split, name))
        assert record.features.shape == (source.num_snippets(split, name), 2048)
        assert record.labels.sum() >= 1 or split == "test"


def test_layout_is_detected(real_copies):
  _, folders = real_copies
  for layout, folder in folders.items():
    assert layouts.detect_layout(folder) == layout


def test_copies_keep_the_real_names_split_order_and_instances(real_copies):
  dataset, folders = real_copies
  arguments = _real_arguments(dataset)
  source = layouts.open_source(folders["wtalc"], dataset)
  real = layouts.read_ground_truth_json(arguments["annotations"])
  for split in layouts.SPLITS:
    listed = [n for n in layouts.read_split_file(arguments["split_files"][split])
              if n in real]
    names = source.video_names(split)
    # The copies are a subsequence of the real split list, in its order.
    positions = [listed.index(n) for n in names]
    assert positions == sorted(positions)
    for name in names:
      record = source.load(split, name)
      assert set(record.segment_labels) <= set(real[name].segment_labels)
      expected = classes.multi_hot(set(record.segment_labels), source.class_names)
      np.testing.assert_array_equal(record.labels, expected)


def test_real_lengths_are_floor_of_duration_times_25_over_16():
  arguments = _real_arguments("thumos14")
  plans, class_names = synthetic.plan_from_annotations(
      arguments["annotations"], "thumos14", arguments["video_info"],
      arguments["split_files"], max_videos=3)
  with open(arguments["video_info"], newline="") as f:
    durations = {r["video"]: float(r["duration_s"]) for r in csv.DictReader(f)}
  real = layouts.read_ground_truth_json(arguments["annotations"])
  assert class_names == classes.THUMOS14_CLASSES
  assert [p.name for p in plans if p.split == "train"] == [
      "video_validation_0000051", "video_validation_0000052",
      "video_validation_0000053"]
  for plan in plans:
    assert plan.length == math.floor(durations[plan.name] * 25 / 16)
    assert plan.duration == durations[plan.name]
    inside = real[plan.name].segments[:, 0] < plan.duration
    np.testing.assert_allclose(plan.segments[:, 0], real[plan.name].segments[inside, 0])


def test_thumos14_classes_are_the_sorted_gt_labels():
  real = layouts.read_ground_truth_json(data_file("thumos14/gt.json"))
  used = {label for a in real.values() for label in a.segment_labels}
  assert classes.THUMOS14_CLASSES == tuple(sorted(used))
  assert len(classes.THUMOS14_CLASSES) == 20


def test_activitynet12_default_order_is_the_wtalc_classlist():
  real = layouts.read_ground_truth_json(data_file("activitynet12/gt_from_wtalc.json"))
  used = {label for a in real.values() for label in a.segment_labels}
  derived = classes.default_class_names("activitynet12", used, "gt.json")
  assert derived == classes.read_class_list(data_file("activitynet12/classlist.txt"))


def test_activitynet13_order_comes_from_action_name_csv(real_copies):
  dataset, folders = real_copies
  if dataset != "activitynet13":
    pytest.skip("ActivityNet 1.3 only")
  expected = classes.read_class_list(data_file("activitynet13/action_name.csv"))
  assert expected[:2] == ("Applying sunscreen", "Arm wrestling")  # not alphabetical
  for folder in folders.values():
    assert layouts.open_source(folder, dataset).class_names == expected


def test_activitynet13_without_class_list_is_a_clear_error(tmp_path):
  _write_tiny(tmp_path, "acmnet")
  os.remove(tmp_path / "classlist.txt")
  with pytest.raises(layouts.DataError, match="action_name.csv"):
    layouts.open_source(tmp_path, "activitynet13")


def test_ground_truth_is_activitynet_json_with_train_and_test(real_copies):
  dataset, folders = real_copies
  truth = layouts.open_source(folders["acmnet"], dataset).ground_truth()
  database = truth["database"]
  assert len(database) == 2 * MAX_VIDEOS
  assert {v["subset"] for v in database.values()} == {"train", "test"}
  json.dumps(truth)   # Plain JSON types only.
  for video in database.values():
    assert video["duration"] > 0
    for instance in video["annotations"]:
      start, end = instance["segment"]
      assert isinstance(start, float) and 0 <= start < end <= video["duration"]


# ---------------------------------------------------------------------------
# Hand-made folders.

TINY_CLASSES = ("Jump", "Run")


def _record(name, length, labels, segments, duration=None, seed=0):
  rng = np.random.default_rng(seed)
  return layouts.VideoRecord(
      name=name, features=rng.standard_normal((length, 2048)).astype(np.float32),
      labels=classes.multi_hot(labels, TINY_CLASSES),
      segments=np.array(segments, np.float64).reshape(-1, 2),
      segment_labels=tuple(labels), duration=duration)


def _tiny_records():
  return [
      _record("v_a", 12, ["Jump", "Run"], [[0.5, 2.0], [3.0, 4.5]], 8.0, seed=1),
      _record("v_b", 9, ["Run"], [[1.0, 3.0]], None, seed=2),
      _record("v_c", 15, [], [], 10.0, seed=3),
  ]


TINY_SPLITS = {"train": ["v_a", "v_b"], "test": ["v_c"]}


def _write_tiny(folder, layout, dataset="thumos14"):
  records = _tiny_records()
  if layout == "wtalc":
    layouts.write_wtalc_layout(folder, records, TINY_SPLITS, TINY_CLASSES, dataset)
  elif layout == "sal":
    layouts.write_sal_layout(folder, records, TINY_SPLITS, TINY_CLASSES)
  else:
    layouts.write_acmnet_layout(folder, records, TINY_SPLITS, TINY_CLASSES)
  return records


@pytest.mark.parametrize("layout", layouts.LAYOUTS)
@pytest.mark.parametrize("dataset", layouts.DATASETS)
def test_hand_made_records_round_trip(tmp_path, layout, dataset):
  records = _write_tiny(tmp_path, layout, dataset)
  source = layouts.open_source(tmp_path, dataset)
  assert source.layout == layout
  assert source.class_names == TINY_CLASSES
  assert source.video_names("train") == ["v_a", "v_b"]
  assert source.video_names("test") == ["v_c"]
  split_of = {"v_a": "train", "v_b": "train", "v_c": "test"}
  for record in records:
    loaded = source.load(split_of[record.name], record.name)
    _assert_same_record(loaded, record)
    assert source.num_snippets(split_of[record.name], record.name) == record.num_snippets
  assert source.ground_truth()["database"]["v_a"] == {
      "subset": "train", "duration": 8.0,
      "annotations": [{"label": "Jump", "segment": [0.5, 2.0]},
                      {"label": "Run", "segment": [3.0, 4.5]}]}
  assert "duration" not in source.ground_truth()["database"]["v_b"]


def test_rgb_dims_come_first(tmp_path):
  records = _write_tiny(tmp_path, "sal")
  rgb = np.load(tmp_path / "features" / "train" / "rgb" / "v_a.npy")
  flow = np.load(tmp_path / "features" / "train" / "flow" / "v_a.npy")
  np.testing.assert_array_equal(rgb, records[0].features[:, :1024])
  np.testing.assert_array_equal(flow, records[0].features[:, 1024:])


def test_string_segments_and_missing_duration_are_read(tmp_path):
  real = json.loads(data_file("thumos14/gt.json").read_text())["database"]
  name = "video_validation_0000051"
  assert isinstance(real[name]["annotations"][0]["segment"][0], str)
  _write_tiny(tmp_path, "sal")
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
  record = _record("v_a", 5, [], [], 4.0)
  record = layouts.VideoRecord(
      name="v_a", features=record.features, labels=np.array([0, 1], np.float32),
      segments=record.segments, segment_labels=(), duration=4.0)
  layouts.write_wtalc_layout(tmp_path, [record], {"train": ["v_a"]}, TINY_CLASSES)
  loaded = layouts.open_source(tmp_path, "thumos14").load("train", "v_a")
  np.testing.assert_array_equal(loaded.labels, [0, 1])
  with pytest.raises(layouts.DataError, match="derives video labels"):
    layouts.write_sal_layout(tmp_path / "sal", [record], {"train": ["v_a"]},
                             TINY_CLASSES)


def test_wtalc_reads_features_only_when_needed(tmp_path):
  _write_tiny(tmp_path, "wtalc")
  source = layouts.open_source(tmp_path, "thumos14")
  assert source.video_names("train") == ["v_a", "v_b"]
  assert not source.features_loaded
  source.load("train", "v_a")
  assert source.features_loaded


def test_wtalc_activitynet_names_come_from_urls(tmp_path):
  _write_tiny(tmp_path, "wtalc", "activitynet12")
  annotations = tmp_path / "ActivityNet1.2-Annotations"
  names = layouts.read_npy(annotations / "videoname.npy")
  assert [n.decode() for n in names] == ["video_0", "video_1", "video_2"]
  subsets = layouts.read_npy(annotations / "subset.npy")
  assert [s.decode() for s in subsets] == ["training", "training", "validation"]
  assert layouts.open_source(tmp_path, "activitynet12").video_names("test") == ["v_c"]


# ---------------------------------------------------------------------------
# Restricted unpickling.


def _npy_with_pickle(path, payload: bytes, shape):
  with open(path, "wb") as f:
    np.lib.format.write_array_header_1_0(
        f, {"descr": "|O", "fortran_order": False, "shape": shape})
    f.write(payload)


class _RemovesAFile:
  def __init__(self, path):
    self.path = path

  def __reduce__(self):
    return (os.remove, (self.path,))


def test_pickles_cannot_run_code(tmp_path):
  sentinel = tmp_path / "sentinel"
  sentinel.write_text("still here")
  evil = np.empty(1, dtype=object)
  evil[0] = _RemovesAFile(str(sentinel))
  path = tmp_path / "segments.npy"
  np.save(path, evil, allow_pickle=True)
  with pytest.raises(layouts.DataError) as error:
    layouts.read_npy(path)
  assert str(path) in str(error.value)
  assert "remove" in str(error.value)
  assert sentinel.exists()


def test_python2_style_pickles_are_read(tmp_path):
  values = np.empty(2, dtype=object)
  values[0] = [b"BaseballPitch", "Diving"]
  values[1] = [[1.5, 2.5], np.arange(3, dtype=np.float32)]
  path = tmp_path / "labels.npy"
  payload = pickle.dumps(values, protocol=2)
  assert b"_codecs" in payload   # bytes go through _codecs.encode in protocol 2
  _npy_with_pickle(path, payload, (2,))
  loaded = layouts.read_npy(path)
  assert loaded[0] == [b"BaseballPitch", "Diving"]
  np.testing.assert_array_equal(loaded[1][1], np.arange(3, dtype=np.float32))


def test_truncated_pickle_is_a_clear_error(tmp_path):
  values = np.empty(1, dtype=object)
  values[0] = [1.0, 2.0]
  path = tmp_path / "duration.npy"
  _npy_with_pickle(path, pickle.dumps(values)[:-5], (1,))
  with pytest.raises(layouts.DataError, match="duration.npy"):
    layouts.read_npy(path)


# ---------------------------------------------------------------------------
# Reader errors.


def test_missing_data_dir_names_layout_and_synthetic_config(tmp_path):
  missing = tmp_path / "nowhere"
  with pytest.raises(layouts.DataError) as error:
    layouts.open_source(missing, "thumos14", layout="sal")
  message = str(error.value)
  assert str(missing) in message
  assert "'sal' layout" in message
  assert "--config=configs/synthetic.py" in message
  with pytest.raises(layouts.DataError, match="features/"):
    layouts.open_source(missing, "thumos14")


def test_folder_of_no_layout_is_a_clear_error(tmp_path):
  (tmp_path / "notes.txt").write_text("hello")
  with pytest.raises(layouts.DataError, match="matches none of the feature layouts"):
    layouts.detect_layout(tmp_path)


def test_unknown_dataset_or_layout(tmp_path):
  with pytest.raises(ValueError, match="unknown dataset"):
    layouts.open_source(tmp_path, "thumos15")
  with pytest.raises(ValueError, match="unknown layout"):
    layouts.open_source(tmp_path, "thumos14", layout="bsn")


@pytest.mark.parametrize("layout", ["sal", "acmnet"])
def test_split_video_without_feature_file(tmp_path, layout):
  _write_tiny(tmp_path, layout)
  source = layouts.open_source(tmp_path, "thumos14")
  missing = source.feature_file("train", "v_b")
  os.remove(missing)
  for read in (source.load, source.num_snippets):
    with pytest.raises(layouts.DataError) as error:
      read("train", "v_b")
    assert missing in str(error.value) and "no feature file" in str(error.value)
    assert error.value.path == missing


def test_rgb_flow_length_mismatch(tmp_path):
  _write_tiny(tmp_path, "sal")
  flow = tmp_path / "features" / "train" / "flow" / "v_a.npy"
  np.save(flow, np.zeros((11, 1024), np.float32))
  source = layouts.open_source(tmp_path, "thumos14")
  for read in (source.load, source.num_snippets):
    with pytest.raises(layouts.DataError, match="11 flow snippets but 12 RGB") as error:
      read("train", "v_a")
    assert str(flow) in str(error.value)


@pytest.mark.parametrize("layout,relative,shape", [
    ("sal", "features/test/rgb/v_c.npy", (15, 1000)),
    ("acmnet", "test/v_c.npy", (15, 1024)),
    ("acmnet", "test/v_c.npy", (15,)),
])
def test_wrong_feature_dim(tmp_path, layout, relative, shape):
  _write_tiny(tmp_path, layout)
  np.save(tmp_path / relative, np.zeros(shape, np.float32))
  source = layouts.open_source(tmp_path, "thumos14")
  with pytest.raises(layouts.DataError, match="expected") as error:
    source.load("test", "v_c")
  assert str(tmp_path / relative) in str(error.value)


def test_wtalc_wrong_feature_dim(tmp_path):
  _write_tiny(tmp_path, "wtalc")
  path = tmp_path / "Thumos14reduced-I3D-JOINTFeatures.npy"
  features = layouts.read_npy(path)
  features[1] = features[1][:, :2000]
  np.save(path, features, allow_pickle=True)
  source = layouts.open_source(tmp_path, "thumos14")
  source.load("train", "v_a")
  with pytest.raises(layouts.DataError, match=r"shape \(9, 2000\)"):
    source.load("train", "v_b")


def test_label_outside_the_class_list(tmp_path):
  _write_tiny(tmp_path, "sal")
  gt = json.loads((tmp_path / "gt.json").read_text())
  gt["database"]["v_b"]["annotations"][0]["label"] = "Swim"
  (tmp_path / "gt.json").write_text(json.dumps(gt))
  source = layouts.open_source(tmp_path, "thumos14")
  source.load("train", "v_a")
  with pytest.raises(layouts.DataError, match="'Swim'") as error:
    source.load("train", "v_b")
  assert str(tmp_path / "gt.json") in str(error.value)


def test_split_video_without_annotation(tmp_path):
  _write_tiny(tmp_path, "acmnet")
  gt = json.loads((tmp_path / "gt.json").read_text())
  del gt["database"]["v_b"]
  (tmp_path / "gt.json").write_text(json.dumps(gt))
  with pytest.raises(layouts.DataError, match="no annotation for video v_b"):
    layouts.open_source(tmp_path, "thumos14").load("train", "v_b")


def test_video_outside_the_split(tmp_path):
  _write_tiny(tmp_path, "sal")
  with pytest.raises(layouts.DataError, match="split_test.txt: video v_a is not"):
    layouts.open_source(tmp_path, "thumos14").load("test", "v_a")


def test_malformed_segment_names_the_file(tmp_path):
  _write_tiny(tmp_path, "sal")
  gt = json.loads((tmp_path / "gt.json").read_text())
  gt["database"]["v_a"]["annotations"][0]["segment"] = ["1.0", "soon"]
  (tmp_path / "gt.json").write_text(json.dumps(gt))
  with pytest.raises(layouts.DataError, match="v_a: segment value 'soon'"):
    layouts.open_source(tmp_path, "thumos14")


def test_wtalc_feature_count_mismatch(tmp_path):
  _write_tiny(tmp_path, "wtalc")
  path = tmp_path / "Thumos14reduced-I3D-JOINTFeatures.npy"
  np.save(path, layouts.read_npy(path)[:2], allow_pickle=True)
  with pytest.raises(layouts.DataError, match="lists 3 videos"):
    layouts.open_source(tmp_path, "thumos14").load("train", "v_a")


def test_writer_refuses_a_video_in_two_splits(tmp_path):
  with pytest.raises(layouts.DataError, match="listed twice"):
    layouts.write_sal_layout(tmp_path, _tiny_records(),
                             {"train": ["v_a", "v_b"], "test": ["v_c", "v_a"]},
                             TINY_CLASSES)


def test_writer_refuses_a_split_video_without_record(tmp_path):
  with pytest.raises(layouts.DataError, match="were not given"):
    layouts.write_acmnet_layout(tmp_path, _tiny_records()[:2],
                                TINY_SPLITS, TINY_CLASSES)
