"""Detection AP: the ActivityNet detection protocol, vectorized (SPEC 5).

For each class, detections sorted once by score; for every tIoU threshold a
detection is a true positive when its best still-unmatched ground truth of the
same class and video (in order of decreasing tIoU) reaches the threshold; AP is
the VOC-2011 interpolated area; mAP is the mean over the classes of the
evaluated ground truth.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, Optional, Sequence, Tuple

import numpy as np

from salx.postprocess import arrays
from salx.postprocess.detections import Detections
from salx.postprocess.ground_truth import AmbiguousSegments, GroundTruth, drop_ambiguous
from salx.postprocess.inputs import EvalInputError

# Averages over sub-ranges of tIoU thresholds that papers quote:
# THUMOS14 AVG(0.1:0.5), AVG(0.3:0.7), AVG(0.1:0.7); ActivityNet AVG(0.5:0.95).
NAMED_RANGES = ((0.1, 0.5), (0.3, 0.7), (0.1, 0.7), (0.5, 0.95))

_EPS = 1e-9


# ---------------------------------------------------------------------------
# Matching and AP.


def segment_tiou(p_start, p_end, g_start, g_end) -> np.ndarray:
  """tIoU with plain lengths (no +1), elementwise, as the official code orders it."""
  inter = np.clip(np.minimum(p_end, g_end) - np.maximum(p_start, g_start), 0, None)
  union = (g_end - g_start) + (p_end - p_start) - inter
  with np.errstate(divide="ignore", invalid="ignore"):
    tiou = inter / union
  return np.nan_to_num(tiou, nan=0.0)


def _resolve(gt: GroundTruth, detections: Detections) -> Tuple[np.ndarray, np.ndarray]:
  """(video [N] index into gt.video_ids or -1, label [N] index into gt.class_names).

  Raises:
    EvalInputError: a detection's label is not a class of the ground truth.
  """
  videos = {v: i for i, v in enumerate(gt.video_ids)}
  classes = {c: i for i, c in enumerate(gt.class_names)}
  video = np.asarray([videos.get(v, -1) for v in detections.video_names],
                     np.int64)[detections.video]
  label = np.asarray([classes.get(c, -1) for c in detections.class_names],
                     np.int64)[detections.label]
  if np.any(label < 0):
    i = int(np.argmax(label < 0))
    raise EvalInputError(
        f"{detections.source}: video {detections.video_names[detections.video[i]]}: "
        f"label {detections.class_names[detections.label[i]]!r} is not a class of "
        f"{gt.source} subset '{gt.subset}'")
  return video, label


def _sort_by_class(label: np.ndarray, score: np.ndarray, num_classes: int):
  """Per class, detections by decreasing score (the official argsort()[::-1]).

  Returns:
    order: [N] detection indices, class blocks in class order;
    offsets: [C + 1] block boundaries.
  """
  by_class = np.argsort(label, kind="stable")
  counts = np.bincount(label, minlength=num_classes)
  offsets = np.concatenate([[0], np.cumsum(counts)])
  blocks = []
  for c in range(num_classes):
    members = by_class[offsets[c]:offsets[c + 1]]
    blocks.append(members[np.argsort(score[members])[::-1]])
  order = np.concatenate(blocks) if blocks else np.zeros(0, np.int64)
  return order, offsets


def candidate_pairs(p_group, p_start, p_end, g_group, g_start, g_end):
  """(detection, ground truth) pairs of the same group that may overlap.

  Ground truth sorted by (group, start). A pair is a candidate when the ground
  truth starts before the detection ends and after the detection's start minus
  the longest ground truth of the group (a superset of overlapping pairs).

  Args:
    p_group: [N] group id of each detection (-1: none); g_group [G] likewise.
  Returns:
    (detection index [E], gt index [E]).
  """
  g_order = np.lexsort((g_start, g_group))
  gg, gs = g_group[g_order], g_start[g_order]
  group_lo = np.searchsorted(gg, p_group, "left")
  group_hi = np.searchsorted(gg, p_group, "right")
  has = (group_hi > group_lo) & (p_group >= 0)
  reach = np.zeros(p_group.shape)
  if gg.size:
    # Longest ground truth of each group, looked up per detection.
    first = np.flatnonzero(np.r_[True, gg[1:] != gg[:-1]])
    longest = np.maximum.reduceat((g_end - g_start)[g_order], first)
    block = np.searchsorted(first, group_lo[has])
    reach[has] = longest[block]
  group_hi = np.where(has, group_hi, group_lo)
  lower = p_start - reach - _EPS * (1 + np.abs(p_start))
  upper = p_end + _EPS * (1 + np.abs(p_end))
  lo = arrays.first_above(gs, group_lo, group_hi, lower)
  hi = arrays.first_above(gs, group_lo, group_hi, upper)
  pred, gt = arrays.expand_ranges(lo, hi)
  return pred, g_order[gt]


def greedy_match(pred_vertex: np.ndarray, gt_vertex: np.ndarray,
                 num_pred_vertices: int) -> np.ndarray:
  """Greedy matching over edges in priority order; matched detection vertices.

  Edge i is accepted when no earlier accepted edge shares a vertex with it: the
  official loop, where a detection (in score order) takes its best unmatched
  ground truth.

  Args:
    pred_vertex, gt_vertex: [E] vertex ids of the edges, in priority order.
  Returns:
    [num_pred_vertices] bool, matched.
  """
  edge = np.arange(pred_vertex.size)
  # Each vertex is a group of edges; the gt groups follow the detection groups.
  accepted = arrays.greedy_rounds(
      edge.size, np.concatenate([pred_vertex, gt_vertex + num_pred_vertices]),
      np.concatenate([edge, edge]))
  matched = np.zeros(num_pred_vertices, bool)
  matched[pred_vertex[accepted]] = True
  return matched


def interpolated_ap(tp: np.ndarray, num_positives: int) -> np.ndarray:
  """VOC-2011 interpolated AP of ranked detections, one row per threshold.

  Args:
    tp: [K, n] bool, true positive flags in score order.
    num_positives: ground-truth instances of the class.
  Returns:
    [K] AP.
  """
  k, n = tp.shape
  if n == 0 or num_positives == 0:
    return np.zeros(k)
  tp_cum = np.cumsum(tp, axis=1, dtype=np.float64)
  fp_cum = np.cumsum(~tp, axis=1, dtype=np.float64)
  recall = tp_cum / num_positives
  precision = tp_cum / (tp_cum + fp_cum)
  zeros = np.zeros((k, 1))
  mprec = np.concatenate([zeros, precision, zeros], axis=1)
  mrec = np.concatenate([zeros, recall, np.ones((k, 1))], axis=1)
  mprec = np.maximum.accumulate(mprec[:, ::-1], axis=1)[:, ::-1]
  step = mrec[:, 1:] - mrec[:, :-1]
  return np.sum(step * mprec[:, 1:], axis=1)


def argsort_visits(p_group, p_start, p_end, g_group, g_start, g_end):
  """Every (detection, ground truth) pair of a group, in the official visit order.

  Each detection's pairs in the order `tiou.argsort()[::-1]` gives over all the
  ground truth of its group (in index order): numpy's own sort, ties included
  (not stable beyond 16 elements), run on rows of equal length at once. A 0/0
  tIoU stays NaN, sorts last and is visited first, as in the official loop.

  Args:
    p_group: [N] group id of each detection (-1: none); g_group [G] likewise.
  Returns:
    (detection index [E], gt index [E], tIoU [E]), detections ascending.
  """
  g_order = np.argsort(g_group, kind="stable")
  gg = g_group[g_order]
  lo = np.searchsorted(gg, p_group, "left")
  hi = np.where(p_group >= 0, np.searchsorted(gg, p_group, "right"), lo)
  det, pos = arrays.expand_ranges(lo, hi)
  gt = g_order[pos]
  inter = np.clip(np.minimum(p_end[det], g_end[gt]) - np.maximum(p_start[det], g_start[gt]),
                  0, None)
  with np.errstate(divide="ignore", invalid="ignore"):
    tiou = inter / ((g_end[gt] - g_start[gt]) + (p_end[det] - p_start[det]) - inter)
  length = (hi - lo)[det]
  visit = np.empty(det.size, np.int64)
  for n in np.unique(length):
    rows = np.flatnonzero(length == n).reshape(-1, n)  # blocks of n, one per detection
    order = np.argsort(tiou[rows], axis=1)[:, ::-1]
    visit[np.take_along_axis(rows, order, axis=1)] = np.arange(n)
  rank = np.lexsort((visit, det))
  return det[rank], gt[rank], tiou[rank]


def average_precision(gt: GroundTruth, video: np.ndarray, label: np.ndarray,
                      score: np.ndarray, start: np.ndarray, end: np.ndarray,
                      tiou_thresholds: np.ndarray,
                      exact_ties: bool = False) -> np.ndarray:
  """AP [K, C] of every class at every threshold (the official matching).

  Args:
    video, label: [N] detections resolved against `gt` (video -1: outside it).
    score, start, end: [N].
    exact_ties: visit each detection's ground truth in numpy's exact
      `argsort()[::-1]` order (`argsort_visits`, W-TALC); default: by
      decreasing tIoU, the later instance first on ties, and a 0/0 tIoU is 0.
  """
  th = np.asarray(tiou_thresholds, np.float64)
  num_classes, k = len(gt.class_names), th.size
  num_videos = len(gt.video_ids)
  order, offsets = _sort_by_class(label, score, num_classes)
  m, g = order.size, gt.num_instances
  p_video, p_label = video[order], label[order]
  p_start, p_end = start[order], end[order]
  p_group = np.where(p_video >= 0, p_label * num_videos + p_video, -1)
  g_group = gt.label * num_videos + gt.video
  if exact_ties:
    pair_p, pair_g, tiou = argsort_visits(p_group, p_start, p_end, g_group,
                                          gt.start, gt.end)
    tiou = np.where(np.isnan(tiou), np.inf, tiou)  # NaN < threshold is false
    useful = tiou >= th.min()
    pair_p, pair_g, tiou = pair_p[useful], pair_g[useful], tiou[useful]
  else:
    pair_p, pair_g = candidate_pairs(p_group, p_start, p_end, g_group, gt.start, gt.end)
    tiou = segment_tiou(p_start[pair_p], p_end[pair_p], gt.start[pair_g], gt.end[pair_g])
    useful = tiou >= th.min()
    pair_p, pair_g, tiou = pair_p[useful], pair_g[useful], tiou[useful]
    # Each detection tries its ground truths by decreasing tIoU (ties: the later
    # instance first, as the official argsort()[::-1]).
    rank = np.lexsort((-pair_g, -tiou, pair_p))
    pair_p, pair_g, tiou = pair_p[rank], pair_g[rank], tiou[rank]
  # One edge set per threshold; vertices are (threshold, detection) and
  # (threshold, ground truth).
  t_idx, e_idx = np.nonzero(tiou[None, :] >= th[:, None])
  matched = greedy_match(t_idx * m + pair_p[e_idx], t_idx * g + pair_g[e_idx],
                         k * m).reshape(k, m)
  positives = np.bincount(gt.label, minlength=num_classes)
  ap = np.zeros((k, num_classes))
  for c in range(num_classes):
    ap[:, c] = interpolated_ap(matched[:, offsets[c]:offsets[c + 1]], positives[c])
  return ap


# ---------------------------------------------------------------------------
# Results.


def _fmt(x: float) -> str:
  return f"{x:g}"


def named_averages(tiou_thresholds: Sequence[float], mean_ap: np.ndarray) -> Dict[str, float]:
  """AVG(lo:hi) over every quoted sub-range lying on the thresholds, and the full range."""
  th = np.asarray(tiou_thresholds, np.float64)
  out = {}
  for lo, hi in NAMED_RANGES:
    inside = (th >= lo - _EPS) & (th <= hi + _EPS)
    if np.any(np.abs(th - lo) < _EPS) and np.any(np.abs(th - hi) < _EPS):
      out[f"AVG({_fmt(lo)}:{_fmt(hi)})"] = float(np.mean(mean_ap[inside]))
  out[f"AVG({_fmt(th.min())}:{_fmt(th.max())})"] = float(np.mean(mean_ap))
  return out


@dataclasses.dataclass(frozen=True)
class EvalResult:
  """Detection evaluation result.

  Attributes:
    tiou_thresholds: the K thresholds.
    mAP: [K] mean AP over the ground truth's classes.
    average_mAP: mean of mAP over all thresholds.
    averages: 'AVG(lo:hi)' -> mean of mAP over that range (quoted sub-ranges
      lying on the thresholds, and the full range).
    class_names: the C evaluated classes.
    ap: [C, K] per-class AP.
    protocol: one line naming ground truth, subset, counts and options.
    num_predictions: detections evaluated (after any ambiguous dropping).
    num_outside: of those, detections of videos absent from the ground truth.
    num_dropped_ambiguous: detections dropped for overlapping ambiguous segments.
  """
  tiou_thresholds: Tuple[float, ...]
  mAP: np.ndarray
  average_mAP: float
  averages: Dict[str, float]
  class_names: Tuple[str, ...]
  ap: np.ndarray
  protocol: str
  num_predictions: int
  num_outside: int
  num_dropped_ambiguous: Optional[int]

  @property
  def per_class_ap(self) -> Dict[str, np.ndarray]:
    return {c: self.ap[i] for i, c in enumerate(self.class_names)}

  def to_json(self) -> dict:
    return {
        "protocol": self.protocol,
        "tiou_thresholds": list(self.tiou_thresholds),
        "mAP": self.mAP.tolist(),
        "average_mAP": self.average_mAP,
        "averages": dict(self.averages),
        "per_class_AP": {c: self.ap[i].tolist() for i, c in enumerate(self.class_names)},
        "num_predictions": self.num_predictions,
        "num_outside_ground_truth": self.num_outside,
        "num_dropped_ambiguous": self.num_dropped_ambiguous,
    }


def evaluate_detections(ground_truth: GroundTruth, detections: Detections,
                        tiou_thresholds: Sequence[float],
                        ambiguous: Optional[AmbiguousSegments] = None) -> EvalResult:
  """Detection AP per class and tIoU, mAP and its averages (SPEC 5).

  Args:
    ground_truth: the evaluated subset (`load_ground_truth`).
    detections: any Detections (`localize`, or `Detections.from_json`); videos
      absent from the ground truth count as false positives.
    tiou_thresholds: K thresholds in (0, 1].
    ambiguous: optional segments (`load_ambiguous`): drop the detections
      overlapping them.
  Raises:
    EvalInputError: a detection's label is not a class of the ground truth.
  """
  gt = ground_truth
  th = np.asarray(tiou_thresholds, np.float64).reshape(-1)
  if th.size == 0 or np.any(~(th > 0)) or np.any(th > 1):
    raise ValueError(f"tIoU thresholds must lie in (0, 1], got {list(tiou_thresholds)}")
  dropped = None
  if ambiguous is not None:
    detections, dropped = drop_ambiguous(detections, ambiguous)
  video, label = _resolve(gt, detections)
  ap = average_precision(gt, video, label, detections.score.astype(np.float64),
                         detections.start.astype(np.float64),
                         detections.end.astype(np.float64), th)
  mean_ap = ap.mean(axis=1)
  outside = int(np.sum(video < 0))
  protocol = (f"ActivityNet detection protocol; {gt.describe()}; "
              f"tIoU {', '.join(_fmt(t) for t in th)}; "
              f"predictions {os.path.basename(detections.source)}: {len(detections)}"
              f" ({outside} in videos outside the ground truth, counted as false positives); ")
  if dropped is None:
    protocol += "ambiguous segments: kept"
  else:
    protocol += (f"ambiguous segments ({ambiguous.source}): "
                 f"{dropped} overlapping predictions dropped")
  return EvalResult(tuple(float(t) for t in th), mean_ap, float(mean_ap.mean()),
                    named_averages(th, mean_ap), gt.class_names, ap.T.copy(),
                    protocol, len(detections), outside, dropped)


def format_table(result: EvalResult, per_class: bool = True) -> str:
  """A readable table: protocol line, mAP per tIoU, averages, per-class AP (%)."""
  th = result.tiou_thresholds
  name_w = max([len("mAP")] + [len(c) for c in result.class_names]) + 2
  col = max(7, max(len(_fmt(t)) for t in th) + 2)
  lines = [result.protocol, ""]
  header = "tIoU".ljust(name_w) + "".join(_fmt(t).rjust(col) for t in th)
  lines += [header, "-" * len(header)]
  lines.append("mAP".ljust(name_w) + "".join(f"{100 * v:.2f}".rjust(col) for v in result.mAP))
  lines.append("")
  lines.append("  ".join(f"{name} {100 * v:.2f}" for name, v in result.averages.items()))
  if per_class:
    lines += ["", "per-class AP (%)", header, "-" * len(header)]
    for c, row in zip(result.class_names, result.ap):
      lines.append(c.ljust(name_w) + "".join(f"{100 * v:.2f}".rjust(col) for v in row))
  return "\n".join(lines)
