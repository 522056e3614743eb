"""What the pictures of a trained run are drawn from: `collect(workdir, split, video)`.

From the run's own files and today's building blocks, single-process:
  1. the config saved in W/metrics.json ('config'), the evaluation records there
     ('last', 'best', 'history'), the report W/report.txt and the training losses
     of W's TensorBoard event files;
  2. the data (`data.open_data`), the model and the params of the best checkpoint
     (else the latest) (`checkpoint.RunCheckpoints`);
  3. the split's videos through the jitted evaluation forward, then localization
     (SPEC 3, 4), per video: the combined score (SPEC 3.1) the activation thresholds
     cut, the actionness, the video scores, the predicted classes, the detections
     and the ground truth of the source's annotations; for the training split also
     the pseudo label g and the adaptive mask w (SPEC 2.4, 2.5), computed on the
     evaluation's sampling of the video (not a training batch's random one) with the
     mask statistics of the latest checkpoint.

The result is plain arrays and JSON-like data, the keyword arguments of
`salx.viz.run_pictures.draw_run`. Nothing here draws or imports matplotlib.
"""

from __future__ import annotations

import json
import os
from typing import Any, Dict, List, Optional, Tuple

import jax
import ml_collections
import numpy as np

from salx.app import checkpoint as checkpoint_lib
from salx.app import data as data_lib
from salx.app import run_config
from salx.app import train
from salx.core import model as model_lib
from salx.core import pseudo_labels
from salx.core import sharding
from salx.core import train_step as train_step_lib
from salx.datasets import input_pipeline
from salx.datasets import layouts
from salx.postprocess import inference
from salx.postprocess import localization
from salx.viz import events

METRICS_FILE, REPORT_FILE = "metrics.json", "report.txt"


class NoRunError(FileNotFoundError):
  """The workdir holds no finished run (the message names the file)."""


def read_metrics(workdir: str) -> Dict[str, Any]:
  """W/metrics.json, checked to hold the run's config."""
  path = os.path.join(workdir, METRICS_FILE)
  if not os.path.isfile(path):
    raise NoRunError(f"{path}: not found; {workdir} holds no finished run (train one "
                     f"with python -m salx.main --workdir {workdir})")
  try:
    with open(path, encoding="utf-8") as f:
      metrics = json.load(f)
  except (OSError, ValueError) as e:
    raise NoRunError(f"{path}: unreadable ({e})") from None
  if not isinstance(metrics, dict) or not isinstance(metrics.get("config"), dict):
    raise NoRunError(f"{path}: holds no 'config' of the run")
  return metrics


def _restore(workdir: str, config, state) -> Tuple[Any, int, str, Any]:
  """(params, step, 'best' | 'latest', mask statistics) of the run's checkpoints."""
  with checkpoint_lib.RunCheckpoints(workdir, keep=config.keep_checkpoints) as ckpts:
    latest = ckpts.restore_latest(state)
    best = ckpts.restore_best(state.params)
  mask_state = (latest[0].mask_state if latest is not None
                else state.mask_state)
  if best is not None:
    return best[0], int(best[2]), "best", mask_state
  if latest is not None:
    return latest[0].params, int(jax.device_get(latest[0].step)), "latest", mask_state
  raise NoRunError(f"{os.path.join(workdir, checkpoint_lib.BEST_DIR)}: no best and no "
                   f"latest checkpoint ({checkpoint_lib.LATEST_DIR}/) in {workdir}")


def _model_outputs(source, config, variant, model, mesh, params, split: str):
  """({video: per_video_outputs entry}, {video: labels [C]}) of the split."""
  forward = sharding.jit_eval_forward(train_step_lib.make_eval_forward(model), mesh)
  devices = mesh.devices.size
  batch_size = -(-config.eval_batch_size // devices) * devices
  outputs, labels = {}, {}
  for batch in input_pipeline.eval_batches(
      source, num_segments=config.num_segments, batch_size=batch_size,
      keep_all_if_shorter=config.eval_keep_all_if_shorter, split=split):
    on_mesh = sharding.global_batch(batch, mesh, keys=("features", "mask"))
    out = jax.device_get(forward(params, on_mesh["features"], on_mesh["mask"]))
    outputs.update(inference.per_video_outputs(
        out, batch["names"], batch["num_snippets"],
        valid_lengths=batch["mask"].sum(axis=1), valid=batch["valid"]))
    labels.update({str(n): l for n, l, v in zip(batch["names"], batch["labels"],
                                                batch["valid"]) if v})
  return outputs, labels


def _ground_truth(source: layouts.FeatureSource, name: str) -> Tuple[list, Optional[float]]:
  """([(class_index, start_s, end_s)], duration or None) of the video's annotation."""
  annotation = source.annotation(name)
  if annotation is None:
    return [], None
  index = {c: i for i, c in enumerate(source.class_names)}
  gt = [(index[label], float(s), float(e))
        for label, (s, e) in zip(annotation.segment_labels, annotation.segments)]
  return gt, annotation.duration


def _video_entry(name, out, loc, labels, source, variant, mask_state, split) -> Dict:
  """The arrays `timeline.draw_timeline` takes for one video (see the module doc)."""
  cas, flow, rgb = (np.asarray(out[k], np.float64)
                    for k in ("cas", "action_flow", "action_rgb"))
  length, num_snippets = cas.shape[0], int(out["num_snippets"])
  gt, duration = _ground_truth(source, name)
  p = loc.proposals
  entry = {
      "video": name, "split": split,
      "duration_s": duration or num_snippets * variant.frames_per_segment
      / variant.feature_fps,
      "seconds_per_snippet": float(localization.seconds_per_position(
          num_snippets, length, variant)) * variant.upsample_scale,
      "class_names": list(source.class_names), "gt": gt,
      "detections": {"label": p.class_index, "score": p.score, "start": p.start,
                     "end": p.end},
      "cas": localization.combined_score(cas, flow, rgb, variant.combine_weights),
      "predicted": loc.predicted_classes, "video_scores": loc.video_scores,
      "action_flow": flow, "action_rgb": rgb,
      "actionness": model_lib.fused_actionness(flow, rgb, variant.rgb_weight),
      "thresholds": list(variant.act_thresholds)}
  if split == "train":
    batch = (cas[None].astype(np.float32), flow[None].astype(np.float32),
             rgb[None].astype(np.float32))
    entry["pseudo_label"] = np.asarray(pseudo_labels.pseudo_label(
        *batch, labels[None], variant))[0]
    entry["mask"] = np.asarray(pseudo_labels.adaptive_mask(
        batch[0], mask_state, variant)[0])[0]
  return entry


def collect(workdir: str, split: str = "test", video: Optional[str] = None
            ) -> Dict[str, Any]:
  """The inputs of `salx.viz.run_pictures.draw_run` for the run in `workdir`.

  Args:
    workdir: the run's folder (W/metrics.json and its checkpoints).
    split: 'test' or 'train'.
    video: one video of the split, or None for all of them.

  Returns:
    {'per_video': [per-video dict], 'history': [member history], 'records':
    {'last', 'best'}, 'table_text': str, 'title': str}.

  Raises:
    NoRunError: no finished run or no checkpoint in `workdir`.
    ConfigError, DataError: the saved config or its data cannot be used.
    ValueError: `split` or `video` names nothing in the data.
  """
  if split not in layouts.SPLITS:
    raise ValueError(f"split must be one of {layouts.SPLITS}, got {split!r}")
  workdir = os.path.abspath(os.path.expanduser(workdir))
  metrics = read_metrics(workdir)
  config = ml_collections.ConfigDict(metrics["config"])
  try:
    run_config.check_config(config)
  except run_config.ConfigError as e:
    raise run_config.ConfigError(f"{os.path.join(workdir, METRICS_FILE)}: {e}") from None
  source = data_lib.open_data(config)
  names = source.video_names(split)
  if video is not None and video not in names:
    raise ValueError(f"{source.split_file(split)}: video {video!r} is not in the "
                     f"{split} split ({len(names)} videos)")
  variant = run_config.make_variant(config)
  model = run_config.make_model(config, data_lib.num_classes_of(config, source), variant)
  mesh = sharding.make_mesh()
  state = train.init_state(model, variant, config, jax.random.key(0), mesh)
  params, step, which, mask_state = _restore(workdir, config, state)

  outputs, labels = _model_outputs(source, config, variant, model, mesh, params, split)
  if video is not None:
    outputs = {video: outputs[video]}
  localized = localization.localize_batch(outputs, variant, source.class_names)
  per_video = [_video_entry(name, outputs[name], localized[name], labels[name], source,
                            variant, mask_state, split) for name in outputs]

  best = metrics.get("best") or {}
  history: List[Dict[str, Any]] = [{
      "name": f"seed {config.seed}", "train": events.read_scalars(workdir, "train/"),
      "eval": list(metrics.get("history") or []), "selected_step": best.get("step")}]
  report_path = os.path.join(workdir, REPORT_FILE)
  table = ""
  if os.path.isfile(report_path):
    with open(report_path, encoding="utf-8") as f:
      table = f.read().rstrip("\n")
  title = f"{config.dataset} run {workdir}: {which} checkpoint (step {step}), {split} split"
  return {"per_video": per_video, "history": history,
          "records": {"last": metrics.get("last"), "best": metrics.get("best")},
          "table_text": f"{title}\n\n{table}" if table else title, "title": title}
