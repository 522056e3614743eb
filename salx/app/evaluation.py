"""Evaluating members' params, and selecting each member's step.

An evaluation runs the members' model over a split on the mesh (`SplitForward`),
then, on the host, each member's localization with its own hyperparameters
(the method's `localize`), AP under the run's protocol and classification
accuracy (`Scorer`, the path `python -m salx.evaluate` takes from a predictions
file). `Evaluator.run(params, step)` does all of it and returns each member's
records; with `config.eval_workers > 0` the host half runs in worker processes
while training goes on (`submit` / `finished`), applied in step order, so an
overlapped run records exactly what a synchronous one does.

`Selection` owns each member's records (`salx.app.report.MemberRecords`): last,
best on the test set (the authors' protocol) and best on the held-out training
videos, and the members' best params, which it saves as the best checkpoint
itself. Its JSON form is the progress record every checkpoint carries.

`evaluate_checkpoint` is `--mode=evaluate`: saved weights scored on the test split.
"""

from __future__ import annotations

import collections
import concurrent.futures
import dataclasses
import multiprocessing
import os
import signal
from typing import Any, Dict, Iterator, List, Optional, Sequence, Tuple

from absl import logging
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np

from salx.app import checkpoints as checkpoints_lib
from salx.app import config as config_lib
from salx.app import report
from salx.app import runtime
from salx.app.report import EvalRecord
from salx.core import members as core_members
from salx.core import progress_bar
from salx.core import sharding
from salx.datasets import protocol_ground_truth as protocol_ground_truth_lib
from salx.datasets import source as source_lib
from salx.postprocess import classification
from salx.postprocess import ground_truth as ground_truth_lib
from salx.postprocess import localization
from salx.postprocess import protocols
from salx.postprocess import wtalc_eval
from salx.postprocess import wtalc_filters
from salx.postprocess.detections import Detections
from salx.postprocess.ground_truth import AmbiguousSegments, GroundTruth

# One batch on the host: ({'names', 'num_snippets', 'labels', 'valid', 'mask'}
# arrays, the method's outputs {name: [B, T, ...] or [B, C]}).
HostBatch = Tuple[Dict[str, np.ndarray], Dict[str, np.ndarray]]


# ----------------------------------------------------------------------------
# Ground truth and protocols.


def protocol_ground_truth(protocol: str, source, path: Optional[str] = None):
  """The ground truth `protocol` scores against: from `path`, else the data's own
  annotations (their test subset)."""
  if path:
    return protocol_ground_truth_lib.load_ground_truth(protocol, path)
  if protocol == protocols.THUMOS14_OFFICIAL.name:
    raise ValueError("the thumos14_official protocol reads the official per-class "
                     "annotation folder: set config.protocol_ground_truth.thumos14_official")
  return dataclasses.replace(
      ground_truth_lib.load_ground_truth(source.ground_truth(), "test"),
      source=source.annotation_file)


def holdout_protocol(protocol: str) -> str:
  """The protocol of the held-out training videos: the test protocol's rules, or
  activitynet's where those need the official test annotations."""
  return protocols.ACTIVITYNET.name if protocol == protocols.THUMOS14_OFFICIAL.name \
      else protocol


def score_detections(protocol: str, ground_truth, detections: Detections,
                     tiou_thresholds, ambiguous: Optional[AmbiguousSegments] = None):
  """`protocols.evaluate` of `detections`, the W-TALC pipeline's Ambiguous filter
  first (SPEC-CO2NET-DELU 5.6) when the protocol is wtalc."""
  options = {}
  if ambiguous is not None and protocol == protocols.WTALC.name:
    keep = wtalc_filters.ambiguous_keep(
        detections.video_names, detections.video,
        wtalc_eval.seconds_to_snippets(detections.start),
        wtalc_eval.seconds_to_snippets(detections.end),
        ambiguous)
    detections = detections.take(keep)
  elif ambiguous is not None and protocol == protocols.ACTIVITYNET.name:
    options["ambiguous"] = ambiguous
  return protocols.evaluate(protocol, ground_truth, detections, tiou_thresholds, **options)


# ----------------------------------------------------------------------------
# The host half: one member's outputs -> detections -> record.


@dataclasses.dataclass(frozen=True)
class Scorer:
  """Scores one member's outputs on a split (NumPy only: it runs in the workers).

  Attributes:
    method: the method (its `localize` and tIoU thresholds).
    ground_truth: the split's ground truth (an `OfficialGroundTruth` for the
      thumos14_official protocol).
    class_names: the model's C classes.
    unevaluated: [U] indices of classes without ground truth (dropped).
    protocol: the evaluation protocol (`salx.postprocess.protocols`).
    ambiguous: Ambiguous segments: the wtalc protocol drops the detections that
      share a snippet with one before scoring (SPEC-CO2NET-DELU 5.6), activitynet
      drops those overlapping one; None: none known.
  """
  method: Any
  ground_truth: GroundTruth
  class_names: Tuple[str, ...]
  unevaluated: np.ndarray
  protocol: str = "activitynet"
  ambiguous: Optional[AmbiguousSegments] = None

  def localize(self, batch: Dict[str, np.ndarray], out: Dict[str, np.ndarray],
               hp) -> localization.Localization:
    """Localization of one batch's real rows, with their valid lengths."""
    valid = batch["valid"]
    return self.method.localize(
        {k: np.asarray(v)[valid] for k, v in out.items()},
        batch["mask"][valid].sum(axis=1), batch["num_snippets"][valid], hp,
        video_names=batch["names"][valid], class_names=self.class_names)

  def __call__(self, batches: Sequence[HostBatch], hp, step: int
               ) -> Tuple[EvalRecord, Detections]:
    """(evaluation record, detections of the evaluated classes) at `step`."""
    localized = localization.Localization.concatenate(
        [self.localize(batch, out, hp) for batch, out in batches])
    labels = np.concatenate([batch["labels"][batch["valid"]] for batch, _ in batches])
    detections = localized.detections
    if self.unevaluated.size:
      detections = detections.take(~np.isin(detections.label, self.unevaluated))
    detections = dataclasses.replace(detections, source=f"of step {step}")
    result = score_detections(self.protocol, self.ground_truth, detections,
                              self.method.tiou_thresholds(hp), self.ambiguous)
    accuracy = classification.classification_accuracy(localized.predicted, labels)
    return EvalRecord.of_result(result, accuracy, step, len(labels)), detections


def member_batches(batches: Sequence[HostBatch], m: int) -> List[HostBatch]:
  """Member m's host batches from batches of the members' outputs [K, B, ...]."""
  return [(batch, {k: v[m] for k, v in out.items()}) for batch, out in batches]


def make_scorer(method, source: source_lib.FeatureSource, config: ml_collections.ConfigDict,
                protocol: str, ground_truth_path: Optional[str]) -> Scorer:
  """The scorer of `source`'s test split under `protocol`.

  Args:
    ground_truth_path: the protocol's ground truth (the official per-class folder,
      W-TALC annotations, a gt.json); '': the data's own annotations; None:
      `config.protocol_ground_truth` of the protocol.
  """
  if ground_truth_path is None:
    ground_truth_path = config.protocol_ground_truth[protocol]
  ground_truth = protocol_ground_truth(protocol, source, ground_truth_path)
  ambiguous = (None if not config.ambiguous_file else
               ground_truth_lib.load_ambiguous(config.ambiguous_file))
  class_names = tuple(source.class_names)
  evaluated = set(getattr(ground_truth, "instances", ground_truth).class_names)
  unevaluated = np.asarray([i for i, c in enumerate(class_names) if c not in evaluated],
                           np.int64)
  if unevaluated.size:
    logging.warning("Classes without instances in the test split are not evaluated; "
                    "their detections are dropped: %s",
                    [class_names[i] for i in unevaluated])
  return Scorer(method, ground_truth, class_names, unevaluated, protocol, ambiguous)


# ----------------------------------------------------------------------------
# The device half: the members' forward over a split.


def _to_host(tree: Any) -> Any:
  """NumPy copies of (possibly multi-host) arrays, whole on every process."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  return multihost_utils.process_allgather(tree, tiled=True)


def _full_batch_on_mesh(x: np.ndarray, mesh) -> jax.Array:
  """A global array, batch-sharded, from a batch every process holds whole."""
  return jax.make_array_from_callback(x.shape, sharding.batch_sharded(mesh),
                                      lambda index: x[index])


class SplitForward:
  """The members' model over a split's videos, on the mesh.

  The model runs on padded, masked batches of `eval_batch_size` videos sharded
  over the mesh (one shape, one compilation): each video resampled to the
  method's T, or whole when the method keeps test videos whole (T = the longest
  video of the split). With `cache_data` the test inputs stay on the devices after
  the first pass. Every process reads every video and computes the same outputs:
  the checkpoint decisions of all processes must agree.

  Args:
    hp: the hyperparameters of member 0 (the shared, static ones are read).
  """

  def __init__(self, method, model, source: source_lib.FeatureSource, hp,
               config: ml_collections.ConfigDict, mesh):
    self.method, self.source, self.mesh = method, source, mesh
    self.sampling = method.eval_sampling(hp)
    if method.eval_keeps_whole_videos(hp):
      self.num_segments = max(source.num_snippets("test", n)
                              for n in source.video_names("test"))
      self.keep_all_if_shorter = True
    else:
      self.num_segments = method.num_segments(hp)
      self.keep_all_if_shorter = config.eval_keep_all_if_shorter
    self.cache = config.cache_data
    self._cached = None
    devices = mesh.devices.size
    # No larger than the split: padding past its last video is memory for nothing.
    wanted = min(config.eval_batch_size, max(1, len(source.video_names("test"))))
    self.batch_size = -(-wanted // devices) * devices
    self.forward = sharding.jit_members_eval_forward(
        core_members.make_members_eval_forward(method, model), mesh)

  def batches(self, split: str = "test"
              ) -> Iterator[Tuple[Dict[str, np.ndarray], jax.Array, jax.Array]]:
    """(host batch, features [B, T, D], mask [B, T] on the mesh) of `split`."""
    if split == "test" and self._cached is not None:
      yield from self._cached
      return
    # The tf.data feed: imported by the processes that run the model, not by the
    # workers that unpickle a Scorer from this module.
    from salx.datasets import input_pipeline  # pylint: disable=g-import-not-at-top
    kept = []
    for batch in input_pipeline.eval_batches(
        self.source, num_segments=self.num_segments, batch_size=self.batch_size,
        keep_all_if_shorter=self.keep_all_if_shorter, split=split,
        sampling=self.sampling):
      item = ({k: batch[k] for k in ("names", "num_snippets", "labels", "valid", "mask")},
              _full_batch_on_mesh(batch["features"], self.mesh),
              _full_batch_on_mesh(batch["mask"], self.mesh))
      if self.cache and split == "test":
        kept.append(item)
      yield item
    if self.cache and split == "test":
      self._cached = kept

  def outputs(self, params, stacked_hp) -> List[HostBatch]:
    """Every test batch's (host batch, members' outputs [K, B, ...] on the host):
    one forward over all members per batch."""
    num_videos = len(self.source.video_names("test"))
    batches = progress_bar.track(self.batches(), total=-(-num_videos // self.batch_size),
                                 label=f"evaluating {num_videos} videos", unit="batches")
    return [(batch, _to_host(self.forward(params, features, mask, stacked_hp)))
            for batch, features, mask in batches]


# ----------------------------------------------------------------------------
# The evaluator.


@dataclasses.dataclass(frozen=True)
class MemberEvaluation:
  """One member's evaluation: its test record and detections, and its record on
  the held-out training videos (None without them)."""
  record: EvalRecord
  detections: Detections
  holdout: Optional[EvalRecord] = None


@dataclasses.dataclass(frozen=True)
class Evaluation:
  """The members' evaluation of `step`, and the params evaluated [K, ...]."""
  step: int
  members: List[MemberEvaluation]
  params: Any


class _Done:
  """A finished result with the interface of a Future."""

  def __init__(self, value):
    self._value = value

  def done(self) -> bool:
    return True

  def result(self):
    return self._value


def _ignore_interrupts() -> None:
  """Workers leave Ctrl-C to the run (the terminal sends it to the whole group)."""
  signal.signal(signal.SIGINT, signal.SIG_IGN)


@jax.jit
def _copy(tree: Any) -> Any:
  """New device buffers holding `tree` (kept while the state moves on)."""
  return jax.tree_util.tree_map(jnp.copy, tree)


class Evaluator:
  """Evaluates the members' params on the test split (and the held-out videos).

  Args:
    run: the opened run (`salx.app.config.open_run`).
    holdout_source: the held-out training videos as a source whose 'test' split
      they are (`salx.app.data.HeldOutSplit`), or None.
    workers: CPU processes for localization and AP (0: in this process, at submit).
    timelines: draws member 0's first test videos at every evaluation
      (`salx.app.pictures.TimelineImages`), or None.
    max_pending: evaluations in flight before `full()` asks the caller to wait for
      the oldest.
  """

  def __init__(self, run: config_lib.Run, *, holdout_source=None, workers: int = 0,
               timelines=None, max_pending: int = 4):
    config = run.config
    self.run_members = run.members
    self.stacked_hp = run.stacked_hp
    self.test = SplitForward(run.method, run.model, run.source, run.hp, config, run.mesh)
    self.scorer = make_scorer(run.method, run.source, config, config.protocol, None)
    self.holdout = self.holdout_scorer = None
    if holdout_source is not None:
      self.holdout = SplitForward(run.method, run.model, holdout_source, run.hp, config,
                                  run.mesh)
      self.holdout_scorer = make_scorer(run.method, holdout_source, config,
                                        holdout_protocol(config.protocol), "")
    self.timelines = timelines
    self.max_pending = max(1, max_pending)
    self._pending = collections.deque()
    self._executor = None
    if workers > 0:
      self._executor = concurrent.futures.ProcessPoolExecutor(
          workers, mp_context=multiprocessing.get_context("spawn"),
          initializer=_ignore_interrupts)

  def _score(self, scorer: Scorer, batches: List[HostBatch], hp, step: int):
    if self._executor is None:
      return _Done(scorer(batches, hp, step))
    return self._executor.submit(scorer, batches, hp, step)

  def submit(self, params, step: int) -> None:
    """Starts the evaluation of `params` [K, ...] at `step`: the members' forward
    now, on the devices; localization and AP in the workers (or now, without)."""
    futures = []
    for forward, scorer in ((self.test, self.scorer), (self.holdout, self.holdout_scorer)):
      if forward is None:
        continue
      outputs = forward.outputs(params, self.stacked_hp)
      futures.append([self._score(scorer, member_batches(outputs, m.index), m.hp, step)
                      for m in self.run_members])
      if self.timelines is not None and forward is self.test:
        self.timelines.write(step, member_batches(outputs, 0))
    # The workers score while the state moves on: keep a copy of what they score.
    self._pending.append((step, futures, params if self._executor is None else _copy(params)))

  def full(self) -> bool:
    """Whether `max_pending` evaluations are in flight."""
    return len(self._pending) >= self.max_pending

  def finished(self, wait: bool = False) -> Iterator[Evaluation]:
    """The finished evaluations, oldest first; with `wait`, every pending one."""
    while self._pending:
      step, futures, params = self._pending[0]
      if not wait and not all(f.done() for group in futures for f in group):
        return
      self._pending.popleft()
      test = [f.result() for f in futures[0]]
      held = [f.result()[0] for f in futures[1]] if len(futures) > 1 else [None] * len(test)
      yield Evaluation(step, [MemberEvaluation(record, detections, h)
                              for (record, detections), h in zip(test, held)], params)

  def run(self, params, step: int) -> Evaluation:
    """Evaluates `params` [K, ...] at `step` and returns it.

    Raises:
      RuntimeError: evaluations submitted earlier are still pending (take them with
        `finished` first: `run` would otherwise drop them).
    """
    if self._pending:
      raise RuntimeError(f"{len(self._pending)} evaluation(s) still pending; take them "
                         "with finished() before run()")
    self.submit(params, step)
    (evaluation,) = self.finished(wait=True)
    return evaluation

  def close(self) -> None:
    if self._executor is not None:
      self._executor.shutdown(wait=False, cancel_futures=True)
      self._executor = None

  def __enter__(self) -> "Evaluator":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


# ----------------------------------------------------------------------------
# Selection.


@jax.jit
def _keep_improved(improved: jax.Array, params: Any, best: Any) -> Any:
  """best params [K, ...] with the members flagged in `improved` [K] replaced."""
  return jax.tree_util.tree_map(
      lambda p, b: jnp.where(improved.reshape((-1,) + (1,) * (p.ndim - 1)), p, b),
      params, best)


class Selection:
  """Each member's records and the members' best params (saved as workdir/best).

  Args:
    members: each member's records so far (new, or from a checkpoint's progress).
    checkpoints: the run's `RunCheckpoints` (the best params are saved there).
    workdir: where the predictions files go (None: written nowhere, e.g. on
      processes other than 0).
    num_steps: the run's last step (its evaluation writes predictions_last).
    best_params: the members' best params [K, ...] restored from workdir/best.
  """

  def __init__(self, members: Sequence[report.MemberRecords],
               checkpoints: checkpoints_lib.RunCheckpoints, workdir: Optional[str],
               num_steps: int, best_params: Any = None):
    self.members = list(members)
    self.checkpoints, self.workdir, self.num_steps = checkpoints, workdir, num_steps
    self.best_params = best_params

  @classmethod
  def new(cls, members: Sequence[config_lib.Member], *args, **kwargs) -> "Selection":
    return cls([report.MemberRecords(m.seed, dict(m.overrides)) for m in members],
               *args, **kwargs)

  def record_untrained(self, evaluation: Evaluation) -> None:
    for records, member in zip(self.members, evaluation.members):
      records.untrained = member.record

  def apply(self, evaluation: Evaluation) -> None:
    """Records one evaluation of every member; the improved members' params become
    their best, saved with the predictions of their best step."""
    improved = [records.record(member.record, member.holdout)
                for records, member in zip(self.members, evaluation.members)]
    if evaluation.step == self.num_steps:
      self._write_predictions("last", evaluation, [True] * len(improved))
    if any(improved):
      # A new buffer (never the donated state's own) holding each member's best.
      params = evaluation.params
      self.best_params = _keep_improved(
          jnp.asarray(improved), params, params if self.best_params is None
          else self.best_params)
      self.checkpoints.save_best(evaluation.step, self.best_params, self.best_record())
      self._write_predictions("best", evaluation, improved)

  def _write_predictions(self, which: str, evaluation: Evaluation,
                         members: Sequence[bool]) -> None:
    if self.workdir is None:
      return
    for m, (write, member) in enumerate(zip(members, evaluation.members)):
      if write:
        report.write_predictions(
            self.workdir, report.predictions_name(which, m, len(self.members)),
            evaluation.step, member.detections)

  def best_record(self) -> Dict[str, Any]:
    """What workdir/best holds beside the members' best params: one member's best
    record, or with several the mean of their best average mAPs (which only rises,
    so the newest best checkpoint is kept) and each member's record."""
    bests = [m.best.to_json() for m in self.members]
    if len(bests) == 1:
      return bests[0]
    return {"average_mAP": sum(b["average_mAP"] for b in bests) / len(bests),
            "step": max(b["step"] for b in bests), "members": bests}

  def mean_of(self, which: str) -> report.MeanStd:
    """Mean ± std over the members of their `which` ('untrained', 'last' or 'best')
    average mAP."""
    return report.mean_std([getattr(m, which).average_mAP for m in self.members])

  def latest_best_step(self) -> int:
    return max(m.best.step for m in self.members)

  def scalars(self, which: str) -> Dict[str, float]:
    """test/<metric> (the members' mean), and test/member<m>/<metric> with members."""
    per_member = [getattr(m, which).scalars() for m in self.members]
    out = {k: float(np.mean([s[k] for s in per_member])) for k in per_member[0]}
    if len(per_member) > 1:
      out.update({k.replace("test/", f"test/member{m}/", 1): v
                  for m, s in enumerate(per_member) for k, v in s.items()})
    return out

  def progress_json(self, config_dict: Dict[str, Any]) -> Dict[str, Any]:
    """The progress record a checkpoint carries: {'config', 'members': [...]}."""
    return {"config": config_dict, "members": [m.to_json() for m in self.members]}

  @staticmethod
  def members_of_progress(progress: Dict[str, Any]) -> List[report.MemberRecords]:
    return [report.MemberRecords.from_json(m) for m in progress["members"]]


# ----------------------------------------------------------------------------
# The same detections under other protocols.


def rescore_predictions(name: str, run: config_lib.Run, members: Sequence[report.MemberRecords],
                        workdir: str, ambiguous) -> Dict[str, List[Optional[EvalRecord]]]:
  """{'last', 'best'}: each member's record of its predictions file under protocol
  `name` (None where the file is missing); step and accuracy are those of the
  member's own record."""
  config = run.config
  ground_truth = protocol_ground_truth(name, run.source, config.protocol_ground_truth[name])
  out = {}
  for which in ("last", "best"):
    out[which] = []
    for m, (member, records) in enumerate(zip(run.members, members)):
      path = os.path.join(workdir, "predictions_"
                          f"{report.predictions_name(which, m, len(members))}.json")
      own = getattr(records, which)
      if own is None or not os.path.exists(path):
        out[which].append(None)
        continue
      result = score_detections(name, ground_truth, Detections.from_json(path),
                                run.method.tiou_thresholds(member.hp), ambiguous)
      out[which].append(EvalRecord.of_result(result, own.accuracy, own.step,
                                             own.num_videos))
  return out


def rescored_table(name: str, records: Dict[str, List[Optional[EvalRecord]]]) -> str:
  """The table of `rescore_predictions`, with the protocol's line."""
  several = len(records["last"]) > 1
  rows = [(f"{which}{f' m{m}' if several else ''}", record)
          for which in ("last", "best") for m, record in enumerate(records[which])
          if record is not None]
  return (report.format_table(rows, title=f"the same detections under the {name} protocol")
          + f"\nevaluation: {next(r for r in records['last'] if r).protocol}")


# ----------------------------------------------------------------------------
# --mode=evaluate.


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str
                        ) -> Tuple[EvalRecord, str]:
  """Scores saved weights on the test split and prints the table.

  The weights are `config.init_checkpoint` when set (the authors' checkpoint file,
  or a salx run folder), else the workdir's `config.eval_checkpoint` ('best' or
  'latest'). Writes workdir/predictions_eval_<which>.json and
  workdir/metrics_eval_<which>.json; creates nothing when there is nothing to
  evaluate.

  Returns:
    (member 0's evaluation record, the printed table).
  """
  config_lib.preflight(config, workdir, mode="evaluate")
  workdir = os.path.abspath(os.path.expanduser(workdir))
  which = config.eval_checkpoint
  if not config.init_checkpoint:
    folder = os.path.join(workdir, checkpoints_lib.BEST_DIR if which == "best"
                          else checkpoints_lib.LATEST_DIR)
    if not os.path.isdir(folder):
      raise FileNotFoundError(f"no {which} checkpoint to evaluate: {folder} does not "
                              "exist (train first, or set --config.init_checkpoint)")
  with runtime.WorkdirLock(workdir, enabled=jax.process_index() == 0):
    return _evaluate_locked(config, workdir, which)


def _evaluate_locked(config: ml_collections.ConfigDict, workdir: str, which: str
                     ) -> Tuple[EvalRecord, str]:
  members = config_lib.members_of(config)
  run = config_lib.open_run(config, members=members[:1] if config.init_checkpoint else None)
  if config.init_checkpoint:
    params, what = checkpoints_lib.load_init_members(run.method, config.init_checkpoint,
                                                     run.state.params, run.mesh)
    step, which = 0, "init"
  else:
    with checkpoints_lib.RunCheckpoints(workdir, keep=config.keep_checkpoints) as ckpts:
      if which == "best":
        restored = ckpts.restore_best(run.state.params)
        params, step = (None, None) if restored is None else (restored[0], restored[2])
      else:
        restored = ckpts.restore_latest(run.state)
        params, step = ((None, None) if restored is None else
                        (restored[0].params, int(jax.device_get(restored[0].step)[0])))
    if params is None:
      raise FileNotFoundError(f"no {which} checkpoint in {workdir}")
    what = f"{which} checkpoint"
  with Evaluator(run) as evaluator:
    evaluation = evaluator.run(params, step)
  records = [member.record for member in evaluation.members]
  label = f"{which} checkpoint" if step else "weights"
  rows = ([(label, records[0])] if len(run.members) == 1 else
          [(f"{label} m{m.index} seed {m.seed}", r) for m, r in zip(run.members, records)])
  table = report.format_table(rows, title=run.title())
  table += f"\nweights: {what}\nevaluation: {records[0].protocol}"
  if jax.process_index() == 0:
    print(table, flush=True)
    for m, member in zip(run.members, evaluation.members):
      name = f"eval_{which}" + (f"_member{m.index}" if len(run.members) > 1 else "")
      report.write_predictions(workdir, name, step, member.detections)
    report.write_json(os.path.join(workdir, f"metrics_eval_{which}.json"),
                      records[0].to_json() if len(run.members) == 1 else
                      {"members": [r.to_json() for r in records]})
  return records[0], table
