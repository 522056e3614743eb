"""Training and evaluation of SAL: `train_and_evaluate(config, workdir)`.

One run, read top to bottom in `train_and_evaluate`:
  1. open the data (the synthetic dataset is generated on first use) and check it,
     so that a broken folder stops the run before anything trains;
  2. build the model and the train state, replicated over a mesh of all devices
     (the batch is sharded along it; `salx.core.sharding`);
  3. resume from the newest checkpoint of workdir/checkpoints, or else evaluate the
     untrained model;
  4. train with the jitted global-batch step. The step stays on the device: every
     `log_every` steps (and before an evaluation or a checkpoint) the losses come
     to the host, are checked to be finite and are written. Every `eval_every` steps
     from `eval_start_step`, and at the last step, the test split is evaluated and
     the best average mAP kept in workdir/best (the authors' protocol, which
     selects on the test set). Every `checkpoint_every` steps, at the last step
     and on SIGTERM the state is checkpointed;
  5. report the untrained, last and best results: stdout, workdir/report.txt,
     workdir/metrics.json, workdir/predictions_last.json, predictions_best.json.

Resuming is exact: the batch of step s is a pure function of (seed, s) and the
dropout key of step s is fold_in(key, s), so a checkpoint of the TrainState (with
the adaptive-mask statistics) and of the progress record (evaluations so far)
gives the same final metrics as an uninterrupted run.
"""

from __future__ import annotations

import collections
import dataclasses
import os
import sys
from typing import Any, Dict, Iterator, Optional

from absl import logging
from clu import metric_writers
from clu import periodic_actions
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from salx.app import checkpoint as checkpoint_lib
from salx.app import console
from salx.app import data as data_lib
from salx.app import errors
from salx.app import evaluate_run
from salx.app import evaluator as evaluator_lib
from salx.app import preemption
from salx.app import report
from salx.app import run_config
from salx.app.run_config import ConfigError
from salx.core import sharding
from salx.core import train_step as train_step_lib
from salx.datasets import input_pipeline


# ----------------------------------------------------------------------------
# State and training helpers.


def device_batches(host_batches: Iterator[Dict[str, np.ndarray]], mesh,
                   size: int = 2) -> Iterator[Dict[str, jax.Array]]:
  """Global batches on the mesh, `size` ahead of the step that uses them."""
  queue = collections.deque()
  for host_batch in host_batches:
    queue.append(sharding.global_batch(host_batch, mesh, keys=("features", "labels")))
    if len(queue) == size:
      yield queue.popleft()
  while queue:
    yield queue.popleft()


@jax.jit
def _all_finite(tree) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x))
                            for x in jax.tree_util.tree_leaves(tree)]))


def write_train_metrics(writer: metric_writers.MetricWriter, pending: list,
                        last_good_step: Optional[int], latest_dir: str
                        ) -> Optional[Dict[str, float]]:
  """Brings the pending step metrics to the host, checks them, writes their means.

  Args:
    pending: [(step, {name: device scalar})] since the last call.
    last_good_step: the newest checkpoint's step, for the error message.
    latest_dir: where that checkpoint lives.

  Returns:
    {name: mean over the pending steps}, or None when nothing was pending.

  Raises:
    errors.NonFiniteLossError: a loss is NaN or infinite (nothing after it is saved).
  """
  if not pending:
    return None
  steps = [step for step, _ in pending]
  host = jax.device_get([metrics for _, metrics in pending])
  losses = np.asarray([m["loss"] for m in host], np.float64)
  bad = np.flatnonzero(~np.isfinite(losses))
  bad_inputs = np.flatnonzero([m.get("bad_videos", 0) > 0 for m in host])
  where = (f"the last good checkpoint, step {last_good_step}, is intact in "
           f"{latest_dir}" if last_good_step is not None else
           "no checkpoint had been saved yet")
  if bad_inputs.size:
    raise errors.NonFiniteLossError(
        f"the training batch of step {steps[bad_inputs[0]]} holds "
        f"{int(host[bad_inputs[0]]['bad_videos'])} video(s) with NaN or infinite "
        "features or without a positive label; the run stopped without saving, and "
        f"{where}. Find the files with python -m salx.datasets.check.")
  if bad.size:
    raise errors.NonFiniteLossError(
        f"the training loss is {losses[bad[0]]} at step {steps[bad[0]]} (NaN or "
        f"infinite); the run stopped without saving the diverged state, and {where}. "
        "Resuming replays the same steps: lower --config.learning_rate, use "
        "--config.compute_dtype=float32, or check the features with "
        "python -m salx.datasets.check.")
  means = {k: float(np.mean([m[k] for m in host])) for k in host[0]}
  writer.write_scalars(steps[-1], {f"train/{k}": v for k, v in means.items()})
  return means


def _flat(tree: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flat(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def _changed_fields(saved: Dict[str, Any], current: Dict[str, Any]) -> Dict[str, Any]:
  saved, current = _flat(saved), _flat(current)
  return {k: (saved.get(k), current.get(k)) for k in sorted(set(saved) | set(current))
          if saved.get(k) != current.get(k)}


@dataclasses.dataclass
class RunResult:
  """What `train_and_evaluate` ends with.

  Attributes:
    status: 'completed', or 'preempted' (SIGTERM: checkpointed at `step`).
    step: the last step trained.
    metrics: the metrics.json content (untrained / last / best records).
    table: the printed report ('' when preempted).
  """
  status: str
  step: int
  metrics: Dict[str, Any]
  table: str


# ----------------------------------------------------------------------------
# The run.


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> RunResult:
  """Trains SAL as `config` says, evaluating on the test split; resumes in `workdir`.

  Raises:
    ConfigError: an unusable config.
    DataError: a missing or broken data folder (before any training).
    errors.NonFiniteLossError: the loss became NaN or infinite (the last good checkpoint
      stays in workdir/checkpoints).
  """
  run_config.check_config(config)
  workdir = os.path.abspath(os.path.expanduser(workdir))
  is_chief = jax.process_index() == 0
  out = console.Console(enabled=is_chief)

  # 1. Data.
  source = data_lib.open_data(config)
  data_lib.check_data(source, config.check_data,
                      "thumos14" if config.dataset == "synthetic" else config.dataset)
  num_classes = data_lib.num_classes_of(config, source)
  num_train = len(source.video_names("train"))
  if config.batch_size > num_train:
    raise ConfigError(f"config.batch_size = {config.batch_size} is larger than the "
                      f"{num_train} training videos of {source.data_dir}")

  # 2. Model, mesh, state.
  variant = run_config.make_variant(config)
  model = run_config.make_model(config, num_classes, variant)
  mesh = sharding.make_mesh()
  try:
    sharding.check_global_batch(config.batch_size, mesh)
  except ValueError as e:
    raise ConfigError(f"config.batch_size: {e}") from None
  init_rng, dropout_rng = jax.random.split(jax.random.key(config.seed))
  state = evaluate_run.init_state(model, variant, config, init_rng, mesh)
  train_step = sharding.jit_train_step(
      train_step_lib.make_train_step(model, variant), mesh)
  evaluator = evaluator_lib.SplitEvaluator(model, source, variant, config, mesh)

  # 3. Resume, or start from the untrained model.
  os.makedirs(workdir, exist_ok=True)
  log_file = console.keep_log_file(workdir) if is_chief else None
  logging.info("salx run in %s with config:\n%s", workdir, config)
  out.header(
      data=(f"{config.dataset}, {num_classes} classes, {num_train} train / "
            f"{len(source.video_names('test'))} test videos ({source.layout} layout at "
            f"{source.data_dir})"),
      model=(f"SAL, {variant.name} code path, hidden {config.hidden_dim}, T "
             f"{config.num_segments}, batch {config.batch_size}"),
      num_params=sum(x.size for x in jax.tree_util.tree_leaves(state.params)),
      devices=(f"{mesh.devices.size} x {jax.devices()[0].platform} "
               f"({jax.process_count()} process(es))"))
  writer = metric_writers.create_default_writer(workdir, just_logging=not is_chief)
  ckpts = checkpoint_lib.RunCheckpoints(workdir, keep=config.keep_checkpoints)
  restored = ckpts.restore_latest(state)
  if restored is not None:
    state, progress = restored
    start_step = int(jax.device_get(state.step))
    if start_step > config.num_steps:
      ckpts.close()
      raise ConfigError(f"{ckpts.latest_dir} holds a checkpoint of step {start_step}, "
                        f"beyond num_steps = {config.num_steps}; raise num_steps or "
                        "use another workdir")
    changed = _changed_fields(progress.get("config", {}), config.to_dict())
    changed.pop("num_steps", None)
    if changed:
      logging.warning("Resuming with a config that differs from the checkpoint's: "
                      "%s", changed)
    out.line(f"resumed from step {start_step} in {ckpts.latest_dir}")
  else:
    start_step = 0
    progress = {"config": config.to_dict(), "untrained": None, "last": None,
                "best": None, "history": [], "train_history": []}
    writer.write_hparams({k: v for k, v in _flat(config.to_dict()).items()
                          if isinstance(v, (int, float, str, bool))})
    if config.eval_untrained:
      progress["untrained"], _ = evaluator(state.params, 0)
      writer.write_scalars(0, report.scalars(progress["untrained"]))
      out.line(f"untrained: test average mAP "
               f"{100 * progress['untrained']['average_mAP']:.2f}%")
  ckpts.discard_best_after(start_step)   # Saved by a killed run; recomputed below.

  # 4. Train.
  progress["config"] = config.to_dict()
  train_iter = device_batches(input_pipeline.train_batches(
      source, batch_size=config.batch_size, num_segments=config.num_segments,
      seed=config.seed, start_step=start_step,
      num_steps=config.num_steps - start_step, process_index=jax.process_index(),
      process_count=jax.process_count(), cache=config.cache_data,
      sampling=variant.sampling), mesh)
  report_progress = periodic_actions.ReportProgress(
      num_train_steps=config.num_steps, writer=writer, every_steps=config.log_every)
  watch = preemption.PreemptionWatch()
  pending = []   # (step, device metrics) since the last host sync.
  status, step = "completed", start_step
  out.start(start_step)
  try:
    with metric_writers.ensure_flushes(writer):
      for step in range(start_step + 1, config.num_steps + 1):
        # `step` counts the steps done once this one is: the batch is number step - 1.
        with jax.profiler.StepTraceAnnotation("train", step_num=step):
          state, metrics = train_step(state, next(train_iter), dropout_rng)
          pending.append((step, metrics))
        report_progress(step)

        is_last = step == config.num_steps
        preempted = watch.reached(step)
        evaluate = is_last or (step >= config.eval_start_step
                               and step % config.eval_every == 0)
        save = is_last or preempted or step % config.checkpoint_every == 0
        if evaluate or save or step % config.log_every == 0:
          means = write_train_metrics(writer, pending, ckpts.latest_step(),
                                      ckpts.latest_dir)
          pending = []
          progress.setdefault("train_history", []).append(dict(step=step, **means))
          if step % config.log_every == 0 or is_last:
            out.step(step, config.num_steps, means["loss"])

        if evaluate:
          with report_progress.timed("eval"):
            record, localized = evaluator(state.params, step)
          writer.write_scalars(step, report.scalars(record))
          progress["last"] = record
          progress["history"].append(report.summary(record))
          if is_last and is_chief:
            report.write_predictions(workdir, "last", step, localized)
          if report.is_better(record, progress["best"]):
            progress["best"] = record
            ckpts.save_best(step, state.params, record)
            if is_chief:
              report.write_predictions(workdir, "best", step, localized)
          best = progress["best"]
          out.evaluation(step, record["average_mAP"], best["average_mAP"], best["step"])

        if save:
          if not bool(_all_finite(state.params)):
            raise errors.NonFiniteLossError(
                f"the parameters hold NaN or infinite values at step {step}; the run "
                f"stopped without saving them (last good checkpoint: step "
                f"{ckpts.latest_step()} in {ckpts.latest_dir})")
          with report_progress.timed("checkpoint"):
            ckpts.save_latest(step, state, progress)

        if preempted and not is_last:
          status = "preempted"
          logging.warning("SIGTERM: saved the checkpoint of step %d in %s; run the "
                          "same command to resume.", step, ckpts.latest_dir)
          break
  finally:
    watch.close()
    ckpts.close()   # Waits for the saves in flight: they hold good states only.
    if status != "completed" or sys.exc_info()[0] is not None:
      console.close_log_file(log_file)

  # 5. Report.
  if status == "preempted":
    return RunResult(status, step, {}, "")
  table, metrics = report.final_report(
      progress, title=report.run_title(config, source, variant),
      eval_every=config.eval_every, eval_start_step=config.eval_start_step)
  if is_chief:
    print(table, flush=True)
    report.write_json(os.path.join(workdir, "metrics.json"),
                      dict(metrics, config=config.to_dict(),
                           sal=dataclasses.asdict(variant)))
    with open(os.path.join(workdir, "report.txt"), "w", encoding="utf-8") as f:
      f.write(table + "\n")
  writer.close()
  console.close_log_file(log_file)
  return RunResult(status, step, metrics, table)
