"""Training and evaluation of a method: `train_and_evaluate(config, workdir)`.

One run of K members (K = config.num_seeds, or the length of config.members; 1 by
default; a single run is K = 1), read top to bottom under the banners of
`train_and_evaluate`:
  1. open the run (`salx.app.config.open_run`): the data (the synthetic dataset is
     generated on first use), checked so that a broken folder stops the run before
     anything trains; the model and the members' train states [K, ...] on a
     ('member', 'data') mesh of all devices. With config.holdout_fraction, a
     class-stratified part of the training videos is held out of training;
  2. resume from the newest checkpoint of workdir/checkpoints, or else evaluate the
     untrained members;
  3. train all members with one jitted step. The step stays on the device: every
     `log_every` steps (and before an evaluation or a checkpoint) the losses come
     to the host, are checked to be finite and are written. Every `eval_every` steps
     from `eval_start_step`, and at the last step, the test split is evaluated
     (`salx.app.evaluation.Evaluator`) and each member's best average mAP kept in
     workdir/best (`Selection`; the authors' protocol, which selects on the test
     set; the held-out videos, when used, select each member's step honestly).
     Every `checkpoint_every` steps, at the last step and on SIGTERM the state is
     checkpointed;
  4. report every member's untrained, last and selected results and their mean ±
     std: stdout, workdir/report.txt, workdir/metrics.json, and the predictions of
     the last and the best step (ActivityNet JSON).

Resuming is exact: member m's batch of step s is a pure function of (its seed, s)
and its dropout key of step s is fold_in(key, s), so a checkpoint of the states
(with the method state) and of the progress record (evaluations so far) gives the
same final metrics as an uninterrupted run.
"""

from __future__ import annotations

import dataclasses
import json
import os
import sys
from typing import Any, Dict, List, Optional, Sequence

from absl import logging
from clu import metric_writers
from clu import periodic_actions
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np

from salx.app import checkpoints as checkpoints_lib
from salx.app import config as config_lib
from salx.app import data as data_lib
from salx.app import evaluation
from salx.app import report
from salx.app import runtime
from salx.app.runtime import ConfigError
from salx.core import hparams as hparams_lib
from salx.core import members as core_members
from salx.core import sharding


@dataclasses.dataclass
class RunResult:
  """What `train_and_evaluate` ends with.

  Attributes:
    status: 'completed', 'preempted' (SIGTERM) or 'interrupted' (Ctrl-C):
      checkpointed at `step`.
    step: the last step trained.
    metrics: the metrics.json content (untrained / last / best records).
    table: the printed report ('' when preempted).
  """
  status: str
  step: int
  metrics: Dict[str, Any]
  table: str


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> RunResult:
  """Trains the method as `config` says, evaluating on the test split; resumes in
  `workdir`.

  Raises:
    ConfigError: an unusable config.
    DataError: a missing or broken data folder (before any training).
    runtime.NonFiniteLossError: the loss became NaN or infinite (the last good
      checkpoint stays in workdir/checkpoints).
  """
  config_lib.preflight(config, workdir)
  workdir = os.path.abspath(os.path.expanduser(workdir))
  is_chief = jax.process_index() == 0
  out = runtime.Console(enabled=is_chief)

  # --------------------------------------------------------------------------
  # 1. Open the run: data, model, members' states.
  run = config_lib.open_run(config, check_data=True)
  train_source, holdout_source = run.source, None
  if config.holdout_fraction > 0:
    kept, held = data_lib.split_training_videos(run.source, config.holdout_fraction,
                                                config.seed)
    train_source = data_lib.TrainingSubset(run.source, kept)
    holdout_source = data_lib.HeldOutSplit(run.source, held)
  num_train = len(train_source.video_names("train"))
  if config.batch_size > num_train:
    raise ConfigError(f"config.batch_size = {config.batch_size} is larger than the "
                      f"{num_train} training videos of {run.source.data_dir}")
  try:
    sharding.check_global_batch(config.batch_size, run.mesh)
  except ValueError as e:
    raise ConfigError(f"config.batch_size: {e}") from None
  train_step = sharding.jit_members_step(
      core_members.make_members_step(run.method, run.model), run.mesh)
  state = run.state

  # --------------------------------------------------------------------------
  # 2. Resume, or start from the untrained model (the workdir is this run's alone).
  with runtime.WorkdirLock(workdir, enabled=is_chief):
    log_file = runtime.keep_log_file(workdir) if is_chief else None
    logging.info("salx run in %s with config:\n%s", workdir, config)
    _print_header(out, run, num_train, holdout_source)
    writer = metric_writers.create_default_writer(workdir, just_logging=not is_chief)
    ckpts = checkpoints_lib.RunCheckpoints(workdir, keep=config.keep_checkpoints)
    timelines = None
    if config.timeline_videos and is_chief:
      from salx.app import pictures  # pylint: disable=g-import-not-at-top
      timelines = pictures.TimelineImages(run.method, run.hp, run.source,
                                          config.timeline_videos, writer)
    evaluator = evaluation.Evaluator(run, holdout_source=holdout_source,
                                     workers=config.eval_workers, timelines=timelines)
    restored = ckpts.restore_latest(state)
    if restored is not None:
      state, progress = restored
      start_step = int(jax.device_get(state.step)[0])
      _check_resumable(ckpts, config, start_step, progress)
      ckpts.discard_best_after(start_step)   # Saved by a killed run; recomputed below.
      selection = evaluation.Selection(
          evaluation.Selection.members_of_progress(progress), ckpts,
          workdir if is_chief else None, config.num_steps,
          best_params=_restore_best_params(ckpts, state.params))
      out.line(f"resumed from step {start_step} in {ckpts.latest_dir}")
    else:
      start_step = 0
      ckpts.discard_best_after(start_step)
      if config.init_checkpoint:   # Fine-tuning: every member starts from these weights.
        params, what = checkpoints_lib.load_init_members(run.method, config.init_checkpoint,
                                                         state.params, run.mesh)
        state = state.replace(params=params)
        out.line(f"initialised from {what}")
      selection = evaluation.Selection.new(run.members, ckpts,
                                           workdir if is_chief else None, config.num_steps)
      writer.write_hparams({k: v for k, v in _flat(config.to_dict()).items()
                            if isinstance(v, (int, float, str, bool))})
      if config.eval_untrained:
        selection.record_untrained(evaluator.run(state.params, 0))
        writer.write_scalars(0, selection.scalars("untrained"))
        untrained = selection.mean_of("untrained")
        out.line("untrained: test average mAP " + untrained.text(unit="%")
                 + (f" (n={untrained.n})" if untrained.n > 1 else ""))

    # ------------------------------------------------------------------------
    # 3. Train.
    train_iter = data_lib.training_batches(train_source, run.members, config, start_step,
                                           run.method, run.hp, run.mesh)
    report_progress = periodic_actions.ReportProgress(
        num_train_steps=config.num_steps, writer=writer, every_steps=config.log_every)
    watch = runtime.PreemptionWatch(workdir)
    pending = []   # (step, device metrics [K]) since the last host sync.
    status, step = "completed", start_step
    out.start(start_step)
    try:
      with metric_writers.ensure_flushes(writer):
        for step in range(start_step + 1, config.num_steps + 1):
          # `step` counts the steps done once this one is: the batch is number step - 1.
          with jax.profiler.StepTraceAnnotation("train", step_num=step):
            state, metrics = train_step(state, next(train_iter), run.dropout_keys,
                                        run.stacked_hp)
            pending.append((step, metrics))
          report_progress(step)

          is_last = step == config.num_steps
          preempted = watch.reached(step)
          evaluate_now = is_last or (step >= config.eval_start_step
                                     and step % config.eval_every == 0)
          save = is_last or preempted or step % config.checkpoint_every == 0

          # Losses to the host: checked, written, kept in the members' records.
          if evaluate_now or save or step % config.log_every == 0:
            means = sync_train_metrics(writer, pending, run.seeds, ckpts.latest_step(),
                                       ckpts.latest_dir)
            pending = []
            for records, member_means in zip(selection.members, means):
              records.train_history.append(dict(step=step, **member_means))
            if step % config.log_every == 0 or is_last:
              out.step(step, config.num_steps,
                       float(np.mean([mm["loss"] for mm in means])))

          # Evaluations: started now, applied in step order once scored.
          if evaluate_now:
            with report_progress.timed("eval"):
              evaluator.submit(state.params, step)
          for done in evaluator.finished(wait=save or evaluator.full()):
            selection.apply(done)
            writer.write_scalars(done.step, selection.scalars("last"))
            out.evaluation(done.step, selection.mean_of("last").mean,
                           selection.mean_of("best").mean, selection.latest_best_step(),
                           members=len(run.members))

          # Checkpoints: only of finite params.
          if save:
            if not bool(all_finite(state.params)):
              raise runtime.NonFiniteLossError(
                  f"the parameters hold NaN or infinite values at step {step}; the run "
                  f"stopped without saving them (last good checkpoint: step "
                  f"{ckpts.latest_step()} in {ckpts.latest_dir})")
            with report_progress.timed("checkpoint"):
              ckpts.save_latest(step, state, selection.progress_json(config.to_dict()))

          if preempted and not is_last:
            status = "interrupted" if watch.interrupted else "preempted"
            logging.warning("%s: saved the checkpoint of step %d in %s; run the "
                            "same command to resume.",
                            "Ctrl-C" if watch.interrupted else "SIGTERM", step,
                            ckpts.latest_dir)
            break
    finally:
      evaluator.close()
      watch.close()
      ckpts.close()   # Waits for the saves in flight: they hold good states only.
      if status != "completed" or sys.exc_info()[0] is not None:
        runtime.close_log_file(log_file)

    # ------------------------------------------------------------------------
    # 4. Report.
    if status in ("preempted", "interrupted"):
      return RunResult(status, step, {}, "")
    final = report.final_report(
        selection.members, title=run.title(), eval_every=config.eval_every,
        eval_start_step=config.eval_start_step, holdout_fraction=config.holdout_fraction)
    table, detailed, metrics = final.table, final.detailed, final.metrics
    if config.extra_protocols:
      extra = {name: evaluation.rescore_predictions(name, run, selection.members, workdir,
                                                    evaluator.scorer.ambiguous)
               for name in config.extra_protocols}
      metrics = dict(metrics, extra_protocols={
          name: {which: [None if r is None else r.to_json() for r in records[which]]
                 for which in records} for name, records in extra.items()})
      extra_text = "".join("\n\n" + evaluation.rescored_table(name, records)
                           for name, records in extra.items())
      table, detailed = table + extra_text, detailed + extra_text
    if is_chief:
      print(table, flush=True)
      report.write_json(os.path.join(workdir, report.METRICS_FILE),
                        dict(metrics, config=config.to_dict(), method=run.method.name,
                             class_names=list(run.source.class_names),
                             hparams=[hparams_lib.as_dict(m.hp) for m in run.members]))
      with open(os.path.join(workdir, report.REPORT_FILE), "w", encoding="utf-8") as f:
        f.write((table if detailed == table else f"{table}\n\n{detailed}") + "\n")
    writer.close()
    runtime.close_log_file(log_file)
    return RunResult(status, step, metrics, table)


# ----------------------------------------------------------------------------
# The steps of the run, in the order it takes them.


def _print_header(out: runtime.Console, run: config_lib.Run, num_train: int,
                  holdout_source) -> None:
  config, source, mesh = run.config, run.source, run.mesh
  seeds = run.seeds
  out.header(
      data=(f"{config.dataset}, {run.num_classes} classes, {num_train} train / "
            f"{len(source.video_names('test'))} test videos ({source.layout} layout at "
            f"{source.data_dir})" + (f", {len(holdout_source.video_names('test'))} "
                                     "training videos held out" if holdout_source else "")),
      model=(f"{run.method.describe(run.hp)}, batch {config.batch_size}"
             + (f", {len(seeds)} members (seeds {seeds[0]}..{seeds[-1]})"
                if len(seeds) > 1 else "")),
      num_params=sum(x.size for x in jax.tree_util.tree_leaves(run.state.params))
      // len(seeds),
      devices=(f"{mesh.devices.size} x {jax.devices()[0].platform} "
               f"({jax.process_count()} process(es)), mesh {dict(mesh.shape)}"))


def _flat(tree: Dict[str, Any], prefix: str = "") -> Dict[str, Any]:
  out = {}
  for key, value in tree.items():
    if isinstance(value, dict):
      out.update(_flat(value, f"{prefix}{key}."))
    else:
      out[f"{prefix}{key}"] = value
  return out


def _changed_fields(saved: Dict[str, Any], current: Dict[str, Any]) -> Dict[str, Any]:
  """{field: (saved, current)} of the fields that differ, compared in their JSON
  form (the saved record holds lists where the config holds tuples)."""
  saved, current = _flat(json.loads(json.dumps(saved))), _flat(json.loads(json.dumps(current)))
  return {k: (saved.get(k), current.get(k)) for k in sorted(set(saved) | set(current))
          if saved.get(k) != current.get(k)}


def _check_resumable(ckpts: checkpoints_lib.RunCheckpoints,
                     config: ml_collections.ConfigDict, start_step: int,
                     progress: Dict[str, Any]) -> None:
  """A checkpoint past num_steps stops the run; a changed config is logged."""
  if start_step > config.num_steps:
    ckpts.close()
    raise ConfigError(f"{ckpts.latest_dir} holds a checkpoint of step {start_step}, "
                      f"beyond num_steps = {config.num_steps}; raise num_steps or "
                      "use another workdir")
  changed = _changed_fields(progress.get("config", {}), config.to_dict())
  changed.pop("num_steps", None)
  if changed:
    logging.warning("Resuming with a config that differs from the checkpoint's: %s",
                    changed)


def _restore_best_params(ckpts: checkpoints_lib.RunCheckpoints, params_template: Any):
  """The members' best params of workdir/best, or None."""
  try:
    best = ckpts.restore_best(params_template)
  except checkpoints_lib.CheckpointError as e:   # Only the params are lost.
    logging.warning("%s; the progress record keeps every member's best evaluation, "
                    "and the best params are saved anew at the next improvement", e)
    return None
  return None if best is None else best[0]


# ----------------------------------------------------------------------------
# The training losses on their way to the host.


@jax.jit
def all_finite(tree) -> jax.Array:
  """True when every entry of every array of `tree` is finite."""
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x))
                            for x in jax.tree_util.tree_leaves(tree)]))


def _member_label(seeds: Sequence[int], m: int) -> str:
  return f" of member {m} (seed {seeds[m]})" if len(seeds) > 1 else ""


def sync_train_metrics(writer, pending: list, seeds: Sequence[int],
                       last_good_step: Optional[int], latest_dir: str
                       ) -> Optional[List[Dict[str, float]]]:
  """Brings the pending step metrics to the host, checks them, writes their means.

  The step's metrics stay on the device; every `log_every` steps (and before an
  evaluation or a checkpoint) the pending ones come to the host in one transfer.

  Args:
    writer: a clu metric writer ('train/<name>'; with several members also
      'train/member<m>/<name>', the plain name holding the members' mean).
    pending: [(step, {name: device [K]})] since the last call.
    seeds: the K members' seeds (for the error message).
    last_good_step: the newest checkpoint's step, for the error message.
    latest_dir: where that checkpoint lives.

  Returns:
    per member {name: mean over the pending steps}, or None when nothing was pending.

  Raises:
    runtime.NonFiniteLossError: a loss is NaN or infinite, or a batch holds broken
      videos (nothing after it is saved).
  """
  if not pending:
    return None
  steps = [step for step, _ in pending]
  host = jax.device_get([metrics for _, metrics in pending])
  where = (f"the last good checkpoint, step {last_good_step}, is intact in "
           f"{latest_dir}" if last_good_step is not None else
           "no checkpoint had been saved yet")
  bad_inputs = np.stack([np.asarray(m["bad_videos"]).reshape(-1) for m in host])
  if np.any(bad_inputs > 0):
    i, m = np.argwhere(bad_inputs > 0)[0]
    raise runtime.NonFiniteLossError(
        f"the training batch of step {steps[i]}{_member_label(seeds, m)} holds "
        f"{int(bad_inputs[i, m])} video(s) with NaN or infinite features or without a "
        f"positive label; the run stopped without saving, and {where}. Find the "
        "files with python -m salx.datasets.check.")
  losses = np.stack([np.asarray(m["loss"], np.float64).reshape(-1) for m in host])
  if not np.all(np.isfinite(losses)):
    i, m = np.argwhere(~np.isfinite(losses))[0]
    raise runtime.NonFiniteLossError(
        f"the training loss{_member_label(seeds, m)} is {losses[i, m]} at step "
        f"{steps[i]} (NaN or infinite); the run stopped without saving the diverged "
        f"state, and {where}. Resuming replays the same steps: lower "
        "--config.<method>.learning_rate, use --config.compute_dtype=float32, or check the "
        "features with python -m salx.datasets.check.")
  means = [{k: float(np.mean([np.asarray(h[k]).reshape(-1)[m] for h in host]))
            for k in host[0]} for m in range(len(seeds))]
  scalars = {f"train/{k}": float(np.mean([mm[k] for mm in means])) for k in means[0]}
  if len(seeds) > 1:
    scalars.update({f"train/member{m}/{k}": v for m, mm in enumerate(means)
                    for k, v in mm.items()})
  writer.write_scalars(steps[-1], scalars)
  return means
