"""The arrays of a trained run's pictures, made from its checkpoint and its data.

`collect(workdir, split, video)` restores the run's config (W/metrics.json) and its
best checkpoint (else the latest), runs the evaluator's model forward over the
split's padded, masked batches, localizes every batch (the method's `localize`)
and returns, per video, the arguments of
`salx.viz.timeline.timeline_figure`, with the run's training curves (metrics.json
'train_history'), its evaluations ('history') and its last and best records: the
keyword arguments of `salx.viz.run_pictures.draw_run`. `batch_entries` makes the
per-video arguments of one batch of model outputs (also what a trainer draws into
TensorBoard). `draw_pictures` draws them into a folder and `TimelineImages` into
TensorBoard: the app's only door to matplotlib (`salx.viz`), imported when
something is drawn, so a run that does not draw pays nothing for it.
"""

from __future__ import annotations

import os
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import jax
import ml_collections
import numpy as np

from salx.app import checkpoints as checkpoint_lib
from salx.app import config as config_lib
from salx.app import evaluation
from salx.app import report
from salx.core import sharding
from salx.core.constants import SPLITS
from salx.datasets import source as source_lib
from salx.postprocess import json_limits

METRICS_FILE, REPORT_FILE = report.METRICS_FILE, report.REPORT_FILE


class NoRunError(FileNotFoundError):
  """The workdir holds no finished run (the message names the file)."""


def read_metrics(workdir: str) -> Dict[str, Any]:
  """W/metrics.json, checked to hold the run's config."""
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.isfile(path):
    raise NoRunError(f"{path}: not found; {workdir} holds no finished run (train one "
                     f"with python -m salx.main --workdir {workdir})")
  try:
    metrics = json_limits.load_json(path)
  except (OSError, ValueError) as e:
    raise NoRunError(f"{path}: unreadable ({e})") from None
  if not isinstance(metrics, dict) or not isinstance(metrics.get("config"), dict):
    raise NoRunError(f"{path}: holds no 'config' of the run")
  return metrics


def _member0(tree: Any) -> Any:
  return jax.tree_util.tree_map(lambda x: np.asarray(x)[0], tree)


def _restore(workdir: str, config, state) -> Tuple[Any, int, str, Any]:
  """(params, step, 'best' | 'latest', method state) of member 0 of the run's
  checkpoints (`state`: the members' template [K, ...])."""
  with checkpoint_lib.RunCheckpoints(workdir, keep=config.keep_checkpoints) as ckpts:
    latest = ckpts.restore_latest(state)
    best = ckpts.restore_best(state.params)
  method_state = _member0((latest[0] if latest is not None else state).method_state)
  if best is not None:
    return _member0(best[0]), int(best[2]), "best", method_state
  if latest is not None:
    return (_member0(latest[0].params), int(jax.device_get(latest[0].step)[0]),
            "latest", method_state)
  raise NoRunError(f"{os.path.join(workdir, checkpoint_lib.BEST_DIR)}: no best and no "
                   f"latest checkpoint ({checkpoint_lib.LATEST_DIR}/) in {workdir}")


def _ground_truth(source: source_lib.FeatureSource, name: str
                  ) -> Tuple[List[Tuple[int, float, float]], Optional[float]]:
  """([(class_index, start_s, end_s)], duration or None) of the video's annotation."""
  annotation = source.annotation(name)
  if annotation is None:
    return [], None
  index = {c: i for i, c in enumerate(source.class_names)}
  gt = [(index[label], float(s), float(e))
        for label, (s, e) in zip(annotation.segment_labels, annotation.segments)]
  return gt, annotation.duration


def batch_entries(outputs: Mapping[str, np.ndarray], batch: Mapping[str, np.ndarray],
                  method, hp, source: source_lib.FeatureSource, split: str = "test",
                  method_state=None) -> List[Dict[str, Any]]:
  """Per real video of one batch, the arguments of `timeline_figure` (and more).

  Args:
    outputs: the method's outputs on the batch, on the host (one member's).
    batch: the host batch of `input_pipeline.eval_batches`: 'names' [B],
      'num_snippets' [B], 'mask' [B, T], 'valid' [B], 'labels' [B, C].
    method, hp: the run's method and (member 0's) hyperparameters.
    source: the data (class names; annotations for the ground truth, durations).
    split: the videos' split; 'train' adds what the method trains the actionness
      towards (SAL: the pseudo label and the adaptive mask).
    method_state: the method's training state (the training split only).

  Returns:
    Per video {'video', 'split', 'duration_s', 'seconds_per_snippet',
    'class_names', 'gt', 'detections' (the video's `Detections`), 'cas' (the
    per-class score [T_b, C] that localization thresholds), 'predicted' [P],
    'video_scores' [C], 'action_flow', 'action_rgb', 'actionness' [T_b],
    'thresholds'} (`Method.timeline_arrays`).
  """
  valid = np.asarray(batch["valid"], bool)
  rows = {k: np.asarray(v, np.float64)[valid] for k, v in outputs.items()}
  names = [str(n) for n in np.asarray(batch["names"])[valid]]
  lengths = np.asarray(batch["mask"])[valid].sum(axis=1)
  snippets = np.asarray(batch["num_snippets"])[valid]
  labels = np.asarray(batch["labels"], np.float32)[valid]
  localized = method.localize(rows, lengths, snippets, hp, video_names=names,
                              class_names=source.class_names)
  entries = []
  for b, name in enumerate(names):
    row = {k: v[b] if k in method.video_level_outputs else v[b, :lengths[b]]
           for k, v in rows.items()}
    arrays = method.timeline_arrays(
        row, int(snippets[b]), hp, labels=labels[b] if split == "train" else None,
        method_state=method_state if split == "train" else None)
    gt, duration = _ground_truth(source, name)
    entries.append(dict(arrays, **{
        "video": name, "split": split,
        "duration_s": duration or float(arrays["seconds_per_snippet"] * lengths[b]),
        "class_names": list(source.class_names), "gt": gt,
        "detections": localized.detections.take(localized.detections.video == b),
        "predicted": np.flatnonzero(localized.predicted[b]),
        "video_scores": localized.video_scores[b]}))
  return entries


def collect(workdir: str, split: str = "test", video: Optional[str] = None
            ) -> Dict[str, Any]:
  """The inputs of `salx.viz.run_pictures.draw_run` for the run in `workdir`.

  Args:
    workdir: the run's folder (W/metrics.json and its checkpoints).
    split: 'test' or 'train'.
    video: one video of the split, or None for all of them.

  Returns:
    {'per_video': [`batch_entries` dict], 'history': [member history], 'records':
    {'last', 'best'}, 'table_text': str, 'title': str}.

  Raises:
    NoRunError: no finished run or no checkpoint in `workdir`.
    ConfigError, DataError: the saved config or its data cannot be used.
    ValueError: `split` or `video` names nothing in the data.
  """
  if split not in SPLITS:
    raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
  workdir = os.path.abspath(os.path.expanduser(workdir))
  metrics = read_metrics(workdir)
  config = ml_collections.ConfigDict(metrics["config"])
  try:
    config_lib.check_config(config)
  except config_lib.ConfigError as e:
    raise config_lib.ConfigError(f"{os.path.join(workdir, METRICS_FILE)}: {e}") from None
  run = config_lib.open_run(config)
  names = run.source.video_names(split)
  if video is not None and video not in names:
    raise ValueError(f"{run.source.split_file(split)}: video {video!r} is not in the "
                     f"{split} split ({len(names)} videos)")
  params, step, which, method_state = _restore(workdir, config, run.state)
  # Member 0 alone, on a mesh of its own.
  one = sharding.make_mesh(num_members=1)
  forward = evaluation.SplitForward(run.method, run.model, run.source, run.hp, config, one)
  params = jax.device_put(jax.tree_util.tree_map(lambda x: np.asarray(x)[None], params),
                          sharding.member_sharded(one))
  stacked = jax.device_put(config_lib.stacked_hparams(run.members[:1]),
                           sharding.member_sharded(one))

  per_video = []
  for batch, features, mask in forward.batches(split):
    if video is not None and video not in list(batch["names"]):
      continue
    outputs = jax.device_get(forward.forward(params, features, mask, stacked))
    outputs = {k: v[0] for k, v in outputs.items()}
    per_video += batch_entries(outputs, batch, run.method, run.hp, run.source, split,
                               method_state)
  if video is not None:
    per_video = [entry for entry in per_video if entry["video"] == video]

  best = metrics.get("best") or {}
  history: List[Dict[str, Any]] = [{
      "name": f"seed {config.seed}", "train": list(metrics.get("train_history") or []),
      "eval": list(metrics.get("history") or []), "selected_step": best.get("step")}]
  report_path = os.path.join(workdir, REPORT_FILE)
  table = ""
  if os.path.isfile(report_path):
    with open(report_path, encoding="utf-8") as f:
      table = f.read().rstrip("\n")
  title = f"{config.dataset} run {workdir}: {which} checkpoint (step {step}), {split} split"
  return {"per_video": per_video, "history": history,
          "records": {"last": metrics.get("last"), "best": metrics.get("best"),
                      "untrained": metrics.get("untrained")},
          "table_text": f"{title}\n\n{table}" if table else title, "title": title}


# ----------------------------------------------------------------------------
# Drawing.


class TimelineImages:
  """Draws member 0's first `count` test videos (one batch's worth at most).

  Args:
    method, hp: the method and member 0's hyperparameters.
    source: the data source (class names, ground truth, durations).
    count: how many of the first test videos to draw.
    writer: the run's clu metric writer (TensorBoard images).
  """

  def __init__(self, method, hp, source, count: int, writer):
    self.method, self.hp, self.source, self.count = method, hp, source, count
    self.writer = writer

  def write(self, step: int, batches: Sequence) -> None:
    """Writes the images of step `step` from member 0's host batches."""
    from salx.viz import run_pictures  # pylint: disable=g-import-not-at-top
    entries = []
    for batch, outputs in batches:
      entries += batch_entries(outputs, batch, self.method, self.hp, self.source)
      if len(entries) >= self.count:
        break
    self.writer.write_images(step, run_pictures.timeline_images(
        entries[:self.count], top_per_class=5, width_px=1200))


def draw_pictures(workdir: str, out: str, split: str = "test",
                  video: Optional[str] = None, top_per_class: int = 10,
                  score_threshold: Optional[float] = None) -> List[str]:
  """Draws the run's pictures into `out` (W/plots); returns the files, index.html last.

  Raises:
    NoRunError, ConfigError, DataError, ValueError: one line naming what is missing
      or wrong.
  """
  from salx.viz import run_pictures  # pylint: disable=g-import-not-at-top
  collected = collect(workdir, split, video)
  return run_pictures.draw_run(out, **collected, top_per_class=top_per_class,
                               score_threshold=score_threshold)
