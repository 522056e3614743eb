"""End to end: train and evaluate on a tiny synthetic dataset, resume, SIGTERM, NaN.

Tiny dims (D 64, H 16, T 32, 12 train / 6 test videos) keep every run to seconds;
the JAX compilation cache (a temporary folder) lets later runs, in this process and
in the subprocesses, reuse the first run's executables.
"""

import json
import os
import pathlib
import shutil
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from salx.app import checkpoints as checkpoints_lib
from salx.postprocess import ap
from salx.postprocess import ground_truth as ground_truth_lib
from salx.postprocess.detections import Detections
from salx.app import data
from salx.app import runtime
from salx.app import evaluation as evaluation_lib
from salx.app import config as config_lib
from salx.app import trainer
from salx.core import sharding
from salx.core import train_step as train_step_lib
from salx.datasets import layouts
from tests.conftest import ROOT, cli_args, start_salx, tiny_config, wait_for_checkpoint

pytestmark = pytest.mark.slow   # Every test here trains or evaluates a whole run.



@pytest.fixture(scope="module")
def data_dir(tmp_path_factory, compilation_cache):
  """The tiny synthetic dataset, generated once."""
  del compilation_cache
  folder = tmp_path_factory.mktemp("data") / "tiny"
  data.open_data(tiny_config(folder))
  return folder


def _digits(names):
  return [n for n in names if n.isdigit()]


def _read(path):
  with open(path) as f:
    return json.load(f)


def _without_config(metrics):
  return {k: v for k, v in metrics.items()
          if k not in ("config", "method", "hparams", "class_names")}


# ----------------------------------------------------------------------------


def test_train_and_evaluate_end_to_end(data_dir, tmp_path, monkeypatch, capsys):
  jitted = []
  jit_members_step = sharding.jit_members_step
  monkeypatch.setattr(sharding, "jit_members_step",
                      lambda *a, **k: jitted.append(jit_members_step(*a, **k)) or jitted[-1])
  config = tiny_config(data_dir)
  result = trainer.train_and_evaluate(config, str(tmp_path))

  assert result.status == "completed" and result.step == 30
  assert jitted[0]._cache_size() == 1   # One shape: the step compiled once.
  metrics = result.metrics
  assert [metrics[k]["step"] for k in ("untrained", "last")] == [0, 30]
  assert [h["step"] for h in metrics["history"]] == [10, 20, 30]
  best = max(metrics["history"], key=lambda h: h["average_mAP"])
  assert metrics["best"]["step"] == best["step"]
  assert metrics["best"]["selection"].startswith("selected on the test set")
  for record in (metrics["untrained"], metrics["last"], metrics["best"]):
    assert len(record["mAP"]) == 7 and record["num_videos"] == 6
    assert set(record["averages"]) == {"AVG(0.1:0.5)", "AVG(0.3:0.7)", "AVG(0.1:0.7)"}
    assert 0.0 <= record["average_mAP"] <= 1.0

  # The report on stdout and in the workdir.
  printed = capsys.readouterr().out
  assert result.table in printed and "AVG(0.1:0.7)" in printed
  for line in ("untrained", "last step", "best (selected on test)*"):
    assert any(l.startswith(line) for l in printed.splitlines()), line
  assert _without_config(_read(tmp_path / "metrics.json")) == json.loads(
      json.dumps(metrics))
  assert (tmp_path / "report.txt").read_text().strip() == result.table
  saved = _read(tmp_path / "metrics.json")
  assert saved["method"] == "sal" and len(saved["hparams"]) == 1
  assert saved["class_names"] == list(layouts.open_source(data_dir, "thumos14").class_names)
  assert saved["hparams"][0]["nms_thresh"] == config.sal.nms_thresh
  assert saved["hparams"][0]["num_segments"] == config.sal.num_segments
  assert [h["step"] for h in saved["train_history"]] == list(range(5, 31, 5))
  # A quiet console: the header, a line per log_every steps and per evaluation,
  # the table; the full log (config dump included) in log.txt.
  lines = [l for l in printed.splitlines() if l and l not in result.table]
  assert lines[0].startswith("data:") and lines[2].startswith("devices:")
  assert sum(l.startswith("step ") for l in lines) == 30 // 5
  assert sum(l.startswith("eval step ") for l in lines) == 3
  assert len(lines) <= 3 + 1 + 6 + 3, lines
  log = (tmp_path / "log.txt").read_text()
  assert "with config:" in log and "nms_thresh" in log
  assert any(n.startswith("events.out.tfevents") for n in os.listdir(tmp_path))

  # The predictions files score what the report says.
  ground_truth = ground_truth_lib.load_ground_truth(
      layouts.open_source(data_dir, "thumos14").ground_truth(), "test")
  for which in ("last", "best"):
    scored = ap.evaluate_detections(
        ground_truth, Detections.from_json(tmp_path / f"predictions_{which}.json"),
        metrics[which]["tiou_thresholds"])
    assert scored.average_mAP == pytest.approx(metrics[which]["average_mAP"], abs=1e-12)

  # Checkpoints: the last step to resume, the best one by average mAP.
  assert sorted(_digits(os.listdir(tmp_path / "checkpoints"))) == ["20", "30"]
  assert _digits(os.listdir(tmp_path / "best")) == [str(metrics["best"]["step"])]

  # A second start in the same workdir has nothing left to train: same report.
  again = trainer.train_and_evaluate(tiny_config(data_dir), str(tmp_path))
  assert again.metrics == metrics

  # Fewer steps than the workdir's checkpoint: a clear error, nothing touched.
  with pytest.raises(config_lib.ConfigError, match="beyond num_steps = 20"):
    trainer.train_and_evaluate(tiny_config(data_dir, num_steps=20), str(tmp_path))

  # --mode=evaluate: the best and the latest checkpoints give their records back.
  for which, expected in (("best", metrics["best"]), ("latest", metrics["last"])):
    record, table = evaluation_lib.evaluate_checkpoint(
        tiny_config(data_dir, eval_checkpoint=which), str(tmp_path))
    assert record.step == expected["step"] and f"{which} checkpoint" in table
    assert list(record.mAP) == expected["mAP"]
    assert (tmp_path / f"predictions_eval_{which}.json").exists()
    assert _read(tmp_path / f"metrics_eval_{which}.json") == record.to_json()


def test_classes_without_test_instances_are_left_out(tmp_path):
  config = tiny_config(tmp_path / "data")
  config.synthetic.update(num_test=1, second_class_prob=0.0)
  run = config_lib.open_run(config)
  evaluator = evaluation_lib.Evaluator(run)
  assert evaluator.scorer.unevaluated.size == 2
  (member,) = evaluator.run(run.state.params, 0).members
  record, detections = member.record, member.detections
  assert list(record.per_class_AP) == list(evaluator.scorer.ground_truth.class_names)
  assert len(detections) > 0 and record.num_videos == 1
  kept = {detections.class_names[i] for i in detections.label}
  assert kept <= set(evaluator.scorer.ground_truth.class_names)
  # run() never drops an evaluation submitted before it.
  evaluator.submit(run.state.params, 1)
  with pytest.raises(RuntimeError, match="still pending"):
    evaluator.run(run.state.params, 2)
  assert [e.step for e in evaluator.finished(wait=True)] == [1]


@pytest.mark.parametrize("num_seeds", [1, 3])
def test_run_killed_with_sigkill_resumes_to_the_same_metrics(data_dir, tmp_path,
                                                             compilation_cache,
                                                             num_seeds):
  killed = tmp_path / "killed"
  killed.mkdir()
  proc = start_salx(cli_args(killed, data_dir, num_steps=100_000, num_seeds=num_seeds),
                compilation_cache, tmp_path)
  wait_for_checkpoint(proc, killed, 20, tmp_path)
  proc.send_signal(signal.SIGKILL)
  proc.wait(timeout=30)
  with checkpoints_lib.RunCheckpoints(killed) as ckpts:
    stopped_at = ckpts.latest_step()
  assert stopped_at >= 20 and not (killed / "metrics.json").exists()
  num_steps = stopped_at + 20

  config = tiny_config(data_dir, num_steps=num_steps, num_seeds=num_seeds)
  resumed = trainer.train_and_evaluate(config, str(killed))
  uninterrupted_dir = tmp_path / "uninterrupted"
  uninterrupted = trainer.train_and_evaluate(config, str(uninterrupted_dir))
  assert resumed.metrics == uninterrupted.metrics
  assert len(resumed.metrics["members"]) == num_seeds
  names = [f"predictions_{which}.json" for which in ("last", "best")] if num_seeds == 1 \
      else [f"predictions_{which}_member{m}.json" for which in ("last", "best")
            for m in range(num_seeds)]
  for name in names:
    assert _read(killed / name) == _read(uninterrupted_dir / name)


def test_a_damaged_best_checkpoint_does_not_stop_a_resume(data_dir, tmp_path):
  """The best params cannot be restored: the run resumes (the progress record keeps
  the best evaluations) and ends with the uninterrupted run's metrics."""
  trainer.train_and_evaluate(tiny_config(data_dir, num_steps=20), str(tmp_path / "w"))
  for params in (tmp_path / "w" / "best").glob("*/params"):
    shutil.rmtree(params)
  resumed = trainer.train_and_evaluate(tiny_config(data_dir), str(tmp_path / "w"))
  uninterrupted = trainer.train_and_evaluate(tiny_config(data_dir), str(tmp_path / "u"))
  assert resumed.metrics == uninterrupted.metrics


def test_sigterm_checkpoints_and_exits_cleanly(data_dir, tmp_path, compilation_cache):
  workdir = tmp_path / "run"
  workdir.mkdir()
  proc = start_salx(cli_args(workdir, data_dir, num_steps=100_000, checkpoint_every=50),
                compilation_cache, tmp_path)
  wait_for_checkpoint(proc, workdir, 50, tmp_path)
  proc.send_signal(signal.SIGTERM)
  assert proc.wait(timeout=60) == 0
  stderr = (tmp_path / "stderr.txt").read_text()
  assert "SIGTERM: checkpointed step" in stderr
  step = int(stderr.split("SIGTERM: checkpointed step ")[1].split()[0])
  with checkpoints_lib.RunCheckpoints(workdir) as ckpts:
    assert ckpts.latest_step() == step
  assert not (workdir / "metrics.json").exists()   # Not finished: no final report.


@pytest.mark.parametrize("presses", [1, 2])
def test_ctrl_c_saves_and_exits_130_with_one_line(presses, data_dir, tmp_path,
                                                  compilation_cache):
  workdir = tmp_path / "run"
  workdir.mkdir()
  proc = start_salx(cli_args(workdir, data_dir, num_steps=100_000, checkpoint_every=50,
                             eval_workers=1), compilation_cache, tmp_path)
  wait_for_checkpoint(proc, workdir, 50, tmp_path)
  for _ in range(presses):
    proc.send_signal(signal.SIGINT)
  assert proc.wait(timeout=300) == 130
  stderr = (tmp_path / "stderr.txt").read_text()
  assert "Traceback" not in stderr and "KeyboardInterrupt" not in stderr
  lines = [l for l in stderr.splitlines() if l.startswith("salx:")]
  assert len(lines) == 1 and "run the same command to resume" in lines[0], stderr[-2000:]
  with checkpoints_lib.RunCheckpoints(workdir) as ckpts:
    saved = ckpts.latest_step()
  if presses == 1:   # Saved at the step it names.
    assert lines[0].startswith(f"salx: interrupted: checkpointed step {saved} ")
  assert saved >= 50 and not (workdir / "metrics.json").exists()


@pytest.mark.parametrize("poison", ["loss", "features"])
def test_nan_loss_stops_the_run_and_keeps_the_last_good_checkpoint(
    poison, data_dir, tmp_path, monkeypatch):
  make_train_step = train_step_lib.make_train_step

  def poisoned(method, model):
    """The real step, its loss (or its input features) NaN from step 15 on."""
    step = make_train_step(method, model)

    def train_step(state, batch, rng, hp):
      if poison == "features":
        batch = dict(batch, features=jnp.where(state.step >= 15, jnp.nan,
                                               batch["features"]))
      new_state, metrics = step(state, batch, rng, hp)
      if poison == "loss":
        metrics = dict(metrics, loss=jnp.where(state.step >= 15, jnp.nan,
                                               metrics["loss"]))
      return new_state, metrics

    return train_step

  monkeypatch.setattr(train_step_lib, "make_train_step", poisoned)
  with pytest.raises(runtime.NonFiniteLossError) as error:
    trainer.train_and_evaluate(tiny_config(data_dir), str(tmp_path))
  message = str(error.value)
  if poison == "loss":
    assert "nan at step 16" in message
  else:
    assert ("the training batch of step 16 holds 4 video(s) with NaN or infinite "
            "features") in message
  assert "last good checkpoint, step 10" in message and str(tmp_path) in message

  with checkpoints_lib.RunCheckpoints(tmp_path) as ckpts:
    assert ckpts.latest_step() == 10
    config = tiny_config(data_dir)
    method, members = config_lib.method_of(config), config_lib.members_of(config)
    template, _, _ = config_lib.init_members(
        method, config_lib.make_model(config, 3, method, members[0].hp), config,
        members, sharding.make_mesh())
    state, progress = ckpts.restore_latest(template)
  assert int(state.step[0]) == 10 and progress["members"][0]["last"]["step"] == 10
  assert all(np.all(np.isfinite(x)) for x in jax.tree_util.tree_leaves(state.params))
