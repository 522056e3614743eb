"""Clear errors before any training: no or a broken data folder, a bad config.

Each problem names the file at fault, the run stops with exit status 2 before
training, and the workdir is left untouched.
"""

import json
import pathlib
import shutil
import subprocess
import sys

import numpy as np
import pytest

import configs.thumos

from salx import main
from salx.datasets import synthetic

ROOT = pathlib.Path(__file__).resolve().parents[1]
SPEC = synthetic.SyntheticSpec(num_classes=3, num_train=4, num_test=2, min_length=24,
                               max_length=40, feature_dim=64)


def thumos_config(data_dir, **overrides):
  config = configs.thumos.get_config()
  config.update(dict(data_dir=str(data_dir), feature_dim=64, hidden_dim=8,
                     num_segments=32, **overrides))
  return config


@pytest.fixture(scope="module")
def clean_data(tmp_path_factory):
  return synthetic.make_synthetic_dataset(tmp_path_factory.mktemp("data") / "clean",
                                          SPEC)


@pytest.fixture
def data(clean_data, tmp_path):
  """A fresh copy of the clean data folder, to break."""
  return pathlib.Path(shutil.copytree(clean_data, tmp_path / "data"))


def _run(config, workdir, capsys):
  status = main.run(config, str(workdir))
  return status, capsys.readouterr().err


def _first_video(data_dir, split):
  return (data_dir / f"split_{split}.txt").read_text().split()[0]


def test_cli_without_data_dir_explains_the_layouts_and_the_demo(tmp_path):
  workdir = tmp_path / "run"
  proc = subprocess.run(
      [sys.executable, "-m", "salx.main", "--config=configs/thumos.py",
       f"--workdir={workdir}"], cwd=ROOT, capture_output=True, text=True, timeout=120,
      env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)})
  assert proc.returncode == main.EXIT_BAD_INPUT, proc.stderr[-2000:]
  assert "--config.data_dir=DIR" in proc.stderr
  assert "'sal'" in proc.stderr and "'wtalc'" in proc.stderr and "'acmnet'" in proc.stderr
  assert "--config=configs/synthetic.py" in proc.stderr
  assert not workdir.exists()


def test_missing_data_folder(tmp_path, capsys):
  missing = tmp_path / "nowhere"
  status, err = _run(thumos_config(missing), tmp_path / "run", capsys)
  assert status == main.EXIT_BAD_INPUT
  assert f"{missing} does not exist" in err and "configs/synthetic.py" in err


def test_folder_in_no_layout(tmp_path, capsys):
  (tmp_path / "empty").mkdir()
  status, err = _run(thumos_config(tmp_path / "empty"), tmp_path / "run", capsys)
  assert status == main.EXIT_BAD_INPUT
  assert "matches none of the feature layouts" in err and "synthetic" in err


def _break_missing_features(data):
  with open(data / "split_train.txt", "a") as f:
    f.write("ghost_video\n")
  return data / "features" / "train" / "rgb" / "ghost_video.npy", "no feature file"


def _break_flow_length(data):
  name = _first_video(data, "train")
  path = data / "features" / "train" / "flow" / f"{name}.npy"
  np.save(path, np.load(path)[:-3])
  return path, "flow snippets but"


def _break_feature_dim(data):
  name = _first_video(data, "test")
  path = data / "features" / "test" / "rgb" / f"{name}.npy"
  np.save(path, np.load(path)[:, :30])
  return path, "expected [L, 32]"


def _break_label(data):
  gt = json.loads((data / "gt.json").read_text())
  name = _first_video(data, "test")
  gt["database"][name]["annotations"][0]["label"] = "Skydiving"
  (data / "gt.json").write_text(json.dumps(gt))
  return data / "gt.json", "'Skydiving'"


def _break_values(data):
  name = _first_video(data, "train")
  path = data / "features" / "train" / "rgb" / f"{name}.npy"
  features = np.load(path)
  features[3, 5] = np.nan
  np.save(path, features)
  return path, "NaN"


@pytest.mark.parametrize("check_data,breaker", [
    ("full", _break_missing_features), ("quick", _break_missing_features),
    ("full", _break_flow_length), ("quick", _break_flow_length),
    ("full", _break_feature_dim), ("quick", _break_feature_dim),
    ("full", _break_label), ("quick", _break_label),
    ("full", _break_values)])
def test_broken_data_stops_before_training_naming_the_file(data, tmp_path, capsys,
                                                          check_data, breaker):
  path, problem = breaker(data)
  workdir = tmp_path / "run"
  status, err = _run(thumos_config(data, check_data=check_data), workdir, capsys)
  assert status == main.EXIT_BAD_INPUT
  assert "training did not start" in err
  line = next((l for l in err.splitlines() if str(path) in l), None)
  assert line is not None and problem in line, err
  assert not workdir.exists()


def test_class_count_that_disagrees_with_the_data(data, tmp_path, capsys):
  status, err = _run(thumos_config(data, num_classes=20), tmp_path / "run", capsys)
  assert status == main.EXIT_BAD_INPUT
  assert "num_classes is 20" in err and "3 classes" in err


def test_bad_config_field(data, tmp_path, capsys):
  status, err = _run(thumos_config(data, compute_dtype="float8"), tmp_path / "run",
                     capsys)
  assert status == main.EXIT_BAD_INPUT and "compute_dtype" in err
