"""One video's detection timeline: ground truth, detections (true / false positives),
the class activation of the predicted classes and the actionness, on a time axis in
seconds (SPEC 3: what localization thresholds, and what it found).

    info = draw_timeline("video.png", video=name, duration_s=..., ...)
    info  # {'gt_bars': 4, 'detection_bars': 12, 'tp': 3, 'fp': 9, 'size_px': (1600, 771)}
    pixels = render_timeline_array(video=name, duration_s=..., ...)  # [H, W, 3] uint8

Panels, top to bottom: the ground-truth instances, one lane per class; the shown
detections (the `top_per_class` best of each class, or those scoring at least
`score_threshold`), one row each under their class, shaded by score, true positives
at tIoU `tiou` filled green, false positives hatched red, the class's ground truth
shaded behind them; the class activation of the predicted classes; the flow, RGB
and fused actionness; for a training video, optionally its pseudo label and
adaptive mask (SPEC 2.4, 2.5). The activation thresholds are horizontal lines on the
curve panels. True positives are those of the ActivityNet matching (SPEC 5,
`salx.postprocess.ap`) on this video at the one threshold `tiou`.
"""

from __future__ import annotations

from typing import Any, Dict, Mapping, Optional, Sequence, Tuple

import numpy as np
from matplotlib import patches

from salx.postprocess import ap
from salx.viz import canvas
from salx.viz import video_inputs

GT_GID, TP_GID, FP_GID = "gt", "tp", "fp"
TP_COLOR, FP_COLOR = "#2ca02c", "#d62728"

# Heights in pixels.
_TITLE, _GAP, _BOTTOM, _LEFT, _RIGHT = 68, 26, 46, 190, 30
_GT_LANE, _DET_ROW, _DET_LANE_PAD, _CURVE, _PSEUDO, _MASK = 22, 10, 6, 140, 46, 70


def ranked(label: np.ndarray, score: np.ndarray) -> np.ndarray:
  """Detection indices, per class (ascending) by decreasing score  [N].

  The order in which the evaluation (`salx.postprocess.ap`) matches them.
  """
  label = np.asarray(label, np.int64)
  num_classes = int(label.max()) + 1 if label.size else 0
  return ap._sort_by_class(label, np.asarray(score), num_classes)[0]  # pylint: disable=protected-access


def match_detections(gt_label, gt_start, gt_end, label, score, start, end,
                     tiou: float = 0.5) -> np.ndarray:
  """True-positive flags of detections against one video's ground truth  [N] bool.

  The ActivityNet matching at one threshold: in order of decreasing score, each
  detection takes its unmatched ground-truth instance of the same class with the
  highest tIoU (ties: the later instance), when that tIoU is at least `tiou`.

  Args:
    gt_label, gt_start, gt_end: [G] class index and segment (seconds).
    label, score, start, end: [N] detections.
  """
  label, gt_label = np.asarray(label, np.int64), np.asarray(gt_label, np.int64)
  rank = np.empty(label.size, np.int64)
  rank[ranked(label, score)] = np.arange(label.size)
  pred, inst = np.nonzero(label[:, None] == gt_label[None, :])
  overlap = ap.segment_tiou(np.asarray(start, np.float64)[pred],
                            np.asarray(end, np.float64)[pred],
                            np.asarray(gt_start, np.float64)[inst],
                            np.asarray(gt_end, np.float64)[inst])
  keep = overlap >= tiou
  pred, inst, overlap = pred[keep], inst[keep], overlap[keep]
  order = np.lexsort((-inst, -overlap, rank[pred]))
  return ap.greedy_match(rank[pred][order], inst[order], label.size)[rank]


def shown_detections(label: np.ndarray, score: np.ndarray, top_per_class: int = 10,
                     score_threshold: Optional[float] = None) -> np.ndarray:
  """Indices of the detections to draw, per class by decreasing score.

  The `top_per_class` best of each class, or, when `score_threshold` is given,
  every detection scoring at least that.
  """
  order = ranked(label, score)
  if score_threshold is not None:
    return order[np.asarray(score)[order] >= score_threshold]
  if isinstance(top_per_class, bool) or not isinstance(top_per_class, (int, np.integer)) \
      or top_per_class < 1:
    raise ValueError(f"top_per_class must be a positive integer, got {top_per_class!r}")
  by_rank = np.asarray(label)[order]
  first = np.searchsorted(by_rank, by_rank, "left")
  return order[np.arange(order.size) - first < top_per_class]


class _Lanes(list):
  """Class indices of the lanes, with their names."""

  def __init__(self, indices, class_names):
    super().__init__(int(c) for c in indices)
    self.names = [str(class_names[c]) for c in self]


def _layout(num_lanes: int, det_rows: Sequence[int], optional_rows: Sequence[int]):
  """Heights in pixels of the panels and of the figure."""
  gt_h = max(num_lanes, 1) * _GT_LANE + 8
  det_h = max(sum(max(r, 1) * _DET_ROW + _DET_LANE_PAD for r in det_rows), 30)
  heights = [gt_h, det_h, _CURVE, _CURVE] + list(optional_rows)
  total = _TITLE + sum(heights) + _GAP * (len(heights) - 1) + _BOTTOM
  return heights, total


def _lane_axis(ax, names: Sequence[str], centers: Sequence[float], top: float):
  ax.set_ylim(top, 0)
  ax.set_yticks(list(centers))
  ax.set_yticklabels(list(names), fontsize=8)
  ax.tick_params(axis="x", labelbottom=False)


def _draw_gt(ax, lanes, label, start, end):
  for lane, c in enumerate(lanes):
    for i in np.flatnonzero(label == c):
      ax.add_patch(patches.Rectangle(
          (start[i], lane + 0.15), end[i] - start[i], 0.7, gid=GT_GID,
          facecolor=canvas.class_color(c), edgecolor="black", linewidth=0.6))
  _lane_axis(ax, lanes.names, np.arange(len(lanes)) + 0.5, max(len(lanes), 1))
  ax.set_title("ground truth", loc="left", fontsize=9)


def _draw_detections(ax, lanes, shown, tp, det, gt, tiou: float):
  label, score, start, end = det
  g_label, g_start, g_end = gt
  lo, hi = (score[shown].min(), score[shown].max()) if shown.size else (0.0, 1.0)
  span = hi - lo if hi > lo else 1.0
  top, centers = 0.0, []
  for c in lanes:
    rows = shown[label[shown] == c]
    height = max(rows.size, 1)
    for i in np.flatnonzero(g_label == c):   # the class's ground truth behind
      ax.fill_between([g_start[i], g_end[i]], top, top + height, color="0.85",
                      linewidth=0)
    for row, i in enumerate(rows):
      good = bool(tp[i])
      ax.add_patch(patches.Rectangle(
          (start[i], top + row + 0.1), end[i] - start[i], 0.8,
          gid=TP_GID if good else FP_GID,
          facecolor=canvas.shade(TP_COLOR if good else FP_COLOR, (score[i] - lo) / span),
          edgecolor=TP_COLOR if good else FP_COLOR, hatch=None if good else "////",
          linewidth=0.6))
      ax.text(end[i], top + row + 0.5, f" {score[i]:.2f}", fontsize=6, va="center",
              clip_on=True)
    centers.append(top + height / 2)
    top += height
    ax.axhline(top, color="0.6", linewidth=0.5)
  _lane_axis(ax, lanes.names, centers, max(top, 1.0))
  ax.set_title(f"detections (shade: score {lo:.2f} to {hi:.2f}); green: true positive "
               f"at tIoU {tiou:g}, hatched red: false positive", loc="left", fontsize=9)


def _draw_curves(ax, t, curves, thresholds, title):
  for values, color, name, width in curves:
    ax.plot(t, values, color=color, label=name, linewidth=width)
  for th in thresholds:
    ax.axhline(th, color="0.5", linewidth=0.5, linestyle=":")
  ax.set_title(title, loc="left", fontsize=9)
  if curves:
    ax.legend(loc="upper right", fontsize=7, ncol=4, framealpha=0.8)
  ax.tick_params(axis="x", labelbottom=False)
  ax.tick_params(axis="y", labelsize=7)


def timeline_figure(*, video: str, duration_s: float, seconds_per_snippet: float,
                    class_names: Sequence[str], gt: Sequence[Tuple[int, float, float]],
                    detections: Any, cas, predicted, action_flow, action_rgb,
                    actionness, thresholds: Sequence[float], top_per_class: int = 10,
                    score_threshold: Optional[float] = None, tiou: float = 0.5,
                    pseudo_label=None, mask=None, width_px: int = 1600):
  """One video's timeline on an Agg figure.

  Args:
    video: the video's name (the title).
    duration_s: the video's length in seconds (the time axis).
    seconds_per_snippet: seconds per row of the curves (row i is drawn at
      i * seconds_per_snippet, where localization times its position i).
    class_names: the C class names.
    gt: the ground-truth instances, (class_index, start_s, end_s) each.
    detections: the video's detections (`video_inputs.video_detections`: a `Detections` of
      this video, or {'label' [N], 'score' [N], 'start' [N], 'end' [N]}).
    cas: [T, C] class activation, drawn as given for the predicted classes
      (salx.app.pictures passes the combined score of SPEC 3.1, which the
      activation thresholds cut into proposals).
    predicted: [P] predicted class indices.
    action_flow, action_rgb, actionness: [T] per-stream and fused actionness.
    thresholds: the activation thresholds (horizontal lines).
    top_per_class: detections shown per class (the best by score).
    score_threshold: when given, show every detection scoring at least this
      instead.
    tiou: the tIoU at which a detection is a true positive.
    pseudo_label: optional [T] class-agnostic pseudo label g (a training video).
    mask: optional [T] adaptive actionness mask w (a training video).
    width_px: the picture's width in pixels.

  Returns:
    (figure, info): info {'gt_bars', 'detection_bars', 'tp', 'fp': bars drawn
    (counted on the axes), 'lanes': the class names of the lanes}.

  Raises:
    ValueError: a bad input; the message names the field.
  """
  width_px = canvas.check_width(width_px)
  v = video_inputs.check_video(
      video=video, duration_s=duration_s, seconds_per_snippet=seconds_per_snippet,
      class_names=class_names, gt=gt, detections=detections, cas=cas,
      predicted=predicted, action_flow=action_flow, action_rgb=action_rgb,
      actionness=actionness, thresholds=thresholds, pseudo_label=pseudo_label,
      mask=mask)
  d = v.det
  tp = match_detections(*v.gt, d.label, d.score, d.start, d.end, tiou=tiou)
  shown = shown_detections(d.label, d.score, top_per_class, score_threshold)
  lanes = _Lanes(np.unique(np.concatenate([v.gt[0], d.label[shown], v.predicted])),
                 v.class_names)
  det_rows = [int(np.sum(d.label[shown] == c)) for c in lanes]
  optional = [_PSEUDO if name == "pseudo_label" else _MASK for _, name in v.extra]
  heights, height_px = _layout(len(lanes), det_rows, optional)

  fig = canvas.new_figure(width_px, height_px)
  top, axes = _TITLE, []
  for h in heights:
    axes.append(canvas.axes_px(fig, _LEFT, top, width_px - _LEFT - _RIGHT, h))
    top += h + _GAP
  for ax in axes[1:]:
    ax.sharex(axes[0])
  length = v.cas.shape[0]
  t = np.arange(length) * v.seconds_per_snippet
  axes[0].set_xlim(0.0, max(v.duration_s, length * v.seconds_per_snippet))

  _draw_gt(axes[0], lanes, *v.gt)
  _draw_detections(axes[1], lanes, shown, tp, (d.label, d.score, d.start, d.end), v.gt,
                   tiou)
  _draw_curves(axes[2], t, [(v.cas[:, c], canvas.class_color(c), v.class_names[c], 1.2)
                            for c in v.predicted], v.thresholds,
               "class activation of the predicted classes; dotted: activation thresholds")
  flow, rgb, fused = v.curves
  _draw_curves(axes[3], t, [(flow, "#1f77b4", "flow", 0.9), (rgb, "#ff7f0e", "RGB", 0.9),
                            (fused, "black", "fused", 1.4)], v.thresholds, "actionness")
  for ax, (values, name) in zip(axes[4:], v.extra):
    ax.fill_between(t, 0.0, values, step="post", color="#9467bd", alpha=0.5)
    ax.set_ylim(0.0, max(1.0, float(values.max())) * 1.05)
    ax.set_title("pseudo label g" if name == "pseudo_label" else "adaptive mask w",
                 loc="left", fontsize=9)
    ax.tick_params(axis="x", labelbottom=False)
    ax.tick_params(axis="y", labelsize=7)
  axes[-1].tick_params(axis="x", labelbottom=True, labelsize=8)
  axes[-1].set_xlabel("time (s)", fontsize=9)

  info = {"gt_bars": canvas.count_bars(axes[0], (GT_GID,)),
          "detection_bars": canvas.count_bars(axes[1], (TP_GID, FP_GID)),
          "tp": canvas.count_bars(axes[1], (TP_GID,)),
          "fp": canvas.count_bars(axes[1], (FP_GID,)),
          "lanes": tuple(lanes.names)}
  names = ", ".join(v.class_names[c] for c in v.predicted) or "none"
  fig.suptitle(f"{video}\n{info['gt_bars']} ground-truth instances, "
               f"{info['detection_bars']} of {len(d)} detections shown "
               f"({info['tp']} true, {info['fp']} false positives at tIoU {tiou:g}); "
               f"predicted: {names}",
               x=_LEFT / width_px, y=1 - 8 / height_px, ha="left", va="top", fontsize=10)
  return fig, info


def _figure(where: str, timeline_args: Mapping[str, Any]):
  """`timeline_figure(**timeline_args)`; a ValueError's message starts with `where`."""
  try:
    return timeline_figure(**timeline_args)
  except ValueError as e:
    raise ValueError(f"{where}: {e}") from None


def draw_timeline(path: str, **timeline_args) -> Dict[str, Any]:
  """Draws one video's timeline into the PNG file `path`.

  Args:
    path: the PNG file (its folder is made).
    **timeline_args: the keyword arguments of `timeline_figure`.

  Returns:
    `timeline_figure`'s info with 'size_px': (width, height) of the file.

  Raises:
    ValueError: 'draw_timeline: <field> ...' for a bad input.
  """
  fig, info = _figure("draw_timeline", timeline_args)
  info["size_px"] = canvas.save(fig, path)
  return info


def render_timeline_array(**timeline_args) -> np.ndarray:
  """One video's timeline as pixels, e.g. for a TensorBoard image summary
  (clu: `writer.write_images(step, {name: pixels[None]})`).

  Args:
    **timeline_args: the keyword arguments of `timeline_figure`.

  Returns:
    [H, W, 3] uint8 RGB, W = width_px (1600 by default).

  Raises:
    ValueError: 'render_timeline_array: <field> ...' for a bad input.
  """
  fig, _ = _figure("render_timeline_array", timeline_args)
  return canvas.rgb_pixels(fig)
