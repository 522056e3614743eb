"""Training and evaluation of SAL: `train_and_evaluate(config, workdir)`.

One run, read top to bottom in `train_and_evaluate`:
  1. open the data (the synthetic dataset is generated on first use) and check it,
     so that a broken folder stops the run before anything trains;
  2. build the model and the train state, replicated over a mesh of all devices
     (the batch is sharded along it; `salx.sharding`);
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
import hashlib
import json
import os
import signal
import types
from typing import Any, Dict, Iterator, Optional, Tuple

from absl import logging
from clu import metric_writers
from clu import periodic_actions
import jax
from jax.experimental import multihost_utils
import jax.numpy as jnp
import ml_collections
import numpy as np

from salx import checkpoint as checkpoint_lib
from salx import evaluation
from salx import inference
from salx import input_pipeline
from salx import localization
from salx import model as model_lib
from salx import report
from salx import sharding
from salx import train_step as train_step_lib
from salx import variants
from salx.datasets import check as check_lib
from salx.datasets import layouts
from salx.datasets import synthetic
from salx.datasets.errors import DataError

DATASETS = ("synthetic",) + layouts.DATASETS
COMPUTE_DTYPES = {"float32": jnp.float32, "bfloat16": jnp.bfloat16}
MAX_PROBLEMS_SHOWN = 20
LAYOUT_HINT = (f"salx reads the layouts {layouts.LAYOUT_DESCRIPTIONS}; "
               "see salx/datasets/layouts.py")


class ConfigError(ValueError):
  """The config cannot be used (the message names the field)."""


class NonFiniteLossError(RuntimeError):
  """The training loss became NaN or infinite; the run stopped."""


# ----------------------------------------------------------------------------
# Configuration and data.


def check_config(config: ml_collections.ConfigDict) -> None:
  """Raises ConfigError for a config the run cannot use, naming the field."""
  problems = []
  if config.dataset not in DATASETS:
    problems.append(f"dataset {config.dataset!r} is not one of {DATASETS}")
  if config.variant not in variants.VARIANTS:
    problems.append(f"variant {config.variant!r} is not one of "
                    f"{sorted(variants.VARIANTS)}")
  if config.compute_dtype not in COMPUTE_DTYPES:
    problems.append(f"compute_dtype {config.compute_dtype!r} is not one of "
                    f"{sorted(COMPUTE_DTYPES)}")
  if config.check_data not in ("full", "quick", "none"):
    problems.append(f"check_data {config.check_data!r} is not 'full', 'quick' or 'none'")
  if config.eval_checkpoint not in ("best", "latest"):
    problems.append(f"eval_checkpoint {config.eval_checkpoint!r} is not 'best' or "
                    "'latest'")
  for field in ("num_steps", "batch_size", "eval_batch_size", "num_segments",
                "eval_every", "checkpoint_every", "keep_checkpoints", "log_every",
                "hidden_dim", "feature_dim"):
    if config[field] < 1:
      problems.append(f"{field} must be positive, got {config[field]}")
  if config.seed < 0:
    problems.append(f"seed must be non-negative, got {config.seed}")
  if problems:
    raise ConfigError("invalid config: " + "; ".join(problems))


def synthetic_spec(config: ml_collections.ConfigDict) -> synthetic.SyntheticSpec:
  """The SyntheticSpec of `config.synthetic` (feature_dim: config.feature_dim)."""
  try:
    return synthetic.SyntheticSpec(**config.synthetic.to_dict(),
                                   feature_dim=config.feature_dim)
  except (TypeError, ValueError) as e:
    raise ConfigError(f"config.synthetic: {e}") from None


def default_synthetic_dir(spec: synthetic.SyntheticSpec) -> str:
  """~/.cache/salx/synthetic-<hash of the spec> ($XDG_CACHE_HOME is honoured)."""
  cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
  text = json.dumps(dataclasses.asdict(spec), sort_keys=True)
  digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
  return os.path.join(cache, "salx", f"synthetic-{digest}")


def open_data(config: ml_collections.ConfigDict) -> layouts.FeatureSource:
  """The data source of the run; generates the synthetic dataset on first use.

  Raises:
    DataError: no or a missing data folder, or one no layout can read; the message
      names the folder and the expected layouts and suggests the synthetic config.
  """
  if config.dataset == "synthetic":
    spec = synthetic_spec(config)
    data_dir = config.data_dir or default_synthetic_dir(spec)
    layout = "sal" if config.layout == "auto" else config.layout
    if not os.path.isdir(data_dir):
      logging.info("Generating the synthetic dataset into %s (once).", data_dir)
    synthetic.make_synthetic_dataset(data_dir, spec, layout=layout)
    return layouts.open_source(data_dir, "thumos14", layout,
                               feature_dim=config.feature_dim)
  if not config.data_dir:
    raise DataError(
        f"no data folder given for {config.dataset}: pass --config.data_dir=DIR, the "
        f"folder of the two-stream I3D features. {LAYOUT_HINT}; "
        f"{layouts.SYNTHETIC_HINT}")
  return layouts.open_source(config.data_dir, config.dataset, config.layout,
                             feature_dim=config.feature_dim)


def _quick_problems(source: layouts.FeatureSource) -> Iterator[check_lib.Problem]:
  """Problems visible without reading the features: missing files, shapes from the
  .npy headers, RGB/flow length mismatches, annotations and labels."""
  known = set(source.class_names)
  for split in layouts.SPLITS:
    for name in source.video_names(split):
      try:
        source.num_snippets(split, name)
      except DataError as e:
        yield check_lib.Problem(e.path or source.feature_file(split, name), str(e))
      annotation = source.annotation(name)
      if annotation is None:
        yield check_lib.Problem(source.annotation_file,
                                f"video {name} of the {split} split has no annotation")
        continue
      for label in sorted(set(annotation.video_labels) | set(annotation.segment_labels)):
        if label not in known:
          yield check_lib.Problem(source.annotation_file,
                                  f"video {name} has label {label!r}, which is not one "
                                  f"of the {len(known)} classes of the class list")
      if split == "train" and not annotation.video_labels:
        yield check_lib.Problem(source.annotation_file,
                                f"training video {name} has no labels")


def check_data(source: layouts.FeatureSource, mode: str, dataset: str) -> None:
  """Stops the run before training when the data folder has problems.

  Args:
    source: the opened data folder.
    mode: 'full' (read every feature file: also NaN values), 'quick' (file
      headers and annotations only) or 'none'.
    dataset: for the hint on the full validator's command.

  Raises:
    DataError: listing the problems, each with its file.
  """
  if mode == "none":
    return
  problems = list(check_lib.iter_problems(source) if mode == "full"
                  else _quick_problems(source))
  if not problems:
    return
  shown = "\n  ".join(str(p) for p in problems[:MAX_PROBLEMS_SHOWN])
  more = len(problems) - MAX_PROBLEMS_SHOWN
  raise DataError(
      f"{len(problems)} problem(s) in the data folder {source.data_dir} "
      f"({source.layout} layout); training did not start:\n  {shown}"
      + (f"\n  ... and {more} more" if more > 0 else "")
      + f"\nList them all with: python -m salx.datasets.check --dataset {dataset} "
      f"--data_dir {source.data_dir}", problems[0].file)


def make_variant(config: ml_collections.ConfigDict) -> variants.Variant:
  """The SAL code path of the config, with its T."""
  return variants.get_variant(config.variant).replace(num_segments=config.num_segments)


def make_model(config: ml_collections.ConfigDict, num_classes: int,
               variant: variants.Variant) -> model_lib.SAL:
  return model_lib.build_model(
      num_classes, variant, feature_dim=config.feature_dim,
      hidden_dim=config.hidden_dim, dropout_rate=config.dropout_rate,
      dtype=COMPUTE_DTYPES[config.compute_dtype], param_dtype=jnp.float32)


def num_classes_of(config: ml_collections.ConfigDict,
                   source: layouts.FeatureSource) -> int:
  """C from the data; config.num_classes, when set, must agree."""
  num_classes = len(source.class_names)
  if config.num_classes and config.num_classes != num_classes:
    raise DataError(
        f"config.num_classes is {config.num_classes} but the data at "
        f"{source.data_dir} has {num_classes} classes (its class list); set "
        "--config.num_classes=0 to take them from the data", source.annotation_file)
  return num_classes


def init_state(model: model_lib.SAL, variant: variants.Variant,
               config: ml_collections.ConfigDict, rng: jax.Array,
               mesh) -> train_step_lib.TrainState:
  """A fresh TrainState, created directly replicated over the mesh."""
  tx = train_step_lib.make_optimizer(config.learning_rate, config.weight_decay)

  def create(key):
    return train_step_lib.create_train_state(
        model, variant, key, input_shape=(2, config.num_segments, config.feature_dim),
        tx=tx)

  return jax.jit(create, out_shardings=sharding.replicated(mesh))(rng)


# ----------------------------------------------------------------------------
# Evaluation on the test split.


def _to_host(tree: Any) -> Any:
  """NumPy copies of (possibly multi-host) arrays, whole on every process."""
  if jax.process_count() == 1:
    return jax.device_get(tree)
  return multihost_utils.process_allgather(tree, tiled=True)


def _full_batch_on_mesh(x: np.ndarray, mesh) -> jax.Array:
  """A global array, batch-sharded, from a batch every process holds whole."""
  return jax.make_array_from_callback(x.shape, sharding.batch_sharded(mesh),
                                      lambda index: x[index])


class TestEvaluator:
  """Runs the test split through the model and scores the detections (SPEC 3, 5).

  The model runs on padded, masked batches of `eval_batch_size` videos sharded
  over the mesh (one shape, one compilation); with `cache_data` the sampled test
  inputs stay on the devices after the first evaluation. Every process reads every
  test video and computes the same metrics: the checkpoint decisions of all
  processes must agree.
  """

  def __init__(self, model: model_lib.SAL, source: layouts.FeatureSource,
               variant: variants.Variant, config: ml_collections.ConfigDict, mesh):
    self.source, self.variant, self.mesh = source, variant, mesh
    self.class_names = tuple(source.class_names)
    self.num_segments = config.num_segments
    self.keep_all_if_shorter = config.eval_keep_all_if_shorter
    self.cache = config.cache_data
    self._cached_batches = None
    devices = mesh.devices.size
    self.batch_size = -(-config.eval_batch_size // devices) * devices
    self.ground_truth = dataclasses.replace(
        evaluation.load_ground_truth(source.ground_truth(), "test"),
        source=source.annotation_file)
    evaluated = set(self.ground_truth.class_names)
    self.unevaluated = np.asarray([i for i, c in enumerate(self.class_names)
                                   if c not in evaluated], np.int64)
    if self.unevaluated.size:
      logging.warning("Classes without instances in the test split are not "
                      "evaluated; their detections are dropped: %s",
                      [self.class_names[i] for i in self.unevaluated])
    forward = train_step_lib.make_eval_forward(model)

    def outputs(params, features, mask):
      """[B, T, C] cas, [B, T] actionness per stream, [B, C] video logits, float32."""
      o = forward(params, features, mask)
      return {k: v.astype(jnp.float32) for k, v in (
          ("cas", o.cas), ("action_flow", o.action_flow),
          ("action_rgb", o.action_rgb), ("video_logits", o.video_logits))}

    self.forward = sharding.jit_eval_forward(outputs, mesh)

  def batches(self) -> Iterator[Tuple[Dict[str, np.ndarray], jax.Array, jax.Array]]:
    """(host batch, features [B, T, D], mask [B, T] on the mesh) of the test split."""
    if self._cached_batches is not None:
      yield from self._cached_batches
      return
    batches = []
    for batch in input_pipeline.eval_batches(
        self.source, num_segments=self.num_segments, batch_size=self.batch_size,
        keep_all_if_shorter=self.keep_all_if_shorter, split="test"):
      item = ({k: batch[k] for k in ("names", "num_snippets", "labels", "valid", "mask")},
              _full_batch_on_mesh(batch["features"], self.mesh),
              _full_batch_on_mesh(batch["mask"], self.mesh))
      if self.cache:
        batches.append(item)
      yield item
    if self.cache:
      self._cached_batches = batches

  def localize(self, params) -> Tuple[Dict[str, localization.VideoLocalization],
                                      np.ndarray]:
    """({video: VideoLocalization} of the test split, [N, C] labels)."""
    per_video, labels = {}, []
    for batch, features, mask in self.batches():
      out = _to_host(self.forward(params, features, mask))
      per_video.update(inference.per_video_outputs(
          types.SimpleNamespace(**out), batch["names"], batch["num_snippets"],
          valid_lengths=batch["mask"].sum(axis=1), valid=batch["valid"]))
      labels.append(batch["labels"][batch["valid"]])
    localized = localization.localize_batch(per_video, self.variant, self.class_names)
    if self.unevaluated.size:
      localized = {name: dataclasses.replace(loc, proposals=loc.proposals.take(
          ~np.isin(loc.proposals.class_index, self.unevaluated)))
                   for name, loc in localized.items()}
    return localized, np.concatenate(labels)

  def __call__(self, params, step: int
               ) -> Tuple[report.Record, Dict[str, localization.VideoLocalization]]:
    """(evaluation record, {video: VideoLocalization}) of `params` at `step`."""
    localized, labels = self.localize(params)
    predictions = dataclasses.replace(
        inference.predictions_of(localized, self.ground_truth, self.class_names),
        source=f"of step {step}")
    result = evaluation.evaluate_detections(self.ground_truth, predictions,
                                            self.variant.tiou_thresholds)
    accuracy = evaluation.classification_accuracy(
        inference.video_scores(localized), labels, self.variant.class_thresh)
    return report.evaluation_record(result, accuracy, step, len(localized)), localized


# ----------------------------------------------------------------------------
# Training helpers.


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


class PreemptionWatch:
  """SIGTERM asks the run to checkpoint and exit cleanly.

  One process: a SIGTERM handler sets a flag the loop reads after every step.
  Several processes: JAX's preemption sync point (set up by
  jax.distributed.initialize) makes every process stop at the same step.
  """

  def __init__(self):
    self.multiprocess = jax.process_count() > 1
    self.requested = False
    self._previous = None
    if not self.multiprocess:
      self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def reached(self, step: int) -> bool:
    if self.multiprocess:
      try:
        return multihost_utils.reached_preemption_sync_point(step)
      except RuntimeError as e:   # jax_enable_preemption_service switched off.
        logging.warning("No preemption handling on this multi-process run: %s", e)
        self.multiprocess, self.requested = False, False
        return False
    return self.requested

  def close(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None


@jax.jit
def _all_finite(tree) -> jax.Array:
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x))
                            for x in jax.tree_util.tree_leaves(tree)]))


def write_train_metrics(writer: metric_writers.MetricWriter, pending: list,
                        last_good_step: Optional[int], latest_dir: str) -> None:
  """Brings the pending step metrics to the host, checks them, writes their means.

  Args:
    pending: [(step, {name: device scalar})] since the last call.
    last_good_step: the newest checkpoint's step, for the error message.
    latest_dir: where that checkpoint lives.

  Raises:
    NonFiniteLossError: a loss is NaN or infinite (nothing after it is saved).
  """
  if not pending:
    return
  steps = [step for step, _ in pending]
  host = jax.device_get([metrics for _, metrics in pending])
  losses = np.asarray([m["loss"] for m in host], np.float64)
  bad = np.flatnonzero(~np.isfinite(losses))
  bad_inputs = np.flatnonzero([m.get("bad_videos", 0) > 0 for m in host])
  where = (f"the last good checkpoint, step {last_good_step}, is intact in "
           f"{latest_dir}" if last_good_step is not None else
           "no checkpoint had been saved yet")
  if bad_inputs.size:
    raise NonFiniteLossError(
        f"the training batch of step {steps[bad_inputs[0]]} holds "
        f"{int(host[bad_inputs[0]]['bad_videos'])} video(s) with NaN or infinite "
        "features or without a positive label; the run stopped without saving, and "
        f"{where}. Find the files with python -m salx.datasets.check.")
  if bad.size:
    raise NonFiniteLossError(
        f"the training loss is {losses[bad[0]]} at step {steps[bad[0]]} (NaN or "
        f"infinite); the run stopped without saving the diverged state, and {where}. "
        "Resuming replays the same steps: lower --config.learning_rate, use "
        "--config.compute_dtype=float32, or check the features with "
        "python -m salx.datasets.check.")
  means = {f"train/{k}": float(np.mean([m[k] for m in host])) for k in host[0]}
  writer.write_scalars(steps[-1], means)


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


def _title(config: ml_collections.ConfigDict, source: layouts.FeatureSource,
           variant: variants.Variant) -> str:
  return (f"SAL ({variant.name} code path, hidden {config.hidden_dim}, T "
          f"{config.num_segments}, batch {config.batch_size}) on {config.dataset} at "
          f"{source.data_dir}")


def _write_predictions(workdir: str, which: str, step: int,
                       localized: Dict[str, localization.VideoLocalization]) -> None:
  """workdir/predictions_<which>.json: ActivityNet detection JSON (process 0)."""
  if jax.process_index() == 0:
    report.write_json(os.path.join(workdir, f"predictions_{which}.json"),
                      localization.detections_json(localized, details=f"salx step {step}"))


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
    NonFiniteLossError: the loss became NaN or infinite (the last good checkpoint
      stays in workdir/checkpoints).
  """
  check_config(config)
  workdir = os.path.abspath(os.path.expanduser(workdir))
  is_chief = jax.process_index() == 0

  # 1. Data.
  source = open_data(config)
  check_data(source, config.check_data,
             "thumos14" if config.dataset == "synthetic" else config.dataset)
  num_classes = num_classes_of(config, source)
  logging.info("Data: %s, %d classes, %d train / %d test videos (%s layout at %s).",
               config.dataset, num_classes, len(source.video_names("train")),
               len(source.video_names("test")), source.layout, source.data_dir)

  # 2. Model, mesh, state.
  variant = make_variant(config)
  model = make_model(config, num_classes, variant)
  mesh = sharding.make_mesh()
  try:
    sharding.check_global_batch(config.batch_size, mesh)
  except ValueError as e:
    raise ConfigError(f"config.batch_size: {e}") from None
  init_rng, dropout_rng = jax.random.split(jax.random.key(config.seed))
  state = init_state(model, variant, config, init_rng, mesh)
  train_step = sharding.jit_train_step(
      train_step_lib.make_train_step(model, variant), mesh)
  evaluator = TestEvaluator(model, source, variant, config, mesh)
  logging.info("Model: %d parameters on a mesh of %d devices (%d processes).",
               sum(x.size for x in jax.tree_util.tree_leaves(state.params)),
               mesh.devices.size, jax.process_count())

  # 3. Resume, or start from the untrained model.
  os.makedirs(workdir, exist_ok=True)
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
    logging.info("Resumed from step %d in %s.", start_step, ckpts.latest_dir)
  else:
    start_step = 0
    progress = {"config": config.to_dict(), "untrained": None, "last": None,
                "best": None, "history": []}
    writer.write_hparams({k: v for k, v in _flat(config.to_dict()).items()
                          if isinstance(v, (int, float, str, bool))})
    if config.eval_untrained:
      progress["untrained"], _ = evaluator(state.params, 0)
      writer.write_scalars(0, report.scalars(progress["untrained"]))
  ckpts.discard_best_after(start_step)   # Saved by a killed run; recomputed below.

  # 4. Train.
  progress["config"] = config.to_dict()
  train_iter = device_batches(input_pipeline.train_batches(
      source, batch_size=config.batch_size, num_segments=config.num_segments,
      seed=config.seed, start_step=start_step,
      num_steps=config.num_steps - start_step, process_index=jax.process_index(),
      process_count=jax.process_count(), cache=config.cache_data), mesh)
  report_progress = periodic_actions.ReportProgress(
      num_train_steps=config.num_steps, writer=writer, every_steps=config.log_every)
  watch = PreemptionWatch()
  pending = []   # (step, device metrics) since the last host sync.
  status, step = "completed", start_step
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
          write_train_metrics(writer, pending, ckpts.latest_step(), ckpts.latest_dir)
          pending = []

        if evaluate:
          with report_progress.timed("eval"):
            record, localized = evaluator(state.params, step)
          writer.write_scalars(step, report.scalars(record))
          progress["last"] = record
          progress["history"].append(report.summary(record))
          if is_last:
            _write_predictions(workdir, "last", step, localized)
          if report.is_better(record, progress["best"]):
            progress["best"] = record
            ckpts.save_best(step, state.params, record)
            _write_predictions(workdir, "best", step, localized)
            logging.info("Step %d: new best average mAP %.4f.", step,
                         record["average_mAP"])

        if save:
          if not bool(_all_finite(state.params)):
            raise NonFiniteLossError(
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

  # 5. Report.
  if status == "preempted":
    return RunResult(status, step, {}, "")
  table, metrics = report.final_report(
      progress, title=_title(config, source, variant),
      eval_every=config.eval_every, eval_start_step=config.eval_start_step)
  if is_chief:
    print(table, flush=True)
    report.write_json(os.path.join(workdir, "metrics.json"),
                      dict(metrics, config=config.to_dict()))
    with open(os.path.join(workdir, "report.txt"), "w", encoding="utf-8") as f:
      f.write(table + "\n")
  writer.close()
  return RunResult(status, step, metrics, table)


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str
                        ) -> Tuple[report.Record, str]:
  """Evaluates the `config.eval_checkpoint` ('best' or 'latest') of `workdir`.

  Writes workdir/predictions_eval_<which>.json and metrics_eval_<which>.json.

  Returns:
    (the evaluation record, the printed table).
  """
  check_config(config)
  workdir = os.path.abspath(os.path.expanduser(workdir))
  source = open_data(config)
  variant = make_variant(config)
  model = make_model(config, num_classes_of(config, source), variant)
  mesh = sharding.make_mesh()
  state = init_state(model, variant, config, jax.random.key(0), mesh)
  which = config.eval_checkpoint
  with checkpoint_lib.RunCheckpoints(workdir, keep=config.keep_checkpoints) as ckpts:
    if which == "best":
      restored = ckpts.restore_best(state.params)
      params, step = (None, None) if restored is None else (restored[0], restored[2])
    else:
      restored = ckpts.restore_latest(state)
      params, step = ((None, None) if restored is None else
                      (restored[0].params, int(jax.device_get(restored[0].step))))
  if params is None:
    raise FileNotFoundError(f"no {which} checkpoint in {workdir} "
                            f"({ckpts.best_dir if which == 'best' else ckpts.latest_dir})")
  record, localized = TestEvaluator(model, source, variant, config, mesh)(params, step)
  table = report.format_table([(f"{which} checkpoint", record)],
                              title=_title(config, source, variant))
  table += f"\nprotocol: {record['protocol']}"
  if jax.process_index() == 0:
    print(table, flush=True)
    _write_predictions(workdir, f"eval_{which}", step, localized)
    report.write_json(os.path.join(workdir, f"metrics_eval_{which}.json"), record)
  return record, table
