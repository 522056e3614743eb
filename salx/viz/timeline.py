"""One video's detection timeline: ground truth, detections (true / false positives),
the class activation of the predicted classes and the actionness, on a time axis in
seconds (SPEC 3: what localization thresholds, and what it found).

    info = draw_timeline("video.png", video=name, duration_s=..., ...)
    info  # {'gt_bars': 4, 'detection_bars': 12, 'tp': 3, 'fp': 9, 'size_px': (1600, 771)}

Panels, top to bottom: the ground-truth instances, one lane per class; the shown
detections (the `top_per_class` best of each class, or those scoring at least
`score_threshold`), one row each under their class, shaded by score, true positives
at tIoU `tiou` filled green, false positives hatched red, the class's ground truth
shaded behind them; the class activation of the predicted classes; the flow, RGB
and fused actionness; for a training video, optionally its pseudo label and
adaptive mask (SPEC 2.4, 2.5). The activation thresholds are horizontal lines on the
curve panels. A true positive is matched as the ActivityNet protocol does (SPEC 5):
detections of a class in order of decreasing score each take their best-overlapping
unmatched ground truth of that class, if its tIoU reaches `tiou`.
"""

from __future__ import annotations

from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np
from matplotlib import patches

from salx.postprocess import evaluation
from salx.viz import canvas

GT_GID, TP_GID, FP_GID = "gt", "tp", "fp"
TP_COLOR, FP_COLOR = "#2ca02c", "#d62728"

# Heights in pixels.
_TITLE, _GAP, _BOTTOM, _LEFT, _RIGHT = 68, 26, 46, 190, 30
_GT_LANE, _DET_ROW, _DET_LANE_PAD, _CURVE, _PSEUDO, _MASK = 22, 10, 6, 140, 46, 70


def _vector(x, field: str, length: Optional[int] = None, dtype=np.float64) -> np.ndarray:
  try:
    a = np.asarray(x, dtype)
  except (TypeError, ValueError):
    raise ValueError(f"draw_timeline: {field} must be numbers") from None
  if a.ndim != 1 or (length is not None and a.size != length):
    want = f"[{length}]" if length is not None else "1-D"
    raise ValueError(f"draw_timeline: {field} must be {want}, got shape {a.shape}")
  if dtype is np.float64 and not np.all(np.isfinite(a)):
    raise ValueError(f"draw_timeline: {field} holds NaN or infinite values")
  return a


def _class_indices(x, field: str, num_classes: int) -> np.ndarray:
  a = _vector(x, field, dtype=np.float64)
  if np.any(a != np.round(a)) or np.any(a < 0) or np.any(a >= num_classes):
    raise ValueError(f"draw_timeline: {field} must be class indices in "
                     f"[0, {num_classes}), got {a.tolist()[:8]}")
  return a.astype(np.int64)


def _ground_truth(gt: Sequence[Tuple[int, float, float]], num_classes: int):
  """[G] label, start, end of the (class_index, start_s, end_s) instances."""
  rows = [tuple(g) for g in gt]
  if any(len(r) != 3 for r in rows):
    raise ValueError("draw_timeline: gt must hold (class_index, start_s, end_s) triples")
  label = _class_indices([r[0] for r in rows], "gt class_index", num_classes)
  start = _vector([r[1] for r in rows], "gt start_s")
  end = _vector([r[2] for r in rows], "gt end_s")
  if np.any(end < start):
    raise ValueError("draw_timeline: gt holds an instance with end_s < start_s")
  return label, start, end


def _detections(detections: Mapping[str, Any], num_classes: int):
  """[N] label, score, start, end of the detections."""
  missing = [k for k in ("label", "score", "start", "end") if k not in detections]
  if missing:
    raise ValueError(f"draw_timeline: detections lack {missing}")
  label = _class_indices(detections["label"], "detections label", num_classes)
  n = label.size
  score, start, end = (_vector(detections[k], f"detections {k}", n)
                       for k in ("score", "start", "end"))
  if np.any(end < start):
    raise ValueError("draw_timeline: detections hold a segment with end < start")
  return label, score, start, end


def ranked(label: np.ndarray, score: np.ndarray) -> np.ndarray:
  """Detection indices, per class (ascending) by decreasing score  [N].

  Within a class the order of the evaluation (`np.argsort(score)[::-1]`).
  """
  blocks = []
  for c in np.unique(label):
    members = np.flatnonzero(label == c)
    blocks.append(members[np.argsort(score[members])[::-1]])
  return np.concatenate(blocks) if blocks else np.zeros(0, np.int64)


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
  label, score = np.asarray(label, np.int64), np.asarray(score, np.float64)
  gt_label = np.asarray(gt_label, np.int64)
  n, g = label.size, gt_label.size
  rank = np.empty(n, np.int64)
  rank[ranked(label, score)] = np.arange(n)
  pred, inst = np.nonzero(label[:, None] == gt_label[None, :])
  overlap = evaluation.segment_tiou(np.asarray(start, np.float64)[pred],
                                    np.asarray(end, np.float64)[pred],
                                    np.asarray(gt_start, np.float64)[inst],
                                    np.asarray(gt_end, np.float64)[inst])
  keep = overlap >= tiou
  pred, inst, overlap = pred[keep], inst[keep], overlap[keep]
  order = np.lexsort((-inst, -overlap, rank[pred]))
  matched = evaluation.greedy_match(rank[pred][order], inst[order], n, g)
  return matched[rank]


def shown_detections(label: np.ndarray, score: np.ndarray, top_per_class: int = 10,
                     score_threshold: Optional[float] = None) -> np.ndarray:
  """Indices of the detections to draw, per class by decreasing score.

  The `top_per_class` best of each class, or, when `score_threshold` is given,
  every detection scoring at least that.
  """
  order = ranked(label, score)
  if score_threshold is not None:
    return order[score[order] >= score_threshold]
  if isinstance(top_per_class, bool) or not isinstance(top_per_class, (int, np.integer)) \
      or top_per_class < 1:
    raise ValueError(f"draw_timeline: top_per_class must be a positive integer, got "
                     f"{top_per_class!r}")
  position = np.arange(order.size)
  first = np.searchsorted(label[order], label[order], "left")
  return order[position - first < top_per_class]


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


def draw_timeline(path: str, *, video: str, duration_s: float,
                  seconds_per_snippet: float, class_names: Sequence[str],
                  gt: Sequence[Tuple[int, float, float]], detections: Mapping[str, Any],
                  cas, predicted, action_flow, action_rgb, actionness,
                  thresholds: Sequence[float], top_per_class: int = 10,
                  score_threshold: Optional[float] = None, tiou: float = 0.5,
                  pseudo_label=None, mask=None, width_px: int = 1600) -> Dict[str, Any]:
  """Draws one video's timeline into the PNG file `path`.

  Args:
    video: the video's name (the title).
    duration_s: the video's length in seconds (the time axis).
    seconds_per_snippet: seconds per row of the curves (row i is drawn at
      i * seconds_per_snippet, where localization times its position i).
    class_names: the C class names.
    gt: the ground-truth instances, (class_index, start_s, end_s) each.
    detections: {'label' [N] class indices, 'score' [N], 'start' [N], 'end' [N]}
      in seconds.
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
    {'gt_bars', 'detection_bars', 'tp', 'fp': bars drawn (counted on the axes),
    'size_px': (width, height), 'lanes': the class names of the lanes}.
  """
  width_px = canvas.check_width(width_px, "draw_timeline")
  class_names = [str(c) for c in class_names]
  num_classes = len(class_names)
  cas = np.asarray(cas, np.float64)
  if cas.ndim != 2 or cas.shape[1] != num_classes or cas.shape[0] < 1:
    raise ValueError(f"draw_timeline: cas must be [T, {num_classes}], got {cas.shape}")
  if not np.all(np.isfinite(cas)):
    raise ValueError("draw_timeline: cas holds NaN or infinite values")
  length = cas.shape[0]
  flow, rgb, fused = (_vector(x, name, length) for x, name in (
      (action_flow, "action_flow"), (action_rgb, "action_rgb"),
      (actionness, "actionness")))
  extra = [(_vector(x, name, length), name) for x, name in (
      (pseudo_label, "pseudo_label"), (mask, "mask")) if x is not None]
  predicted = _class_indices(predicted, "predicted", num_classes)
  gt_arrays = _ground_truth(gt, num_classes)
  det = _detections(detections, num_classes)
  duration_s, seconds_per_snippet = (float(duration_s), float(seconds_per_snippet))
  for value, field in ((duration_s, "duration_s"),
                       (seconds_per_snippet, "seconds_per_snippet")):
    if not (np.isfinite(value) and value > 0):
      raise ValueError(f"draw_timeline: {field} must be positive, got {value}")
  thresholds = _vector(thresholds, "thresholds")

  tp = match_detections(*gt_arrays, *det, tiou=tiou)
  shown = shown_detections(det[0], det[1], top_per_class, score_threshold)
  lanes = _Lanes(np.unique(np.concatenate([gt_arrays[0], det[0][shown], predicted])),
                 class_names)
  det_rows = [int(np.sum(det[0][shown] == c)) for c in lanes]
  optional = [_PSEUDO if name == "pseudo_label" else _MASK for _, name in extra]
  heights, height_px = _layout(len(lanes), det_rows, optional)

  fig = canvas.new_figure(width_px, height_px)
  top, axes = _TITLE, []
  for h in heights:
    axes.append(canvas.axes_px(fig, _LEFT, top, width_px - _LEFT - _RIGHT, h))
    top += h + _GAP
  for ax in axes[1:]:
    ax.sharex(axes[0])
  t = np.arange(length) * seconds_per_snippet
  axes[0].set_xlim(0.0, max(duration_s, length * seconds_per_snippet))

  _draw_gt(axes[0], lanes, *gt_arrays)
  _draw_detections(axes[1], lanes, shown, tp, det, gt_arrays, tiou)
  _draw_curves(axes[2], t, [(cas[:, c], canvas.class_color(c), class_names[c], 1.2)
                            for c in predicted], thresholds,
               "class activation of the predicted classes; dotted: activation thresholds")
  _draw_curves(axes[3], t, [(flow, "#1f77b4", "flow", 0.9), (rgb, "#ff7f0e", "RGB", 0.9),
                            (fused, "black", "fused", 1.4)], thresholds, "actionness")
  for ax, (values, name) in zip(axes[4:], extra):
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
  fig.suptitle(f"{video}\n{info['gt_bars']} ground-truth instances, "
               f"{info['detection_bars']} of {det[0].size} detections shown "
               f"({info['tp']} true, {info['fp']} false positives at tIoU {tiou:g}); "
               f"predicted: {', '.join(class_names[c] for c in predicted) or 'none'}",
               x=_LEFT / width_px, y=1 - 8 / height_px, ha="left", va="top", fontsize=10)
  info["size_px"] = canvas.save(fig, path)
  return info
