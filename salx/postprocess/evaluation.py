"""Detection and classification evaluation (SPEC section 5).

The ActivityNet detection protocol, vectorized: for each class, predictions
sorted once by score; for every tIoU threshold a prediction is a true positive
when its best still-unmatched ground truth of the same class and video (in order
of decreasing tIoU) reaches the threshold; AP is the VOC-2011 interpolated area;
mAP is the mean over the classes of the evaluated ground truth.

Protocol options, named in every report: the ground-truth file and subset (e.g.
the 210-video THUMOS14 test set of `gt.json` used by BaS-Net/UM/SAL versus the
212-video `gt_acmnet_with_duration.json`), and optionally dropping predictions
that overlap the official `Ambiguous_test.txt` segments (W-TALC / CO2-Net).

NumPy only; inputs are JSON-like data and arrays.
"""

from __future__ import annotations

import dataclasses
import itertools
import json
import math
import os
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

# Averages over sub-ranges of tIoU thresholds that papers quote:
# THUMOS14 AVG(0.1:0.5), AVG(0.3:0.7), AVG(0.1:0.7); ActivityNet AVG(0.5:0.95).
NAMED_RANGES = ((0.1, 0.5), (0.3, 0.7), (0.1, 0.7), (0.5, 0.95))

_EPS = 1e-9


class EvalInputError(ValueError):
  """Bad evaluation input; the message names the file and the problem."""


# ---------------------------------------------------------------------------
# Inputs.


@dataclasses.dataclass(frozen=True)
class GroundTruth:
  """Ground-truth instances of one subset.

  Attributes:
    source: file name (or '<dict>') the annotations came from.
    subset: the evaluated subset.
    video_ids: the V videos of the subset, in file order.
    class_names: the C classes in order of first appearance (the official
      activity index).
    video: [G] int, index into video_ids of each instance.
    label: [G] int, index into class_names.
    start, end: [G] float64 seconds.
  """
  source: str
  subset: str
  video_ids: Tuple[str, ...]
  class_names: Tuple[str, ...]
  video: np.ndarray
  label: np.ndarray
  start: np.ndarray
  end: np.ndarray

  @property
  def num_instances(self) -> int:
    return int(self.label.size)

  def describe(self) -> str:
    return (f"ground truth {self.source}, subset '{self.subset}': "
            f"{len(self.video_ids)} videos, {self.num_instances} instances, "
            f"{len(self.class_names)} classes")


@dataclasses.dataclass(frozen=True)
class Predictions:
  """Detections as arrays, resolved against a ground truth.

  Attributes:
    source: file name (or '<dict>').
    video: [M] int, index into the ground truth's video_ids, -1 for a video
      absent from it (its predictions are false positives).
    video_name: [M] str, the prediction's video id (for ambiguous filtering).
    label: [M] int, index into the ground truth's class_names.
    score, start, end: [M] float64.
  """
  source: str
  video: np.ndarray
  video_name: np.ndarray
  label: np.ndarray
  score: np.ndarray
  start: np.ndarray
  end: np.ndarray

  def __len__(self) -> int:
    return int(self.score.size)

  def take(self, index: np.ndarray) -> "Predictions":
    return dataclasses.replace(
        self, **{f.name: getattr(self, f.name)[index]
                 for f in dataclasses.fields(self) if f.name != "source"})


def _read_json(path: Union[str, os.PathLike]) -> object:
  try:
    with open(path, "r") as f:
      return json.load(f)
  except OSError as e:
    raise EvalInputError(f"{path}: cannot read: {e.strerror or e}") from None
  except (json.JSONDecodeError, UnicodeDecodeError) as e:
    raise EvalInputError(f"{path}: malformed JSON: {e}") from None


def _source_and_data(path_or_dict) -> Tuple[str, object]:
  if isinstance(path_or_dict, Mapping):
    return "<dict>", path_or_dict
  return os.fspath(path_or_dict), _read_json(path_or_dict)


def _segment(value, where: str, source: str) -> Tuple[float, float]:
  try:
    start, end = (float(v) for v in value)
  except (TypeError, ValueError):
    raise EvalInputError(
        f"{source}: {where}: segment must be two numbers, got {value!r}") from None
  if not (math.isfinite(start) and math.isfinite(end)):
    raise EvalInputError(f"{source}: {where}: segment {value!r} is not finite")
  if end < start:
    raise EvalInputError(
        f"{source}: {where}: segment end {end} < start {start}")
  return start, end


def load_ground_truth(path_or_dict, subset: str = "test") -> GroundTruth:
  """Ground truth of one subset from ActivityNet-format JSON.

  {"database": {video: {"subset": ..., "annotations": [{"label", "segment"}]}}};
  segment values may be strings (as in THUMOS14 `gt.json`).

  Args:
    path_or_dict: a JSON file or its parsed content.
    subset: e.g. 'test' ('validation' for ActivityNet's evaluation subset).
  Raises:
    EvalInputError: unreadable or malformed file, or an empty subset.
  """
  source, data = _source_and_data(path_or_dict)
  name = os.path.basename(source)
  database = data.get("database") if isinstance(data, Mapping) else None
  if not isinstance(database, Mapping):
    raise EvalInputError(f"{source}: no 'database' object (ActivityNet format)")
  videos, classes = [], {}
  video, label, start, end = [], [], [], []
  subsets = set()
  for vid, entry in database.items():
    if not isinstance(entry, Mapping):
      raise EvalInputError(f"{source}: video {vid}: entry is not an object")
    subsets.add(str(entry.get("subset")))
    if entry.get("subset") != subset:
      continue
    index = len(videos)
    videos.append(vid)
    annotations = entry.get("annotations", [])
    if not isinstance(annotations, list):
      raise EvalInputError(f"{source}: video {vid}: 'annotations' is not a list")
    for i, ann in enumerate(annotations):
      if not isinstance(ann, Mapping) or "label" not in ann or "segment" not in ann:
        raise EvalInputError(
            f"{source}: video {vid}: annotation {i} lacks 'label' or 'segment'")
      s, e = _segment(ann["segment"], f"video {vid} annotation {i}", source)
      video.append(index)
      label.append(classes.setdefault(ann["label"], len(classes)))
      start.append(s)
      end.append(e)
  if not videos:
    raise EvalInputError(
        f"{source}: subset '{subset}' is empty "
        f"(subsets present: {', '.join(sorted(subsets)) or 'none'})")
  if not classes:
    raise EvalInputError(f"{source}: subset '{subset}' has no annotation")
  return GroundTruth(name, subset, tuple(videos), tuple(classes),
                     np.asarray(video, np.int64), np.asarray(label, np.int64),
                     np.asarray(start, np.float64), np.asarray(end, np.float64))


def _check_prediction_arrays(source, names, score, start, end):
  """Raise EvalInputError naming the first bad prediction, if any."""
  bad = np.flatnonzero(~np.isfinite(score))
  if bad.size:
    i = bad[0]
    raise EvalInputError(f"{source}: video {names[i]}: score {score[i]} is not a "
                         "finite number")
  bad = np.flatnonzero(~(np.isfinite(start) & np.isfinite(end)))
  if bad.size:
    i = bad[0]
    raise EvalInputError(f"{source}: video {names[i]}: segment "
                         f"[{start[i]}, {end[i]}] is not finite")
  bad = np.flatnonzero(end < start)
  if bad.size:
    i = bad[0]
    raise EvalInputError(f"{source}: video {names[i]}: segment end {end[i]} < "
                         f"start {start[i]}")


def load_predictions(path_or_dict, ground_truth: GroundTruth) -> Predictions:
  """Detections from ActivityNet JSON {"results": {video: [{label, score, segment}]}}.

  Raises:
    EvalInputError: unreadable or malformed file, a label that is not a class of
      the ground truth, a non-finite score or segment, or end < start.
  """
  source, data = _source_and_data(path_or_dict)
  results = data.get("results") if isinstance(data, Mapping) else None
  if not isinstance(results, Mapping):
    raise EvalInputError(f"{source}: no 'results' object (ActivityNet format)")
  videos, counts, labels, scores, segments = [], [], [], [], []
  for vid, dets in results.items():
    if not isinstance(dets, list):
      raise EvalInputError(f"{source}: video {vid}: detections are not a list")
    try:
      labels += [d["label"] for d in dets]
      scores += [d["score"] for d in dets]
      segments += [d["segment"] for d in dets]
    except (TypeError, KeyError):
      i = next(i for i, d in enumerate(dets) if not isinstance(d, Mapping)
               or not {"label", "score", "segment"} <= d.keys())
      raise EvalInputError(f"{source}: video {vid}: detection {i} lacks "
                           "'label', 'score' or 'segment'") from None
    videos.append(vid)
    counts.append(len(dets))
  names = np.repeat(np.asarray(videos, dtype=object), counts)
  class_index = {c: i for i, c in enumerate(ground_truth.class_names)}
  try:
    label = np.fromiter(map(class_index.__getitem__, labels), np.int64, len(labels))
  except (KeyError, TypeError):
    i = next(i for i, l in enumerate(labels)
             if not isinstance(l, str) or l not in class_index)
    raise EvalInputError(
        f"{source}: video {names[i]}: label {labels[i]!r} is not a class of "
        f"{ground_truth.source} subset '{ground_truth.subset}'") from None
  try:
    score = np.array(scores, np.float64)
    if any(len(x) != 2 for x in segments):
      raise ValueError
    seg = np.fromiter(itertools.chain.from_iterable(segments), np.float64,
                      2 * len(segments)).reshape(-1, 2)
  except (TypeError, ValueError):
    raise EvalInputError(f"{source}: scores must be numbers and segments pairs "
                         "[start, end] of numbers") from None
  if score.shape != (len(labels),):
    raise EvalInputError(f"{source}: scores must be numbers")
  _check_prediction_arrays(source, names, score, seg[:, 0], seg[:, 1])
  lookup = {v: i for i, v in enumerate(ground_truth.video_ids)}
  video = np.repeat(np.asarray([lookup.get(v, -1) for v in videos], np.int64), counts)
  return Predictions(os.path.basename(source), video, names, label, score,
                     np.ascontiguousarray(seg[:, 0]), np.ascontiguousarray(seg[:, 1]))


def predictions_from_arrays(video_names: Sequence[str], labels: np.ndarray,
                            scores: np.ndarray, starts: np.ndarray,
                            ends: np.ndarray, ground_truth: GroundTruth,
                            label_names: Optional[Sequence[str]] = None,
                            source: str = "<arrays>") -> Predictions:
  """Predictions from flat arrays (no JSON round trip).

  Args:
    video_names: [M] video id of each detection.
    labels: [M] int class indices into `label_names` (default: the ground
      truth's class names).
    scores, starts, ends: [M].
  """
  names = np.asarray(video_names, dtype=object)
  labels = np.asarray(labels, np.int64)
  if label_names is not None:
    class_index = {c: i for i, c in enumerate(ground_truth.class_names)}
    missing = [n for n in label_names if n not in class_index]
    used = set(np.unique(labels).tolist())
    bad = [n for i, n in enumerate(label_names) if i in used and n in missing]
    if bad:
      raise EvalInputError(f"{source}: label {bad[0]!r} is not a class of "
                           f"{ground_truth.source} subset '{ground_truth.subset}'")
    lut = np.asarray([class_index.get(n, -1) for n in label_names], np.int64)
    labels = lut[labels]
  elif labels.size and (labels.min() < 0 or labels.max() >= len(ground_truth.class_names)):
    raise EvalInputError(f"{source}: class index out of range for the "
                         f"{len(ground_truth.class_names)} classes of {ground_truth.source}")
  score = np.asarray(scores, np.float64)
  start = np.asarray(starts, np.float64)
  end = np.asarray(ends, np.float64)
  _check_prediction_arrays(source, names, score, start, end)
  # Look up each run of equal video names once.
  heads = np.flatnonzero(np.r_[names.size > 0, names[1:] != names[:-1]])
  lookup = {v: i for i, v in enumerate(ground_truth.video_ids)}
  video = np.repeat(np.asarray([lookup.get(v, -1) for v in names[heads]], np.int64),
                    np.diff(np.r_[heads, names.size]))
  return Predictions(source, video, names, labels, score, start, end)


def load_ambiguous(path) -> Dict[str, np.ndarray]:
  """Official ambiguous segments: lines `video start end`  -> video: [n, 2]."""
  try:
    with open(path, "r") as f:
      lines = f.read().splitlines()
  except OSError as e:
    raise EvalInputError(f"{path}: cannot read: {e.strerror or e}") from None
  out: Dict[str, List[Tuple[float, float]]] = {}
  for number, line in enumerate(lines, 1):
    fields = line.split()
    if not fields:
      continue
    if len(fields) != 3:
      raise EvalInputError(f"{path}: line {number}: expected 'video start end'")
    out.setdefault(fields[0], []).append(
        _segment(fields[1:], f"line {number}", os.fspath(path)))
  return {v: np.asarray(s, np.float64) for v, s in out.items()}


def drop_ambiguous(predictions: Predictions,
                   ambiguous: Mapping[str, np.ndarray]) -> Tuple[Predictions, int]:
  """Drop predictions overlapping an ambiguous segment of their video.

  Overlap means an intersection of positive length (W-TALC / CO2-Net).

  Returns:
    (kept predictions, number dropped).
  """
  names = sorted(ambiguous)
  if not names or len(predictions) == 0:
    return predictions, 0
  seg = np.concatenate([ambiguous[v] for v in names])
  owner = np.repeat(np.arange(len(names)), [len(ambiguous[v]) for v in names])
  lookup = {v: i for i, v in enumerate(names)}
  pvid = np.fromiter((lookup.get(v, -1) for v in predictions.video_name),
                     np.int64, len(predictions))
  lo = np.searchsorted(owner, pvid, "left")
  hi = np.searchsorted(owner, pvid, "right")
  count = np.where(pvid >= 0, hi - lo, 0)
  pred = np.repeat(np.arange(len(predictions)), count)
  amb = np.repeat(lo, count) + (np.arange(pred.size) - np.repeat(np.cumsum(count) - count, count))
  overlap = (np.minimum(predictions.end[pred], seg[amb, 1])
             > np.maximum(predictions.start[pred], seg[amb, 0]))
  drop = np.zeros(len(predictions), bool)
  drop[pred[overlap]] = True
  return predictions.take(np.flatnonzero(~drop)), int(drop.sum())


# ---------------------------------------------------------------------------
# Matching and AP.


def segment_tiou(p_start, p_end, g_start, g_end) -> np.ndarray:
  """tIoU with plain lengths (no +1), elementwise, as the official code orders it."""
  inter = np.clip(np.minimum(p_end, g_end) - np.maximum(p_start, g_start), 0, None)
  union = (g_end - g_start) + (p_end - p_start) - inter
  with np.errstate(divide="ignore", invalid="ignore"):
    tiou = inter / union
  return np.nan_to_num(tiou, nan=0.0)


def _sort_by_class(predictions: Predictions, num_classes: int):
  """Per class, predictions by decreasing score (the official argsort()[::-1]).

  Returns:
    order: [M] prediction indices, class blocks in class order;
    offsets: [C + 1] block boundaries.
  """
  label = predictions.label
  by_class = np.argsort(label, kind="stable")
  counts = np.bincount(label, minlength=num_classes)
  offsets = np.concatenate([[0], np.cumsum(counts)])
  score = predictions.score
  blocks = []
  for c in range(num_classes):
    members = by_class[offsets[c]:offsets[c + 1]]
    blocks.append(members[np.argsort(score[members])[::-1]])
  order = np.concatenate(blocks) if blocks else np.zeros(0, np.int64)
  return order, offsets


def _candidate_pairs(p_group, p_start, p_end, g_group, g_start, g_end):
  """(prediction, ground truth) pairs of the same group that may overlap.

  Ground truth sorted by (group, start). A pair is a candidate when the ground
  truth starts before the prediction ends and after the prediction's start
  minus the longest ground truth of the group (a superset of overlapping pairs).

  Args:
    p_group: [M] group id of each prediction (-1: none); g_group [G] likewise.
  Returns:
    (pred index [E], gt index [E]).
  """
  g_order = np.lexsort((g_start, g_group))
  gg, gs = g_group[g_order], g_start[g_order]
  group_lo = np.searchsorted(gg, p_group, "left")
  group_hi = np.searchsorted(gg, p_group, "right")
  has = (group_hi > group_lo) & (p_group >= 0)
  reach = np.zeros(p_group.shape)
  if gg.size:
    # Longest ground truth of each group, looked up per prediction.
    first = np.flatnonzero(np.r_[True, gg[1:] != gg[:-1]])
    longest = np.maximum.reduceat((g_end - g_start)[g_order], first)
    block = np.searchsorted(first, group_lo[has])
    reach[has] = longest[block]
  lower = p_start - reach - _EPS * (1 + np.abs(p_start))
  upper = p_end + _EPS * (1 + np.abs(p_end))
  lo = _bisect(gs, group_lo, group_hi, lower)
  hi = _bisect(gs, group_lo, group_hi, upper)
  count = np.where(has, hi - lo, 0)
  pred = np.repeat(np.arange(p_group.size), count)
  within = np.arange(pred.size) - np.repeat(np.cumsum(count) - count, count)
  gt = g_order[np.repeat(lo, count) + within]
  return pred, gt


def _bisect(values, lo, hi, target):
  """First index i in [lo, hi) with values[i] > target, vectorized  [M]."""
  lo, hi = lo.copy(), hi.copy()
  while True:
    active = lo < hi
    if not active.any():
      return lo
    mid = (lo + hi) // 2
    go_right = active & (values[np.minimum(mid, values.size - 1)] <= target)
    lo = np.where(go_right, mid + 1, lo)
    hi = np.where(active & ~go_right, mid, hi)


def greedy_match(pred_vertex: np.ndarray, gt_vertex: np.ndarray,
                 num_pred_vertices: int, num_gt_vertices: int) -> np.ndarray:
  """Greedy matching over edges in a fixed order; matched prediction vertices.

  Edge i is accepted when no earlier accepted edge shares a vertex with it: the
  official loop, where a prediction (in score order) takes its best unmatched
  ground truth. Computed in rounds: accept every edge that comes first among the
  remaining edges of both its vertices, drop the edges of matched vertices.

  Args:
    pred_vertex, gt_vertex: [E] vertex ids, edges in priority order, each
      prediction's edges contiguous.
  Returns:
    [num_pred_vertices] bool, matched.
  """
  matched_p = np.zeros(num_pred_vertices, bool)
  matched_g = np.zeros(num_gt_vertices, bool)
  pv, gv = pred_vertex, gt_vertex
  first_seen = np.empty(num_gt_vertices, np.int64)
  while pv.size:
    n = pv.size
    position = np.arange(n)
    first_p = np.r_[True, pv[1:] != pv[:-1]]
    first_seen[gv] = n
    np.minimum.at(first_seen, gv, position)
    accept = first_p & (first_seen[gv] == position)
    matched_p[pv[accept]] = True
    matched_g[gv[accept]] = True
    alive = ~(matched_p[pv] | matched_g[gv])
    pv, gv = pv[alive], gv[alive]
  return matched_p


def interpolated_ap(tp: np.ndarray, num_positives: int) -> np.ndarray:
  """VOC-2011 interpolated AP of ranked predictions, one row per threshold.

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


# ---------------------------------------------------------------------------
# Results.


def _fmt(x: float) -> str:
  return f"{x:g}"


def named_averages(tiou_thresholds: Sequence[float], mean_ap: np.ndarray) -> Dict[str, float]:
  """AVG(lo:hi) over every quoted sub-range lying on the thresholds, and the full range."""
  th = np.asarray(tiou_thresholds, np.float64)
  out = {}
  full = f"AVG({_fmt(th.min())}:{_fmt(th.max())})"
  for lo, hi in NAMED_RANGES:
    inside = (th >= lo - _EPS) & (th <= hi + _EPS)
    if (np.any(np.abs(th - lo) < _EPS) and np.any(np.abs(th - hi) < _EPS)):
      out[f"AVG({_fmt(lo)}:{_fmt(hi)})"] = float(np.mean(mean_ap[inside]))
  out[full] = float(np.mean(mean_ap))
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
    num_predictions: predictions evaluated (after any ambiguous dropping).
    num_outside: of those, predictions of videos absent from the ground truth.
    num_dropped_ambiguous: predictions dropped for overlapping ambiguous segments.
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


def evaluate_detections(ground_truth: Union[GroundTruth, Mapping, str, os.PathLike],
                        predictions: Union[Predictions, Mapping, str, os.PathLike],
                        tiou_thresholds: Sequence[float] = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7),
                        ambiguous: Union[None, str, os.PathLike, Mapping] = None,
                        subset: str = "test") -> EvalResult:
  """Detection AP per class and tIoU, mAP and its averages (SPEC 5).

  Args:
    ground_truth: GroundTruth, or a file / dict for `load_ground_truth(.., subset)`.
    predictions: Predictions, or ActivityNet JSON (file or dict).
    tiou_thresholds: K thresholds in (0, 1].
    ambiguous: optional `Ambiguous_test.txt` path or {video: [n, 2]}: drop the
      predictions overlapping those segments.
  Returns:
    EvalResult.
  """
  gt = ground_truth if isinstance(ground_truth, GroundTruth) \
      else load_ground_truth(ground_truth, subset)
  preds = predictions if isinstance(predictions, Predictions) \
      else load_predictions(predictions, gt)
  th = np.asarray(tiou_thresholds, np.float64).reshape(-1)
  if th.size == 0 or np.any(~(th > 0)) or np.any(th > 1):
    raise ValueError(f"tIoU thresholds must lie in (0, 1], got {list(tiou_thresholds)}")
  dropped = None
  ambiguous_name = None
  if ambiguous is not None:
    if not isinstance(ambiguous, Mapping):
      ambiguous_name = os.path.basename(os.fspath(ambiguous))
      ambiguous = load_ambiguous(ambiguous)
    preds, dropped = drop_ambiguous(preds, ambiguous)
  num_classes = len(gt.class_names)
  ap = average_precision(gt, preds, th)
  mean_ap = ap.mean(axis=1)
  outside = int(np.sum(preds.video < 0))
  protocol = (f"ActivityNet detection protocol; {gt.describe()}; "
              f"tIoU {', '.join(_fmt(t) for t in th)}; "
              f"predictions {preds.source}: {len(preds)}"
              f" ({outside} in videos outside the ground truth, counted as false positives); ")
  if dropped is None:
    protocol += "ambiguous segments: kept"
  else:
    protocol += (f"ambiguous segments ({ambiguous_name or 'given'}): "
                 f"{dropped} overlapping predictions dropped")
  return EvalResult(tuple(float(t) for t in th), mean_ap, float(mean_ap.mean()),
                    named_averages(th, mean_ap), gt.class_names, ap.T.copy(),
                    protocol, len(preds), outside, dropped)


def average_precision(gt: GroundTruth, preds: Predictions,
                      tiou_thresholds: np.ndarray) -> np.ndarray:
  """AP [K, C] of every class at every threshold (the official matching)."""
  th = np.asarray(tiou_thresholds, np.float64)
  num_classes, k = len(gt.class_names), th.size
  num_videos = len(gt.video_ids)
  order, offsets = _sort_by_class(preds, num_classes)
  m, g = order.size, gt.num_instances
  p_video, p_label = preds.video[order], preds.label[order]
  p_start, p_end = preds.start[order], preds.end[order]
  p_group = np.where(p_video >= 0, p_label * num_videos + p_video, -1)
  g_group = gt.label * num_videos + gt.video
  pair_p, pair_g = _candidate_pairs(p_group, p_start, p_end, g_group, gt.start, gt.end)
  tiou = segment_tiou(p_start[pair_p], p_end[pair_p], gt.start[pair_g], gt.end[pair_g])
  useful = tiou >= th.min()
  pair_p, pair_g, tiou = pair_p[useful], pair_g[useful], tiou[useful]
  # Each prediction tries its ground truths by decreasing tIoU (ties: the later
  # instance first, as the official argsort()[::-1]).
  rank = np.lexsort((-pair_g, -tiou, pair_p))
  pair_p, pair_g, tiou = pair_p[rank], pair_g[rank], tiou[rank]
  # One edge set per threshold; vertices are (threshold, prediction) and
  # (threshold, ground truth).
  edges = tiou[None, :] >= th[:, None]
  t_idx, e_idx = np.nonzero(edges)
  matched = greedy_match(t_idx * m + pair_p[e_idx], t_idx * g + pair_g[e_idx],
                         k * m, k * g).reshape(k, m)
  positives = np.bincount(gt.label, minlength=num_classes)
  ap = np.zeros((k, num_classes))
  for c in range(num_classes):
    ap[:, c] = interpolated_ap(matched[:, offsets[c]:offsets[c + 1]], positives[c])
  return ap


# ---------------------------------------------------------------------------
# Classification.


def video_labels(ground_truth: GroundTruth, video_ids: Sequence[str],
                 class_names: Sequence[str]) -> np.ndarray:
  """Multi-hot video labels [N, C] from ground-truth instances.

  Args:
    video_ids: N videos (must be in the ground truth).
    class_names: the model's C classes (column order).
  """
  column = {c: i for i, c in enumerate(class_names)}
  missing = [c for c in ground_truth.class_names if c not in column]
  if missing:
    raise ValueError(f"ground-truth class {missing[0]!r} is not among the "
                     f"{len(class_names)} class names")
  row = {v: i for i, v in enumerate(ground_truth.video_ids)}
  labels = np.zeros((len(ground_truth.video_ids), len(class_names)), bool)
  lut = np.asarray([column[c] for c in ground_truth.class_names], np.int64)
  labels[ground_truth.video, lut[ground_truth.label]] = True
  try:
    return labels[[row[v] for v in video_ids]]
  except KeyError as e:
    raise ValueError(f"video {e.args[0]} is not in {ground_truth.source} "
                     f"subset '{ground_truth.subset}'") from None


def classification_accuracy(video_scores: np.ndarray, labels: np.ndarray,
                            class_thresh: float) -> float:
  """Fraction of videos whose thresholded scores equal their labels exactly.

  Args:
    video_scores: [N, C] softmax video class scores s.
    labels: [N, C] multi-hot labels.
    class_thresh: a class is predicted when s >= class_thresh (no argmax
      fallback, as the authors count it).
  """
  predicted = np.asarray(video_scores) >= class_thresh
  correct = np.all(predicted == np.asarray(labels, bool), axis=1)
  return float(np.mean(correct)) if correct.size else 0.0


# ---------------------------------------------------------------------------
# Report.


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
