"""All the pictures of one run, and the page that links them.

    files = draw_run("W/plots", per_video=[...], history=[...], records=metrics,
                     table_text=report)

writes into the folder
    videos/<video>.png   one detection timeline per video (`timeline.draw_timeline`)
    losses.png           the loss terms against the step (`training_curves.draw_losses`)
    map.png              the test average mAP against the step, from the untrained
                         model's point at step 0 (`training_curves.draw_map`)
    ap_bars.png          per-class AP (sorted by AP) and mAP per tIoU, last and
                         selected step
    index.html           the report table, the figures, the videos worst first, each
                         thumbnail a link to its full-size picture
and returns the paths written. The inputs are arrays and JSON-like data:
`salx.app.pictures.collect(workdir, split, video)` makes them from a trained run.
A progress bar counts the timelines on stderr when it is a terminal.
"""

from __future__ import annotations

import os
import re
from typing import Any, Dict, List, Mapping, Optional, Sequence

import numpy as np

from salx.core import progress_bar
from salx.postprocess import ap
from salx.postprocess.ground_truth import GroundTruth
from salx.viz import ap_bars
from salx.viz import training_curves
from salx.viz import index_page
from salx.viz import timeline
from salx.viz import video_inputs

VIDEO_DIR = "videos"
# The keys of a per-video dict that `timeline.timeline_figure` takes.
TIMELINE_FIELDS = ("video", "duration_s", "seconds_per_snippet", "class_names", "gt",
                   "detections", "cas", "predicted", "action_flow", "action_rgb",
                   "actionness", "thresholds", "pseudo_label", "mask")
REQUIRED_FIELDS = TIMELINE_FIELDS[:-2]
# The tIoU thresholds of a video's AP when the run's records name none (THUMOS14's).
DEFAULT_TIOU_THRESHOLDS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def video_ap(gt: Sequence[Sequence[float]], detections: Any,
             class_names: Sequence[str], tiou_thresholds: Sequence[float]
             ) -> Optional[float]:
  """One video's AP: mean over the thresholds of the mean AP over its GT classes.

  `ap.evaluate_detections` on this video alone (SPEC 5); detections of classes
  without ground truth in the video enter no class's AP.

  Args:
    gt: (class_index, start_s, end_s) instances.
    detections: the video's detections (`video_inputs.video_detections`).
    class_names: the C class names the indices refer to.
    tiou_thresholds: the K thresholds.
  Returns:
    The AP in [0, 1]; None for a video without ground truth.
  """
  if not len(gt):
    return None
  video = video_inputs.video_detections(detections, class_names)
  g = np.asarray(gt, np.float64).reshape(-1, 3)
  label = g[:, 0].astype(np.int64)
  truth = GroundTruth(video.source, "video", video.video_names, video.class_names,
                      np.zeros(label.size, np.int64), label, g[:, 1], g[:, 2])
  result = ap.evaluate_detections(truth, video, tiou_thresholds)
  return float(result.ap[np.unique(label)].mean())


def png_names(videos: Sequence[str]) -> List[str]:
  """A distinct file name per video: its name with characters other than letters,
  digits, '.', '_' and '-' replaced by '_' (and '-2', '-3', ... on collisions)."""
  names, used = [], set()
  for video in videos:
    stem = re.sub(r"[^A-Za-z0-9._-]", "_", str(video)).lstrip(".") or "video"
    name, k = f"{stem}.png", 1
    while name.lower() in used:
      k += 1
      name = f"{stem}-{k}.png"
    used.add(name.lower())
    names.append(name)
  return names


def _thresholds(records: Optional[Mapping[str, Any]]) -> Sequence[float]:
  for key in ("best", "last"):
    record = (records or {}).get(key)
    if isinstance(record, Mapping) and record.get("tiou_thresholds"):
      return [float(t) for t in record["tiou_thresholds"]]
  return list(DEFAULT_TIOU_THRESHOLDS)


def timeline_args(entry: Any, i: int = 0) -> Dict[str, Any]:
  """The `timeline.timeline_figure` arguments of per-video dict number `i`."""
  if not isinstance(entry, Mapping):
    raise ValueError(f"per_video[{i}] must be a mapping of the timeline's arrays")
  missing = [k for k in REQUIRED_FIELDS if k not in entry]
  if missing:
    raise ValueError(f"per_video[{i}] lacks {missing}")
  return {k: entry[k] for k in TIMELINE_FIELDS if entry.get(k) is not None}


def timeline_images(per_video: Sequence[Mapping[str, Any]], prefix: str = "timeline",
                    **options) -> Dict[str, np.ndarray]:
  """The videos' timelines as TensorBoard images, for clu's `write_images`.

  Args:
    per_video: per-video dicts (as `draw_run` takes them).
    prefix: the summary tags' folder.
    **options: top_per_class, score_threshold, tiou, width_px of the timelines.

  Returns:
    {'<prefix>/<video>': [1, H, W, 3] uint8} (each video its own height).
  """
  return {f"{prefix}/{args['video']}": timeline.render_timeline_array(**args,
                                                                       **options)[None]
          for args in (timeline_args(e, i) for i, e in enumerate(per_video))}


def with_untrained(history: Sequence[Mapping[str, Any]],
                   records: Optional[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
  """`history` with `records['untrained']` (metrics.json's untrained record, which
  is member 0's) given to member 0 when it has no 'untrained' record of its own."""
  history = list(history or [])
  untrained = (records or {}).get("untrained")
  if untrained is not None and history and history[0].get("untrained") is None:
    history[0] = dict(history[0], untrained=untrained)
  return history


def draw_run(out_dir: str, *, per_video: Sequence[Mapping[str, Any]],
             history: Sequence[Mapping[str, Any]], records: Optional[Mapping[str, Any]],
             table_text: str, top_per_class: int = 10,
             score_threshold: Optional[float] = None, tiou: float = 0.5,
             width_px: int = 1600, title: str = "salx run") -> List[str]:
  """Draws every picture of a run into `out_dir` and writes its index.html.

  Args:
    out_dir: the folder (made if missing), e.g. W/plots.
    per_video: per video a dict of `timeline.timeline_figure`'s arguments
      (video, duration_s, seconds_per_snippet, class_names, gt, detections (a
      `Detections` of the video or a mapping), cas, predicted, action_flow,
      action_rgb, actionness, thresholds; optionally pseudo_label, mask); other
      keys are ignored.
    history: member histories for `curves` ({'train', 'eval', optionally
      'untrained', ...} each).
    records: {'last': record, 'best': record, optionally 'untrained': record}
      (metrics.json), or None; the untrained record is member 0's first point on
      map.png (see `with_untrained`).
    table_text: the report table shown at the top of the page.
    top_per_class, score_threshold, tiou: which detections a timeline shows, and
      the tIoU of its true positives.
    width_px: the width of the timelines.
    title: the page's title.

  Returns:
    The paths written, index.html last.
  """
  os.makedirs(out_dir, exist_ok=True)
  files, figures, videos = [], [], []
  thresholds = _thresholds(records)
  kwargs = [timeline_args(entry, i) for i, entry in enumerate(per_video)]
  named = list(zip(kwargs, png_names([a["video"] for a in kwargs])))
  for args, name in progress_bar.track(named, label="drawing timelines",
                                       unit="videos"):
    relpath = f"{VIDEO_DIR}/{name}"
    timeline.draw_timeline(os.path.join(out_dir, VIDEO_DIR, name), **args,
                           top_per_class=top_per_class, score_threshold=score_threshold,
                           tiou=tiou, width_px=width_px)
    files.append(os.path.join(out_dir, VIDEO_DIR, name))
    videos.append((args["video"], relpath,
                   video_ap(args["gt"], args["detections"], args["class_names"],
                            thresholds)))

  history = with_untrained(history, records)
  if training_curves.terms_of(history):
    files.append(os.path.join(out_dir, "losses.png"))
    training_curves.draw_losses(files[-1], history)
    figures.append(("training loss terms against the step", "losses.png"))
  if any(m.get("eval") or m.get("untrained") for m in history):
    files.append(os.path.join(out_dir, "map.png"))
    training_curves.draw_map(files[-1], history)
    figures.append(("test average mAP against the step", "map.png"))
  last, best = ((records or {}).get("last"), (records or {}).get("best"))
  if last is not None or best is not None:
    at = tiou if any(abs(t - tiou) < 1e-6 for t in thresholds) else thresholds[0]
    files.append(os.path.join(out_dir, "ap_bars.png"))
    ap_bars.draw_ap_bars(files[-1], last=last, selected=best, tiou=at)
    figures.append((f"per-class AP at tIoU {at:g} and mAP per tIoU: last and "
                    "selected step", "ap_bars.png"))
  files.append(index_page.write_index(out_dir, table_text=table_text, videos=videos,
                                      figures=figures, title=title))
  return files
