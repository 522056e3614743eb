"""CO2-Net and DELU through `python -m salx.main` with their configs: they train,
evaluate under the wtalc protocol, resume after SIGKILL to the same metrics,
report as members, and read their authors' checkpoint layout."""

import json
import signal
import subprocess
import sys

import jax
import numpy as np
import pytest

import configs.co2net_thumos
import configs.delu_thumos
from salx.app import checkpoints
from salx.app import data
from salx.app import evaluation as evaluation_lib
from salx.app import trainer
from salx.methods.co2net import torch_names
from salx.methods.co2net.method import CO2NET_METHOD
from tests.conftest import ROOT, start_salx, tiny_config, wait_for_checkpoint

pytestmark = pytest.mark.slow   # Whole runs.

CONFIGS = {"co2net": configs.co2net_thumos, "delu": configs.delu_thumos}
# Tiny dims for the synthetic data of configs/tiny.py (64-d features, 3 classes).
SMALL = {"max_seqlen": 32, "attention_hidden": 8, "learning_rate": 1e-3}
RUN = dict(dataset="thumos14", layout="sal", feature_dim=64, batch_size=6,
           eval_batch_size=4, num_steps=30, eval_every=10, eval_start_step=10,
           checkpoint_every=10, log_every=5)


def _config(method, data_dir, **overrides):
  config = CONFIGS[method].get_config()
  config.update(dict(RUN, data_dir=str(data_dir), **overrides))
  config[method].update(SMALL)
  return config


def _flags(method, data_dir, workdir, **overrides):
  run = dict(RUN, data_dir=data_dir, **overrides)
  return ([sys.executable, "-m", "salx.main", f"--config=configs/{method}_thumos.py",
           f"--workdir={workdir}"] + [f"--config.{k}={v}" for k, v in run.items()]
          + [f"--config.{method}.{k}={v}" for k, v in SMALL.items()])


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, compilation_cache):
  del compilation_cache
  folder = tmp_path_factory.mktemp("data") / "tiny"
  data.open_data(tiny_config(folder))   # The tiny synthetic dataset, 'sal' layout.
  return folder


@pytest.mark.parametrize("method", ["co2net", "delu"])
def test_trains_evaluates_and_reports_under_wtalc(method, data_dir, tmp_path):
  result = trainer.train_and_evaluate(_config(method, data_dir), str(tmp_path))
  metrics = result.metrics
  assert result.status == "completed"
  assert [h["step"] for h in metrics["history"]] == [10, 20, 30]
  last = metrics["last"]
  assert last["protocol_name"] == "wtalc" and len(last["mAP"]) == 9
  assert set(last["averages"]) == {"AVG(0.1:0.5)", "AVG(0.1:0.7)", "AVG(0.1:0.9)"}
  assert "evaluation: protocol wtalc" in result.table
  saved = json.loads((tmp_path / "metrics.json").read_text())
  assert saved["method"] == method and saved["hparams"][0]["max_seqlen"] == 32
  record, _ = evaluation_lib.evaluate_checkpoint(_config(method, data_dir), str(tmp_path))
  assert list(record.mAP) == metrics["best"]["mAP"]


@pytest.mark.parametrize("method,num_seeds", [("delu", 1), ("co2net", 4)])
def test_killed_run_resumes_to_the_same_metrics(method, num_seeds, data_dir, tmp_path,
                                                compilation_cache):
  killed = tmp_path / "killed"
  killed.mkdir()
  proc = start_salx(_flags(method, data_dir, killed, num_steps=100_000,
                           num_seeds=num_seeds), compilation_cache, tmp_path)
  wait_for_checkpoint(proc, killed, 20, tmp_path)
  proc.send_signal(signal.SIGKILL)
  proc.wait(timeout=60)
  with checkpoints.RunCheckpoints(killed) as ckpts:
    stopped_at = ckpts.latest_step()
  assert stopped_at >= 20 and not (killed / "metrics.json").exists()
  config = _config(method, data_dir, num_steps=stopped_at + 10, num_seeds=num_seeds)
  resumed = trainer.train_and_evaluate(config, str(killed))
  uninterrupted = trainer.train_and_evaluate(config, str(tmp_path / "uninterrupted"))
  assert resumed.metrics == uninterrupted.metrics
  assert len(resumed.metrics["members"]) == num_seeds
  if num_seeds > 1:
    assert resumed.metrics["summary"]["last"]["average_mAP"]["n"] == num_seeds


def test_an_authors_checkpoint_file_evaluates_and_fine_tunes(data_dir, tmp_path):
  """A state dict in their layout (written with salx's torch writer under their
  names, their unused feat_encoder included) loads through init_checkpoint."""
  hp = CO2NET_METHOD.presets["thumos14"].replace(**SMALL)
  model = CO2NET_METHOD.build_model(hp, num_classes=3, feature_dim=64)
  params = CO2NET_METHOD.init_params(model, hp, jax.random.key(3), (2, 32, 64))
  encoder = {"weight": np.ones((64, 64, 3), np.float32), "bias": np.zeros(64, np.float32)}
  state_dict = torch_names.params_to_torch(jax.device_get(params), feat_encoder=encoder)
  assert "feat_encoder.0.weight" in state_dict
  path = tmp_path / "best_co2net_thumos.pkl"
  from salx.core import torch_writer  # pylint: disable=g-import-not-at-top
  torch_writer.write_torch_file({k: np.asarray(v, np.float32) for k, v in state_dict.items()},
                                path)
  loaded = torch_names.load_checkpoint(path)
  for a, b in zip(jax.tree_util.tree_leaves(loaded), jax.tree_util.tree_leaves(params)):
    np.testing.assert_array_equal(a, np.asarray(b))
  # --mode=evaluate from the file prints the table.
  proc = subprocess.run(_flags("co2net", data_dir, tmp_path / "run")
                        + ["--mode=evaluate", f"--config.init_checkpoint={path}"],
                        cwd=ROOT, capture_output=True, text=True, timeout=900)
  assert proc.returncode == 0, proc.stderr[-2000:]
  assert "weights: the official checkpoint" in proc.stdout
  assert "evaluation: protocol wtalc" in proc.stdout
  # Fine-tuning starts every member from it.
  config = _config("co2net", data_dir, init_checkpoint=str(path), num_steps=10,
                   eval_untrained=True)
  result = trainer.train_and_evaluate(config, str(tmp_path / "tuned"))
  record, _ = evaluation_lib.evaluate_checkpoint(
      _config("co2net", data_dir, init_checkpoint=str(path)), str(tmp_path / "x"))
  assert result.metrics["untrained"]["mAP"] == list(record.mAP)
