"""experiments/compare_methods.py: SAL, CO2-Net and DELU as K members on one workload."""

import importlib.util
import os
import re
import subprocess
import sys

import pytest

from tests.conftest import ROOT, data_file

SCRIPT = ROOT / "experiments" / "compare_methods.py"
CELL = r"\d+\.\d\d ± \d+\.\d\d"


def _module():
  spec = importlib.util.spec_from_file_location("compare_methods", SCRIPT)
  module = importlib.util.module_from_spec(spec)
  sys.modules[spec.name] = module   # Its dataclasses look their module up.
  spec.loader.exec_module(module)
  return module


def test_stratified_videos_take_each_class():
  gt = str(data_file("thumos14/gt.json"))
  compare = _module()
  train = compare.stratified_videos(gt, "train", 3)
  test = compare.stratified_videos(gt, "test", 1)
  assert len(train) == 60 and len(test) == 20   # 20 classes, each has 3 or more.
  assert all(n.startswith("video_validation_") for n in train)
  assert len(compare.stratified_videos(gt, "test", 0)) == 210


def test_table_has_one_line_per_method():
  compare = _module()
  value = {"mean": 0.1234, "std": 0.0100, "n": 2}
  summary = {k: {"AVG(0.1:0.7)": value, "average_mAP": value}
             for k in ("last", "best", "holdout")}
  results = [compare.MethodResult(m, 2, summary, {}, 12.3, 1.0)
             for m in ("sal", "co2net", "delu")]
  lines = compare.format_table(results)
  assert lines[0].split()[:3] == ["method", "K", "last"]
  assert [line.split()[0] for line in lines[2:]] == ["SAL", "CO2-Net", "DELU"]
  assert all(len(re.findall(CELL, line)) == 3 and "12.3" in line for line in lines[2:])


@pytest.mark.slow
def test_compare_methods_smallest(tmp_path):
  gt = data_file("thumos14/gt.json")
  command = [sys.executable, str(SCRIPT), f"--annotations={gt}", "--num_seeds=2",
             "--protocol=own", "--num_steps=4", "--eval_every=2", "--train_per_class=3",
             "--test_per_class=1", "--max_snippets=48", "--feature_dim=16", "--width=8",
             "--num_segments=32", f"--data_dir={tmp_path / 'data'}",
             f"--workdir={tmp_path / 'runs'}"]
  done = subprocess.run(command, cwd=ROOT, capture_output=True, text=True, timeout=1200,
                        env=dict(os.environ, PYTHONPATH=str(ROOT)))
  assert done.returncode == 0, done.stderr[-3000:]
  out = done.stdout
  assert "command: python experiments/compare_methods.py" in out and "--num_seeds=2" in out
  assert "protocol: --protocol=own" in out
  assert re.search(r"SAL: activitynet .*test set: 20 test videos", out)
  assert re.search(r"CO2-Net, DELU: wtalc .*test set: 20 test videos", out)
  rows = [line for line in out.splitlines()
          if line.split()[:1] in (["SAL"], ["CO2-Net"], ["DELU"])]
  assert [r.split()[0] for r in rows] == ["SAL", "CO2-Net", "DELU"]
  for row in rows:
    assert row.split()[1] == "2" and len(re.findall(CELL, row)) == 3
    assert float(row.split()[-1]) > 0   # step ms
  assert re.search(r"^compare_methods wall_s=\d+", out, re.M)
  assert (tmp_path / "runs" / "delu" / "metrics.json").is_file()
