"""The dataset validator finds each planted fault, with its file."""

import json
import os

import numpy as np
import pytest

from salx.datasets import check
from salx.datasets import layouts
from salx.datasets import synthetic

SPEC = synthetic.SyntheticSpec(num_classes=3, num_train=4, num_test=2, min_length=20,
                               max_length=30)
TRAIN_VIDEO = "synthetic_train_0001"
TEST_VIDEO = "synthetic_test_0000"


@pytest.fixture
def folder(tmp_path):
  """A clean small dataset in the 'sal' layout."""
  plans, class_names = synthetic.plan_synthetic_videos(SPEC)
  return synthetic.write_plans(tmp_path / "data", plans, class_names, SPEC, "sal")


def _problems(folder, layout="auto"):
  return check.check_dataset(folder, "thumos14", layout)


def _only_problem(folder, layout="auto"):
  problems = _problems(folder, layout)
  assert len(problems) == 1, problems
  return problems[0]


def _rgb(folder, split="train", name=TRAIN_VIDEO):
  return os.path.join(folder, "features", split, "rgb", f"{name}.npy")


def _flow(folder, split="train", name=TRAIN_VIDEO):
  return os.path.join(folder, "features", split, "flow", f"{name}.npy")


def _edit_gt(folder, edit):
  path = os.path.join(folder, "gt.json")
  with open(path) as f:
    gt = json.load(f)
  edit(gt["database"])
  with open(path, "w") as f:
    json.dump(gt, f)
  return path


def test_clean_dataset_has_no_problems(folder, capsys):
  assert _problems(folder) == []
  assert check.main(["--dataset", "thumos14", "--data_dir", folder]) == 0
  assert "no problems in 4 train / 2 test videos" in capsys.readouterr().out


def test_missing_feature_file(folder):
  os.remove(_flow(folder))
  problem = _only_problem(folder)
  assert problem.file == _flow(folder)
  assert f"no feature file for video {TRAIN_VIDEO}" in problem.message


def test_unreadable_feature_file(folder):
  with open(_rgb(folder, "test", TEST_VIDEO), "wb") as f:
    f.write(b"this is not an npy file")
  problem = _only_problem(folder)
  assert problem.file == _rgb(folder, "test", TEST_VIDEO)
  assert "not a readable .npy file" in problem.message


def test_truncated_feature_file(folder):
  path = _rgb(folder)
  with open(path, "rb") as f:
    content = f.read()
  with open(path, "wb") as f:
    f.write(content[:len(content) // 2])
  problem = _only_problem(folder)
  assert problem.file == path and "unreadable" in problem.message


@pytest.mark.parametrize("value,expected", [(np.nan, "3 NaN and 0 infinite"),
                                            (np.inf, "0 NaN and 3 infinite")])
def test_non_finite_values(folder, value, expected):
  features = np.load(_flow(folder))
  features[2, :3] = value
  np.save(_flow(folder), features)
  problem = _only_problem(folder)
  assert problem.file == _flow(folder)
  assert f"video {TRAIN_VIDEO} has {expected} feature values" in problem.message


def test_wrong_feature_dims(folder):
  length = np.load(_rgb(folder)).shape[0]
  np.save(_rgb(folder), np.zeros((length, 1000), np.float32))
  problem = _only_problem(folder)
  assert problem.file == _rgb(folder)
  assert "expected [L, 1024]" in problem.message


def test_rgb_flow_length_mismatch(folder):
  np.save(_flow(folder), np.load(_flow(folder))[:-3])
  problem = _only_problem(folder)
  assert problem.file == _flow(folder)
  assert "flow snippets but" in problem.message


def test_video_in_a_split_without_annotations(folder):
  gt = _edit_gt(folder, lambda database: database.pop(TEST_VIDEO))
  problem = _only_problem(folder)
  assert problem.file == gt
  assert f"video {TEST_VIDEO} of the test split" in problem.message
  assert "has no annotation entry" in problem.message


def test_label_outside_the_class_list(folder):
  def relabel(database):
    database[TRAIN_VIDEO]["annotations"][0]["label"] = "Juggling"
  gt = _edit_gt(folder, relabel)
  problem = _only_problem(folder)
  assert problem.file == gt
  assert f"video {TRAIN_VIDEO} has label 'Juggling'" in problem.message


def test_training_video_without_labels(folder):
  def unlabel(database):
    database[TRAIN_VIDEO]["annotations"] = []
  _edit_gt(folder, unlabel)
  assert "has no labels" in _only_problem(folder).message


def test_duplicate_id_in_a_split_file(folder):
  path = os.path.join(folder, "split_train.txt")
  with open(path, "a") as f:
    f.write(f"{TRAIN_VIDEO}\n")
  problem = _only_problem(folder)
  assert problem.file == path
  assert f"video {TRAIN_VIDEO} is listed 2 times" in problem.message


def test_video_in_both_splits(folder):
  with open(os.path.join(folder, "split_test.txt"), "a") as f:
    f.write(f"{TRAIN_VIDEO}\n")
  messages = [p.message for p in _problems(folder)]
  assert f"video {TRAIN_VIDEO} is in both the train and the test split" in messages


def test_duplicate_key_in_gt_json(folder):
  path = os.path.join(folder, "gt.json")
  with open(path) as f:
    text = f.read()
  entry = json.dumps({"subset": "test", "annotations": []})
  with open(path, "w") as f:
    f.write(text.replace('"database": {',
                         f'"database": {{"{TEST_VIDEO}": {entry}, ', 1))
  problem = _only_problem(folder)
  assert problem.file == path
  assert f"key '{TEST_VIDEO}' appears more than once" in problem.message


def test_segment_beyond_the_duration(folder):
  def stretch(database):
    video = database[TRAIN_VIDEO]
    video["annotations"][-1]["segment"][1] = video["duration"] + 5.0
  gt = _edit_gt(folder, stretch)
  problem = _only_problem(folder)
  assert problem.file == gt
  assert f"video {TRAIN_VIDEO}" in problem.message
  assert "ends after the video's duration" in problem.message


def test_segment_within_tolerance_of_the_duration_is_fine(folder):
  def stretch(database):
    video = database[TRAIN_VIDEO]
    video["annotations"][-1]["segment"][1] = video["duration"] + 0.5
  _edit_gt(folder, stretch)
  assert _problems(folder) == []


def test_inverted_segment(folder):
  def invert(database):
    segment = database[TRAIN_VIDEO]["annotations"][0]["segment"]
    segment.reverse()
  _edit_gt(folder, invert)
  assert "does not end after it starts" in _only_problem(folder).message


def test_every_fault_is_reported_once(folder):
  os.remove(_rgb(folder))
  features = np.load(_flow(folder, "test", TEST_VIDEO))
  features[0, 0] = np.nan
  np.save(_flow(folder, "test", TEST_VIDEO), features)
  _edit_gt(folder, lambda database: database.pop("synthetic_train_0002"))
  problems = _problems(folder)
  assert len(problems) == 3
  assert {p.file for p in problems} == {
      _rgb(folder), _flow(folder, "test", TEST_VIDEO), os.path.join(folder, "gt.json")}


def test_missing_annotation_file_is_one_problem(folder, capsys):
  os.remove(os.path.join(folder, "gt.json"))
  problem = _only_problem(folder)
  assert problem.file == os.path.join(folder, "gt.json")
  assert "not found" in problem.message
  assert check.main(["--dataset", "thumos14", "--data_dir", folder]) == 1


def test_wtalc_fault_in_the_single_pickle(tmp_path):
  plans, class_names = synthetic.plan_synthetic_videos(SPEC)
  folder = synthetic.write_plans(tmp_path / "w", plans, class_names, SPEC, "wtalc")
  path = os.path.join(folder, "Thumos14reduced-I3D-JOINTFeatures.npy")
  features = layouts.read_npy(path)
  features[1][4, 7] = np.inf
  np.save(path, features, allow_pickle=True)
  assert _problems(folder) == [
      check.Problem(path, f"video {TRAIN_VIDEO} has 0 NaN and 1 infinite feature values")]


def test_acmnet_missing_file(tmp_path):
  plans, class_names = synthetic.plan_synthetic_videos(SPEC)
  folder = synthetic.write_plans(tmp_path / "a", plans, class_names, SPEC, "acmnet")
  missing = os.path.join(folder, "test", f"{TEST_VIDEO}.npy")
  os.remove(missing)
  assert _only_problem(folder, "acmnet").file == missing


def test_cli_prints_one_line_per_problem_and_exits_1(folder, capsys):
  os.remove(_rgb(folder))
  os.remove(_rgb(folder, "test", TEST_VIDEO))
  assert check.main(["--dataset", "thumos14", "--data_dir", folder]) == 1
  lines = capsys.readouterr().out.strip().splitlines()
  assert len(lines) == 3
  assert lines[0].startswith(_rgb(folder) + ": ")
  assert lines[1].startswith(_rgb(folder, "test", TEST_VIDEO) + ": ")
  assert lines[2].startswith("2 problems in 4 train / 2 test videos")


def test_cli_unusable_arguments_exit_2(tmp_path, capsys):
  assert check.main(["--dataset", "thumos14", "--data_dir",
                     str(tmp_path / "missing")]) == 2
  assert "does not exist" in capsys.readouterr().err
  with pytest.raises(SystemExit) as exit_info:
    check.main(["--dataset", "thumos15", "--data_dir", str(tmp_path)])
  assert exit_info.value.code == 2
  with pytest.raises(SystemExit) as exit_info:
    check.main(["--data_dir", str(tmp_path)])
  assert exit_info.value.code == 2
