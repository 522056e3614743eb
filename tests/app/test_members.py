"""Members: K seeds and hyperparameter variants trained at once equal K single runs."""

import json
import os
import subprocess

import numpy as np
import pytest

from salx.app import config as config_lib
from salx.app import trainer
from tests.conftest import ROOT, cli_args, tiny_config

OVERRIDES = [{}, {"sal.loss_weights.mix": 0.0, "sal.class_thresh": 0.3},
             {"sal.learning_rate": 2e-3, "sal.mask_ema": 0.5}]


def test_members_have_consecutive_seeds_and_checked_overrides():
  config = tiny_config("/nowhere", num_seeds=3, seed=5)
  members = config_lib.members_of(config)
  assert [m.seed for m in members] == [5, 6, 7]
  with config.unlocked():
    config.members = OVERRIDES
  members = config_lib.members_of(config)
  assert members[1].hp.loss_weights.mix == 0.0
  assert members[1].hp.class_thresh == 0.3 and members[0].hp.class_thresh == 0.25
  assert members[2].hp.learning_rate == 2e-3 and members[2].hp.mask_ema == 0.5
  stacked = config_lib.stacked_hparams(members)
  assert stacked.loss_weights.mix.tolist() == [1.0, 0.0, 1.0]
  assert np.allclose(stacked.learning_rate, [1e-3, 1e-3, 2e-3])


@pytest.mark.parametrize("members,message", [
    ([{"sal.num_segments": 64}], "config.members[0].sal.num_segments cannot differ"),
    ([{"sal.mil_topk_divisor": 4}], "cannot differ between members"),
    ([{"sal.learning_rate": "fast"}], "sal.learning_rate must be a number"),
    ([{"sal.nms_thresh": 3.0}], "config.members[0]: config.sal.nms_thresh"),
    (["lr"], "must be a dict"),
])
def test_member_overrides_that_cannot_be_trained_together_are_named(members, message):
  config = tiny_config("/nowhere")
  with config.unlocked():
    config.members = members
  with pytest.raises(config_lib.ConfigError, match=message.replace("[", r"\[").replace(
      "]", r"\]").replace(".", r"\.")):
    config_lib.members_of(config)


def test_num_seeds_and_members_must_agree():
  config = tiny_config("/nowhere", num_seeds=2)
  with config.unlocked():
    config.members = OVERRIDES
  with pytest.raises(config_lib.ConfigError, match="num_seeds = 2 but config.members"):
    config_lib.members_of(config)


def _losses(history):
  return np.asarray([h["loss"] for h in history])


@pytest.mark.slow
def test_member_m_equals_the_single_run_with_its_seed_and_overrides(data_dir, tmp_path):
  config = tiny_config(data_dir, num_steps=20)
  with config.unlocked():
    config.members = OVERRIDES
  together = trainer.train_and_evaluate(config, str(tmp_path / "members")).metrics
  for m, change in enumerate(OVERRIDES):
    single_config = tiny_config(data_dir, num_steps=20, seed=m)
    for field, value in change.items():
      *parents, leaf = field.split(".")
      node = single_config
      for key in parents:
        node = node[key]
      node[leaf] = value
    single = trainer.train_and_evaluate(single_config, str(tmp_path / f"single{m}")).metrics
    member = together["members"][m]
    assert member["seed"] == m and member["overrides"] == change
    np.testing.assert_allclose(_losses(member["train_history"]),
                               _losses(single["train_history"]), rtol=1e-5)
    for which in ("untrained", "last", "best"):
      assert member[which]["average_mAP"] == pytest.approx(
          single[which]["average_mAP"], abs=1e-6), (m, which)
      assert member[which]["step"] == single[which]["step"]
  summary = together["summary"]["last"]["average_mAP"]
  values = [m["last"]["average_mAP"] for m in together["members"]]
  assert summary["n"] == 3 and summary["mean"] == pytest.approx(np.mean(values))
  assert summary["std"] == pytest.approx(np.std(values, ddof=1))


def _run_on_devices(tmp_path, data_dir, devices, num_seeds, batch_size):
  workdir = tmp_path / f"d{devices}"
  args = cli_args(workdir, data_dir, num_steps=20, num_seeds=num_seeds,
                  batch_size=batch_size)
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu",
             XLA_FLAGS=f"--xla_force_host_platform_device_count={devices}")
  proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=600)
  assert proc.returncode == 0, proc.stderr[-3000:]
  assert f"{devices} x cpu" in proc.stdout
  return json.loads((workdir / "metrics.json").read_text())


@pytest.mark.slow
@pytest.mark.parametrize("num_seeds,batch_size", [(4, 4), (3, 8)])
def test_members_on_an_8_device_mesh_equal_one_device(data_dir, tmp_path, num_seeds,
                                                      batch_size):
  one = _run_on_devices(tmp_path, data_dir, 1, num_seeds, batch_size)
  eight = _run_on_devices(tmp_path, data_dir, 8, num_seeds, batch_size)
  for a, b in zip(one["members"], eight["members"]):
    np.testing.assert_allclose(_losses(a["train_history"]), _losses(b["train_history"]),
                               rtol=1e-5)
    assert a["last"]["average_mAP"] == pytest.approx(b["last"]["average_mAP"], abs=1e-6)


@pytest.mark.slow
def test_one_member_on_more_devices_than_its_batch_suggests_members(data_dir, tmp_path):
  workdir = tmp_path / "run"
  args = cli_args(workdir, data_dir, batch_size=4)
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_PLATFORMS="cpu",
             XLA_FLAGS="--xla_force_host_platform_device_count=8")
  proc = subprocess.run(args, cwd=ROOT, env=env, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 2, proc.stderr[-2000:]
  assert "does not divide over the 8 devices" in proc.stderr
  assert "config.num_seeds = 8" in proc.stderr


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  from salx.app import data  # pylint: disable=g-import-not-at-top
  folder = tmp_path_factory.mktemp("data") / "tiny"
  data.open_data(tiny_config(folder))
  return folder


@pytest.mark.slow
def test_evaluation_in_worker_processes_equals_the_synchronous_one(data_dir, tmp_path):
  config = tiny_config(data_dir, num_steps=20, num_seeds=2, eval_every=5,
                       eval_start_step=5, checkpoint_every=10)
  synchronous = trainer.train_and_evaluate(config, str(tmp_path / "sync")).metrics
  with config.unlocked():
    config.eval_workers = 2
  in_workers = trainer.train_and_evaluate(config, str(tmp_path / "pool")).metrics
  assert in_workers == synchronous
  assert [h["step"] for h in in_workers["members"][1]["history"]] == [5, 10, 15, 20]
  for name in ("predictions_best_member0.json", "predictions_last_member1.json"):
    assert (tmp_path / "sync" / name).read_text() == (tmp_path / "pool" / name).read_text()
