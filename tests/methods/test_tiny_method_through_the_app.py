"""The method seam holds: a method defined here, outside salx, trains, evaluates,
runs as K = 3 members with a per-member float, resumes after a kill and is
reported with mean ± std, through salx's app unchanged (tests/methods/tiny_method.py)."""

import json
import signal
import sys

import numpy as np
import pytest

from salx.app import checkpoints
from salx.app import data
from salx.app import evaluation
from salx.app import trainer
from tests.conftest import ROOT, start_salx, wait_for_checkpoint
from tests.methods import tiny_method

pytestmark = pytest.mark.slow   # Whole runs.

LEARNING_RATES = [1e-2, 3e-2, 1e-1]


def _config(data_dir, **overrides):
  config = tiny_method.get_config()
  config.data_dir = str(data_dir)
  config.members = [{"tiny_linear.learning_rate": lr} for lr in LEARNING_RATES]
  config.update(overrides)
  return config


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, compilation_cache):
  del compilation_cache
  folder = tmp_path_factory.mktemp("data") / "tiny"
  data.open_data(_config(folder))
  return folder


def test_a_method_defined_outside_salx_trains_evaluates_and_reports(data_dir, tmp_path):
  result = trainer.train_and_evaluate(_config(data_dir), str(tmp_path))
  metrics = result.metrics
  assert result.status == "completed" and len(metrics["members"]) == 3
  lasts = [m["last"]["average_mAP"] for m in metrics["members"]]
  assert len(set(lasts)) == 3   # Each member learned at its own rate.
  summary = metrics["summary"]["last"]["average_mAP"]
  assert summary["n"] == 3 and summary["mean"] == pytest.approx(np.mean(lasts))
  assert summary["std"] == pytest.approx(np.std(lasts, ddof=1))
  assert "last step: mean ± std (n=3)" in result.table
  assert "last step: mean" in (tmp_path / "report.txt").read_text()   # Per tIoU too.
  saved = json.loads((tmp_path / "metrics.json").read_text())
  assert saved["method"] == "tiny_linear"
  assert [h["learning_rate"] for h in saved["hparams"]] == pytest.approx(LEARNING_RATES)
  # Its pictures' inputs: the method's own timelines, the untrained point on map.png.
  from salx.app import pictures  # pylint: disable=g-import-not-at-top
  collected = pictures.collect(str(tmp_path))
  assert collected["records"]["untrained"] == metrics["untrained"]
  assert len(collected["per_video"]) == 6
  assert collected["per_video"][0]["cas"].shape[1] == 3
  # Evaluates: --mode=evaluate gives each member's best record back.
  record, table = evaluation.evaluate_checkpoint(_config(data_dir), str(tmp_path))
  assert list(record.mAP) == metrics["members"][0]["best"]["mAP"] and "m2" in table


def test_a_killed_run_of_it_resumes_to_the_same_metrics(data_dir, tmp_path,
                                                        compilation_cache):
  killed = tmp_path / "killed"
  killed.mkdir()
  args = [sys.executable, "-m", "salx.main",
          f"--config={ROOT / 'tests' / 'methods' / 'tiny_method.py'}",
          f"--workdir={killed}", f"--config.data_dir={data_dir}",
          "--config.num_steps=100000", "--config.num_seeds=3"]
  proc = start_salx(args, compilation_cache, tmp_path)
  wait_for_checkpoint(proc, killed, 20, tmp_path)
  proc.send_signal(signal.SIGKILL)
  proc.wait(timeout=60)
  with checkpoints.RunCheckpoints(killed) as ckpts:
    stopped_at = ckpts.latest_step()
  assert stopped_at >= 20 and not (killed / "metrics.json").exists()
  config = _config(data_dir, num_steps=stopped_at + 10, num_seeds=3, members=None)
  resumed = trainer.train_and_evaluate(config, str(killed))
  uninterrupted = trainer.train_and_evaluate(config, str(tmp_path / "uninterrupted"))
  assert resumed.metrics == uninterrupted.metrics
  assert len(resumed.metrics["members"]) == 3
