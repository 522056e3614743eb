"""The dataset validator finds each planted fault, with its file; its command's exit
status says whether the folder is clean (0), has problems (1) or is unusable (2)."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest

from salx.datasets import check
from salx.datasets import layouts
from salx.datasets import npy
from salx.datasets import validate
from tests.conftest import ROOT
from tests.datasets.layout_records import record

CLASSES = ("Jump", "Run", "Swim")
TRAIN_VIDEO = "train_1"
TEST_VIDEO = "test_0"


def _records():
  """4 train and 2 test videos of 20-30 snippets (0.64 s each), one to two instances."""
  records = []
  for i, name in enumerate(["train_0", "train_1", "train_2", "train_3",
                            "test_0", "test_1"]):
    length = 20 + 3 * i
    labels = [CLASSES[i % 3]] + ([CLASSES[(i + 1) % 3]] if i % 2 else [])
    segments = [[1.0 + 2 * j, 3.0 + 2 * j] for j in range(len(labels))]
    records.append(record(name, length, labels, segments, duration=length * 0.64,
                          seed=i, class_names=CLASSES))
  return records


SPLITS = {"train": ["train_0", "train_1", "train_2", "train_3"],
          "test": ["test_0", "test_1"]}


def _write(folder, layout):
  return layouts.write_layout(layout, folder, _records(), SPLITS, CLASSES)


@pytest.fixture
def folder(tmp_path):
  """A clean small dataset in the 'sal' layout."""
  return _write(tmp_path / "data", "sal")


def _problems(folder, layout="auto"):
  return validate.check_dataset(folder, "thumos14", layout)


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


@pytest.mark.slow
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
  assert problem.file == path
  assert problem.message.startswith(
      "truncated or damaged .npy file: its header declares")


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
  _edit_gt(folder, lambda database: database.pop("train_2"))
  problems = _problems(folder)
  assert len(problems) == 3
  assert {p.file for p in problems} == {
      _rgb(folder), _flow(folder, "test", TEST_VIDEO), os.path.join(folder, "gt.json")}


@pytest.mark.slow
def test_missing_annotation_file_is_one_problem(folder, capsys):
  os.remove(os.path.join(folder, "gt.json"))
  problem = _only_problem(folder)
  assert problem.file == os.path.join(folder, "gt.json")
  assert "not found" in problem.message
  assert check.main(["--dataset", "thumos14", "--data_dir", folder]) == 1


def test_wtalc_fault_in_the_single_pickle(tmp_path):
  folder = _write(tmp_path / "w", "wtalc")
  path = os.path.join(folder, "Thumos14reduced-I3D-JOINTFeatures.npy")
  features = npy.read_npy(path)
  features[1][4, 7] = np.inf
  np.save(path, features, allow_pickle=True)
  assert _problems(folder) == [
      validate.Problem(path, f"video {TRAIN_VIDEO} has 0 NaN and 1 infinite feature "
                       "values")]


def test_acmnet_missing_file(tmp_path):
  folder = _write(tmp_path / "a", "acmnet")
  missing = os.path.join(folder, "test", f"{TEST_VIDEO}.npy")
  os.remove(missing)
  assert _only_problem(folder, "acmnet").file == missing


@pytest.mark.slow
def test_cli_prints_one_line_per_problem_and_exits_1(folder, capsys):
  os.remove(_rgb(folder))
  os.remove(_rgb(folder, "test", TEST_VIDEO))
  assert check.main(["--dataset", "thumos14", "--data_dir", folder]) == 1
  lines = capsys.readouterr().out.strip().splitlines()
  assert len(lines) == 3
  assert lines[0].startswith(_rgb(folder) + ": ")
  assert lines[1].startswith(_rgb(folder, "test", TEST_VIDEO) + ": ")
  assert lines[2].startswith("2 problems in 4 train / 2 test videos")


def _command(*flags):
  """(exit status, stdout, stderr) of `python -m salx.datasets.check FLAGS`."""
  proc = subprocess.run([sys.executable, "-m", "salx.datasets.check", *flags],
                        cwd=ROOT, capture_output=True, text=True, timeout=120,
                        env={**os.environ, "PYTHONPATH": str(ROOT)})
  return proc.returncode, proc.stdout, proc.stderr


def test_command_help_exits_0():
  status, out, err = _command("--help")
  assert status == 0, err
  for flag in ("--dataset", "--data_dir", "--layout", "--duration_tolerance"):
    assert flag in out
  assert "Exit status" in out and "thumos14|activitynet12|activitynet13" in out


@pytest.mark.parametrize("make", ["missing", "empty", "unrelated"])
def test_command_on_a_folder_of_no_layout_exits_2_with_one_line(tmp_path, make):
  data_dir = tmp_path / "data"
  if make != "missing":
    data_dir.mkdir()
  if make == "unrelated":
    (data_dir / "notes.txt").write_text("hello")
  status, out, err = _command("--dataset", "thumos14", "--data_dir", str(data_dir))
  assert status == 2
  assert out == ""
  assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
  assert err.startswith(f"{check.PROG}: error: ")
  assert str(data_dir) in err
  assert ("does not exist" if make == "missing"
          else "matches none of the feature layouts") in err


def test_command_clean_folder_exits_0(folder):
  status, out, err = _command("--dataset", "thumos14", "--data_dir", folder)
  assert (status, err) == (0, "")
  assert out.startswith("no problems in 4 train / 2 test videos of thumos14 in the sal "
                        "layout")


@pytest.mark.parametrize("flags,message", [
    (["--dataset", "thumos15", "--data_dir", "x"], "--dataset=thumos15"),
    (["--data_dir", "x"], "--dataset is required"),
    (["--dataset", "thumos14"], "--data_dir is required"),
    (["--dataset", "thumos14", "--data_dir", "x", "--layout", "bsn"], "--layout=bsn"),
    (["--dataset", "thumos14", "--data_dir", "x", "--duration_tolerance", "soon"],
     "--duration_tolerance=soon"),
    (["--dataset", "thumos14", "--data_dir", "x", "--verbose"], "verbose"),
    (["--dataset", "thumos14", "--data_dir", "x", "extra"], "unexpected arguments"),
])
def test_bad_flags_exit_2_with_one_line(capsys, flags, message):
  assert check.main(flags) == 2
  captured = capsys.readouterr()
  assert captured.out == ""
  assert len(captured.err.strip().splitlines()) == 1
  assert captured.err.startswith(f"{check.PROG}: error: ") and message in captured.err


@pytest.mark.slow
def test_given_layout_of_a_missing_folder_exits_2(tmp_path, capsys):
  missing = tmp_path / "nowhere"
  assert check.main(["--dataset", "thumos14", "--data_dir", str(missing),
                     "--layout", "acmnet"]) == 2
  assert f"data directory {missing} does not exist" in capsys.readouterr().err


@pytest.mark.slow
def test_duration_tolerance_flag_is_used(folder, capsys):
  def stretch(database):
    video = database[TRAIN_VIDEO]
    video["annotations"][-1]["segment"][1] = video["duration"] + 0.5
  _edit_gt(folder, stretch)
  assert check.main(["--dataset", "thumos14", "--data_dir", folder]) == 0
  assert check.main(["--dataset", "thumos14", "--data_dir", folder,
                     "--duration_tolerance", "0.1"]) == 1
  assert "ends after the video's duration" in capsys.readouterr().out
