"""Clear errors before any training: no or a broken data folder, a bad config.

Each problem names the file at fault, the run stops with exit status 2 before
training, and the workdir is left untouched.
"""

import json
import pathlib
import shutil
import subprocess
import sys
import re

import numpy as np
import pytest

import configs.thumos

from salx import main
from salx.datasets import synthetic

ROOT = pathlib.Path(__file__).resolve().parents[2]
SPEC = synthetic.SyntheticSpec(num_classes=3, num_train=4, num_test=2, min_length=24,
                               max_length=40, feature_dim=64)


def thumos_config(data_dir, **overrides):
  config = configs.thumos.get_config()
  config.update(dict(data_dir=str(data_dir), feature_dim=64, **overrides))
  config.sal.update(hidden_dim=8, num_segments=32)
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


@pytest.mark.slow
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


def _cli(tmp_path, *args, timeout=120):
  """`python -m salx.main` on the demo config; (exit code, stderr)."""
  proc = subprocess.run(
      [sys.executable, "-m", "salx.main", "--config=configs/synthetic.py",
       f"--workdir={tmp_path / 'run'}", *args], cwd=ROOT, capture_output=True,
      text=True, timeout=timeout,
      env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT), "HOME": str(tmp_path)})
  return proc.returncode, proc.stderr


@pytest.mark.slow
@pytest.mark.parametrize("args,message", [
    (["--config.no_such_field=1"], "--config.no_such_field: the config has no field"),
    (["--config.sal.no_such=1"], "--config.sal.no_such: the config has no field"),
    (["--config.sal.learning_rate=fast"], "--config.sal.learning_rate=fast"),
    (["--config.sal.learning_rate=-0.1"], "config.sal.learning_rate must be positive"),
    (["--config.sal.num_segments=16"], "smaller than the largest top-k"),
    (["--config.sal.nms_thresh=0"], "config.sal.nms_thresh must be in (0, 1]"),
    (["--config=configs/no_such_config.py"], "cannot load the config file"),
    (["--mode=fly"], "bad flag"),
])
def test_config_mistakes_are_one_line_and_exit_2_before_the_workdir(tmp_path, args,
                                                                     message):
  code, err = _cli(tmp_path, *args)
  assert code == main.EXIT_BAD_INPUT, err[-2000:]
  assert message in err and "Traceback" not in err
  assert len(err.strip().splitlines()) == 1, err
  assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_a_config_file_that_does_not_load_is_one_line(tmp_path):
  bad = tmp_path / "bad_config.py"
  bad.write_text("def get_config(:\n")
  code, err = _cli(tmp_path, f"--config={bad}")
  assert code == main.EXIT_BAD_INPUT and "SyntaxError" in err and "bad_config.py" in err
  assert "Traceback" not in err and len(err.strip().splitlines()) == 1


@pytest.mark.slow
def test_help_exits_0(tmp_path):
  proc = subprocess.run([sys.executable, "-m", "salx.main", "--help"], cwd=ROOT,
                        capture_output=True, text=True, timeout=120)
  assert proc.returncode == 0 and "--workdir" in proc.stdout


def test_batch_larger_than_the_training_split(data, tmp_path, capsys):
  status, err = _run(thumos_config(data, batch_size=8, check_data="none"),
                     tmp_path / "run", capsys)
  assert status == main.EXIT_BAD_INPUT
  assert "config.batch_size = 8 is larger than the 4 training videos" in err
  assert not (tmp_path / "run").exists()


@pytest.mark.slow
def test_evaluate_without_a_run_creates_nothing(tmp_path):
  code, err = _cli(tmp_path, "--mode=evaluate")
  assert code == main.EXIT_BAD_INPUT and "no best checkpoint to evaluate" in err
  assert len(err.strip().splitlines()) == 1 and not (tmp_path / "run").exists()


@pytest.mark.slow
def test_an_error_in_the_training_loop_exits_promptly_with_one_line(data, tmp_path):
  name = _first_video(data, "train")
  path = data / "features" / "train" / "rgb" / f"{name}.npy"
  features = np.load(path)
  features[:] = np.nan
  np.save(path, features)
  args = [sys.executable, "-m", "salx.main", "--config=configs/thumos.py",
          f"--workdir={tmp_path / 'run'}", f"--config.data_dir={data}",
          "--config.check_data=none", "--config.feature_dim=64", "--config.sal.hidden_dim=8",
          "--config.sal.num_segments=32", "--config.batch_size=4",
          "--config.num_steps=1000000", "--config.log_every=5",
          "--config.eval_untrained=False"]
  # A million steps: only a run that stops at the bad batch ends before the timeout,
  # which is generous for a loaded machine; nothing here is timed.
  proc = subprocess.run(args, cwd=ROOT, capture_output=True, text=True, timeout=1200,
                        env={"PATH": "/usr/bin:/bin", "PYTHONPATH": str(ROOT),
                             "HOME": str(tmp_path)})
  code, err = proc.returncode, proc.stderr
  assert code == main.EXIT_DIVERGED, err[-2000:]
  assert err.strip().splitlines()[-1].startswith(
      "salx: training stopped: the training batch of step")
  assert sum(l.startswith("salx:") for l in err.splitlines()) == 1
  assert "Traceback" not in err
  step = int(re.search(r"the training batch of step (\d+)", err).group(1))
  assert step <= 1000   # Stopped at the bad batch, at most log_every steps after it.


def test_reports_are_readable_by_everyone(tmp_path):
  from salx.app import report  # pylint: disable=g-import-not-at-top
  report.write_json(str(tmp_path / "metrics.json"), {"a": 1})
  assert (tmp_path / "metrics.json").stat().st_mode & 0o777 == 0o644
