"""Training and evaluation of a method: `train_and_evaluate(config, workdir)`.

One run of K members (K = config.num_seeds, or the length of config.members; 1 by
default), read top to bottom in `train_and_evaluate`:
  1. open the data (the synthetic dataset is generated on first use) and check it,
     so that a broken folder stops the run before anything trains; with
     config.holdout_fraction, hold a class-stratified part of the training videos
     out of training (`salx.app.holdout`);
  2. build the model and the members' train states [K, ...] on a ('member',
     'data') mesh of all devices (`salx.core.sharding`, `salx.core.members`);
  3. resume from the newest checkpoint of workdir/checkpoints, or else evaluate the
     untrained members;
  4. train all members with one jitted step. The step stays on the device: every
     `log_every` steps (and before an evaluation or a checkpoint) the losses come
     to the host, are checked to be finite and are written. Every `eval_every` steps
     from `eval_start_step`, and at the last step, the test split is evaluated (one
     forward over all members) and each member's best average mAP kept in
     workdir/best (the authors' protocol, which selects on the test set; the
     held-out videos, when used, select each member's step honestly). Every
     `checkpoint_every` steps, at the last step and on SIGTERM the state is
     checkpointed;
  5. report every member's untrained, last and selected results and their mean ±
     std: stdout, workdir/report.txt, workdir/metrics.json, and the predictions of
     the last and the best step (ActivityNet JSON).

Resuming is exact: member m's batch of step s is a pure function of (its seed, s)
and its dropout key of step s is fold_in(key, s), so a checkpoint of the states
(with the adaptive-mask statistics) and of the progress record (evaluations so
far) gives the same final metrics as an uninterrupted run.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import sys
from typing import Any, Dict, Iterator, Sequence

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
from salx.app import eval_pool
from salx.app import evaluate_run
from salx.app import evaluator as evaluator_lib
from salx.app import holdout
from salx.app import members as members_lib
from salx.app import preemption
from salx.app import preflight
from salx.app import progress as progress_lib
from salx.app import report
from salx.app import run_config
from salx.app import scoring
from salx.app import step_metrics
from salx.app import workdir_lock
from salx.app.run_config import ConfigError
from salx.core import hparams as hparams_lib
from salx.core import members as core_members
from salx.core import sharding
from salx.datasets import batches as batches_lib
from salx.datasets import input_pipeline
from salx.postprocess.detections import Detections


# ----------------------------------------------------------------------------
# State and training helpers.


def members_batches(source, members: Sequence[Any], config, start_step: int,
                    method, hp, mesh, size: int = 2) -> Iterator[Dict[str, jax.Array]]:
  """The members' global batches [K, B, ...] on the mesh, `size` ahead of the step.

  Member m's batch of step s is the one a single run with its seed draws. The K
  feeds read through one reader: one cache holds the training split once.
  """
  reader = batches_lib.SplitReader(input_pipeline.as_source(source), "train",
                                   cache=config.cache_data)
  feeds = [input_pipeline.train_batches(
      source, batch_size=config.batch_size, num_segments=method.num_segments(hp),
      seed=m.seed, start_step=start_step, num_steps=config.num_steps - start_step,
      process_index=jax.process_index(), process_count=jax.process_count(),
      sampling=method.train_sampling(hp), video_sampler=method.video_sampler(hp),
      reader=reader) for m in members]
  queue = collections.deque()
  for host_batches in zip(*feeds):
    stacked = {k: np.stack([b[k] for b in host_batches]) for k in ("features", "labels")}
    queue.append(sharding.members_global_batch(stacked, mesh))
    if len(queue) == size:
      yield queue.popleft()
  while queue:
    yield queue.popleft()


@jax.jit
def _copy(tree: Any) -> Any:
  """New device buffers holding `tree` (kept while the state moves on)."""
  return jax.tree_util.tree_map(jnp.copy, tree)


@jax.jit
def _keep_improved(improved: jax.Array, params: Any, best: Any) -> Any:
  """best params [K, ...] with the members flagged in `improved` [K] replaced."""
  return jax.tree_util.tree_map(
      lambda p, b: jnp.where(improved.reshape((-1,) + (1,) * (p.ndim - 1)), p, b),
      params, best)


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


# ----------------------------------------------------------------------------
# The run.


def train_and_evaluate(config: ml_collections.ConfigDict, workdir: str) -> RunResult:
  """Trains the method as `config` says, evaluating on the test split; resumes in
  `workdir`.

  Raises:
    ConfigError: an unusable config.
    DataError: a missing or broken data folder (before any training).
    errors.NonFiniteLossError: the loss became NaN or infinite (the last good checkpoint
      stays in workdir/checkpoints).
  """
  preflight.check(config, workdir)
  members = members_lib.members_of(config)
  seeds = [m.seed for m in members]
  workdir = os.path.abspath(os.path.expanduser(workdir))
  is_chief = jax.process_index() == 0
  out = console.Console(enabled=is_chief)

  # 1. Data.
  source = data_lib.open_data(config)
  data_lib.check_data(source, config.check_data,
                      "thumos14" if config.dataset == "synthetic" else config.dataset)
  method = run_config.method_of(config)
  member_hparams = [m.hp for m in members]
  hp = member_hparams[0]
  num_classes = data_lib.num_classes_of(config, source)
  train_source, holdout_source = source, None
  if config.holdout_fraction > 0:
    kept, held = holdout.split_training_videos(source, config.holdout_fraction,
                                               config.seed)
    train_source = holdout.TrainingSubset(source, kept)
    holdout_source = holdout.HeldOutSplit(source, held)
  num_train = len(train_source.video_names("train"))
  if config.batch_size > num_train:
    raise ConfigError(f"config.batch_size = {config.batch_size} is larger than the "
                      f"{num_train} training videos of {source.data_dir}")

  # 2. Model, mesh, states.
  model = run_config.make_model(config, num_classes, method, hp)
  mesh = sharding.make_mesh(num_members=len(members))
  try:
    sharding.check_global_batch(config.batch_size, mesh)
  except ValueError as e:
    raise ConfigError(f"config.batch_size: {e}") from None
  state, dropout_keys, stacked_hp = members_lib.init_members(method, model, config,
                                                             members, mesh)
  train_step = sharding.jit_members_step(
      core_members.make_members_step(method, model), mesh)
  evaluator = evaluator_lib.SplitEvaluator(method, model, source, hp, config, mesh)
  holdout_evaluator = (None if holdout_source is None else evaluator_lib.SplitEvaluator(
      method, model, holdout_source, hp, config, mesh,
      protocol=evaluator_lib.holdout_protocol(config.protocol), ground_truth_path=""))

  pool = eval_pool.EvalPool(config.eval_workers)
  timelines = None
  if config.timeline_videos and is_chief:
    from salx.app import drawing  # pylint: disable=g-import-not-at-top
    timelines = drawing.TimelineImages(method, hp, source, config.timeline_videos)

  def submit_evaluation(params, step: int, snapshot=None) -> None:
    """The members' forward now; localization and AP in the pool (in order)."""
    jobs = []
    for split_evaluator in (evaluator, holdout_evaluator):
      if split_evaluator is not None:
        outputs = split_evaluator.members_outputs(params, stacked_hp)
        jobs += [(split_evaluator.scorer, scoring.member_batches(outputs, m), member_hp)
                 for m, member_hp in enumerate(member_hparams)]
        if timelines is not None and split_evaluator is evaluator:
          timelines.write(writer, step, scoring.member_batches(outputs, 0))
    pool.submit(step, jobs, snapshot)

  def member_results(results):
    """[(test record, detections, held-out record or None)] per member."""
    k = len(members)
    held = [r for r, _ in results[k:]] or [None] * k
    return [(r, d, h) for (r, d), h in zip(results[:k], held)]

  # 3. Resume, or start from the untrained model (the workdir is this run's alone).
  with workdir_lock.WorkdirLock(workdir, enabled=is_chief):
    log_file = console.keep_log_file(workdir) if is_chief else None
    logging.info("salx run in %s with config:\n%s", workdir, config)
    out.header(
        data=(f"{config.dataset}, {num_classes} classes, {num_train} train / "
              f"{len(source.video_names('test'))} test videos ({source.layout} layout at "
              f"{source.data_dir})" + (f", {len(holdout_source.video_names('test'))} "
                                       "training videos held out" if holdout_source else "")),
        model=(f"{method.describe(hp)}, batch {config.batch_size}"
               + (f", {len(members)} members (seeds {seeds[0]}..{seeds[-1]})"
                  if len(members) > 1 else "")),
        num_params=sum(x.size for x in jax.tree_util.tree_leaves(state.params))
        // len(members),
        devices=(f"{mesh.devices.size} x {jax.devices()[0].platform} "
                 f"({jax.process_count()} process(es)), mesh {dict(mesh.shape)}"))
    writer = metric_writers.create_default_writer(workdir, just_logging=not is_chief)
    ckpts = checkpoint_lib.RunCheckpoints(workdir, keep=config.keep_checkpoints)
    restored = ckpts.restore_latest(state)
    best_params = None
    if restored is not None:
      state, progress = restored
      start_step = int(jax.device_get(state.step)[0])
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
      ckpts.discard_best_after(start_step)   # Saved by a killed run; recomputed below.
      try:
        best = ckpts.restore_best(state.params)
      except checkpoint_lib.CheckpointError as e:   # Only the params are lost.
        logging.warning("%s; the progress record keeps every member's best evaluation, "
                        "and the best params are saved anew at the next improvement", e)
        best = None
      best_params = None if best is None else best[0]
      out.line(f"resumed from step {start_step} in {ckpts.latest_dir}")
    else:
      start_step = 0
      ckpts.discard_best_after(start_step)
      if config.init_checkpoint:   # Fine-tuning: every member starts from these weights.
        one = jax.tree_util.tree_map(lambda x: x[0], state.params)
        params, what = evaluate_run.load_init_params(method, config.init_checkpoint, one,
                                                      mesh)
        state = state.replace(params=jax.device_put(
            jax.tree_util.tree_map(lambda x: np.stack([np.asarray(x)] * len(members)),
                                   params), sharding.member_sharded(mesh)))
        out.line(f"initialised from {what}")
      progress = progress_lib.new_progress(config.to_dict(), members)
      writer.write_hparams({k: v for k, v in _flat(config.to_dict()).items()
                            if isinstance(v, (int, float, str, bool))})
      if config.eval_untrained:
        submit_evaluation(state.params, 0)
        (_, results, _), = pool.ready(wait=True)
        for m, (record, _, _) in enumerate(member_results(results)):
          progress["members"][m]["untrained"] = record
        writer.write_scalars(0, _test_scalars(progress["members"], "untrained"))
        out.line("untrained: test average mAP " + _mean_text(progress["members"],
                                                             "untrained"))

    def apply_evaluation(step: int, results, params, best_params):
      """Records one evaluation of every member; saves the improved members' params."""
      improved = [progress_lib.record_evaluation(member, record, held)
                  for member, (record, _, held) in zip(progress["members"], results)]
      writer.write_scalars(step, _test_scalars(progress["members"], "last"))
      for m, (_, detections, _) in enumerate(results):
        if step == config.num_steps and is_chief:
          report.write_predictions(workdir, _name("last", m, len(members)), step,
                                   detections)
      if any(improved):
        # A new buffer (never the donated state's own) holding each member's best.
        best_params = _keep_improved(jnp.asarray(improved), params,
                                     params if best_params is None else best_params)
        ckpts.save_best(step, best_params,
                        progress_lib.best_checkpoint_record(progress["members"]))
        for m, (_, detections, _) in enumerate(results):
          if improved[m] and is_chief:
            report.write_predictions(workdir, _name("best", m, len(members)), step,
                                     detections)
      out.evaluation(step, _mean(progress["members"], "last"),
                     _mean(progress["members"], "best"),
                     max(progress_lib.best_steps(progress["members"])),
                     members=len(members))
      return best_params

    # 4. Train.
    progress["config"] = config.to_dict()
    train_iter = members_batches(train_source, members, config, start_step, method, hp,
                                 mesh)
    report_progress = periodic_actions.ReportProgress(
        num_train_steps=config.num_steps, writer=writer, every_steps=config.log_every)
    watch = preemption.PreemptionWatch(workdir)
    pending = []   # (step, device metrics [K]) since the last host sync.
    status, step = "completed", start_step
    out.start(start_step)
    try:
      with metric_writers.ensure_flushes(writer):
        for step in range(start_step + 1, config.num_steps + 1):
          # `step` counts the steps done once this one is: the batch is number step - 1.
          with jax.profiler.StepTraceAnnotation("train", step_num=step):
            state, metrics = train_step(state, next(train_iter), dropout_keys, stacked_hp)
            pending.append((step, metrics))
          report_progress(step)

          is_last = step == config.num_steps
          preempted = watch.reached(step)
          evaluate_now = is_last or (step >= config.eval_start_step
                                     and step % config.eval_every == 0)
          save = is_last or preempted or step % config.checkpoint_every == 0
          if evaluate_now or save or step % config.log_every == 0:
            means = step_metrics.sync_train_metrics(writer, pending, seeds,
                                                    ckpts.latest_step(), ckpts.latest_dir)
            pending = []
            for member, member_means in zip(progress["members"], means):
              member["train_history"].append(dict(step=step, **member_means))
            if step % config.log_every == 0 or is_last:
              out.step(step, config.num_steps,
                       float(np.mean([mm["loss"] for mm in means])))

          if evaluate_now:
            with report_progress.timed("eval"):
              submit_evaluation(state.params, step,
                                None if pool.workers == 0 else _copy(state.params))
          for done, results, snapshot in pool.ready(wait=save or pool.full()):
            best_params = apply_evaluation(done, member_results(results),
                                           state.params if snapshot is None else snapshot,
                                           best_params)

          if save:
            if not bool(step_metrics.all_finite(state.params)):
              raise errors.NonFiniteLossError(
                  f"the parameters hold NaN or infinite values at step {step}; the run "
                  f"stopped without saving them (last good checkpoint: step "
                  f"{ckpts.latest_step()} in {ckpts.latest_dir})")
            with report_progress.timed("checkpoint"):
              ckpts.save_latest(step, state, progress)

          if preempted and not is_last:
            status = "interrupted" if watch.interrupted else "preempted"
            logging.warning("%s: saved the checkpoint of step %d in %s; run the "
                            "same command to resume.",
                            "Ctrl-C" if watch.interrupted else "SIGTERM", step,
                            ckpts.latest_dir)
            break
    finally:
      pool.close()
      watch.close()
      ckpts.close()   # Waits for the saves in flight: they hold good states only.
      if status != "completed" or sys.exc_info()[0] is not None:
        console.close_log_file(log_file)

    # 5. Report.
    if status in ("preempted", "interrupted"):
      return RunResult(status, step, {}, "")
    table, metrics, detailed = report.final_report(
        progress, title=report.run_title(config, source, method, hp),
        eval_every=config.eval_every, eval_start_step=config.eval_start_step,
        holdout_fraction=config.holdout_fraction)
    if config.extra_protocols:
      extra = {name: extra_protocol_records(name, config, source, method, members,
                                            progress["members"], workdir,
                                            evaluator.scorer.ambiguous)
               for name in config.extra_protocols}
      metrics = dict(metrics, extra_protocols=extra)
      extra_text = "".join(
          "\n\n" + report.format_table(
              [(f"{which}{'' if len(members) == 1 else f' m{m}'}", record)
               for which in ("last", "best")
               for m, record in enumerate(records[which]) if record is not None],
              title=f"the same detections under the {name} protocol")
          + f"\nevaluation: {next(r for r in records['last'] if r)['protocol']}"
          for name, records in extra.items())
      table, detailed = table + extra_text, detailed + extra_text
    if is_chief:
      print(table, flush=True)
      report.write_json(os.path.join(workdir, "metrics.json"),
                        dict(metrics, config=config.to_dict(), method=method.name,
                             class_names=list(source.class_names),
                             hparams=[hparams_lib.as_dict(m.hp) for m in members]))
      with open(os.path.join(workdir, "report.txt"), "w", encoding="utf-8") as f:
        f.write((table if detailed == table else f"{table}\n\n{detailed}") + "\n")
    writer.close()
    console.close_log_file(log_file)
    return RunResult(status, step, metrics, table)


def extra_protocol_records(name: str, config, source, method, members, records,
                           workdir: str, ambiguous) -> Dict[str, list]:
  """{'last', 'best'}: each member's record of its predictions file under protocol
  `name` (None where the file is missing); step and accuracy are those of the
  member's own record (`records`: the progress record's members)."""
  ground_truth = evaluator_lib.protocol_ground_truth(
      name, source, config.protocol_ground_truth[name])
  out = {}
  for which in ("last", "best"):
    out[which] = []
    for m, member in enumerate(members):
      path = os.path.join(workdir, f"predictions_{_name(which, m, len(members))}.json")
      own = records[m].get(which)
      if own is None or not os.path.exists(path):
        out[which].append(None)
        continue
      detections = Detections.from_json(path)
      result = scoring.score_detections(name, ground_truth, detections,
                                        method.tiou_thresholds(member.hp), ambiguous)
      out[which].append(report.evaluation_record(result, own["accuracy"], own["step"],
                                                 own["num_videos"]))
  return out


def _name(which: str, m: int, num_members: int) -> str:
  """predictions_<which>.json, or predictions_<which>_member<m>.json with members."""
  return which if num_members == 1 else f"{which}_member{m}"


def _mean(members, key: str) -> float:
  return float(np.mean([m[key]["average_mAP"] for m in members]))


def _mean_text(members, key: str) -> str:
  values = [100 * m[key]["average_mAP"] for m in members]
  if len(values) == 1:
    return f"{values[0]:.2f}%"
  return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}% (n={len(values)})"


def _test_scalars(members, key: str) -> Dict[str, float]:
  """test/<metric> (the members' mean), and test/member<m>/<metric> with members."""
  per_member = [report.scalars(m[key]) for m in members]
  out = {k: float(np.mean([s[k] for s in per_member])) for k in per_member[0]}
  if len(members) > 1:
    out.update({k.replace("test/", f"test/member{m}/", 1): v
                for m, s in enumerate(per_member) for k, v in s.items()})
  return out
