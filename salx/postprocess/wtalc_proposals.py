"""CO2-Net's and DELU's inference: model outputs -> proposals (SPEC-CO2NET-DELU 5).

Per test video, from cas [T, C+1] logits (last column background) and the fused
attention attn [T]:

  1. ec = cas * attn; class scores p = softmax over C + 1 of the mean of the
     top max(1, T // 10) of ec per column, background dropped  [C]  (5.2),
  2. predicted classes P: p >= 0.2 ascending, else the argmax alone (5.2),
  3. thresholds linspace(0.1, 0.9, N) (N = 10 CO2-Net, 20 DELU); per
     threshold the runs of attn > th (class-agnostic; nothing when only
     snippet 0 or no snippet is above: their `.any()`) (5.3),
  4. each run [t0, t1] of each class c of P scored by the outer-inner contrast
     on ec[:, c] plus gamma * p_c (5.4),
  5. per class, Gaussian soft-NMS that keeps every proposal, in pick order with
     decayed scores (5.5),
  6. rows [t-start, t-end, score, class] in snippets, classes in P's order (5.6),
     then the filters of `salx.postprocess.wtalc_filters`.

The authors loop over videos, classes, thresholds and runs in Python. Here the
runs of every threshold of every video come from one comparison, the OIC means
of all runs from one vectorized pairwise summation (np.mean's arithmetic, so
equal windows tie as in theirs), and soft-NMS runs in vectorized rounds over
all classes of all videos (`soft_nms_gaussian`).
Everything is float64. `detections` gives the one `Detections` type (seconds);
`classification_scores` and `classification_map` are the printed
classification mAP (5.7, 6.6).
"""

from __future__ import annotations

import dataclasses
from typing import Optional, Sequence, Tuple

import numpy as np

from salx.core import constants
from salx.postprocess import arrays
from salx.postprocess import ground_truth
from salx.postprocess import scores as scores_lib
from salx.postprocess import wtalc_filters
from salx.postprocess.detections import Detections

# The number of activation thresholds of their THUMOS14 scripts (SPEC-CO2NET-DELU 0).
CO2NET_NUM_THRESHOLDS = 10
DELU_NUM_THRESHOLDS = 20


def activation_thresholds(num_thresholds: int, low: float = 0.1,
                          high: float = 0.9) -> np.ndarray:
  """numpy linspace(low, high, num_thresholds), ascending  [N] (SPEC-CO2NET-DELU 5.3)."""
  return np.linspace(low, high, num_thresholds)


def _video_arrays(cas, attn, v: int) -> Tuple[np.ndarray, np.ndarray]:
  """cas [T, C+1] and attn [T] of video v as float64, shapes checked."""
  c = np.asarray(cas, np.float64)
  a = np.asarray(attn, np.float64)
  if a.ndim == 2 and a.shape[1:] == (1,):
    a = a[:, 0]
  if c.ndim != 2 or c.shape[1] < 2 or a.shape != c.shape[:1] or c.shape[0] == 0:
    raise ValueError(f"video {v}: cas must be [T, C+1] with T >= 1 and attn [T], got "
                     f"{list(c.shape)} and {list(np.shape(attn))}")
  return c, a


def video_class_scores(cas: np.ndarray, attn: np.ndarray,
                       top_k_divisor: int = 10) -> np.ndarray:
  """Class scores p of one video  [C] (SPEC-CO2NET-DELU 5.2).

  ec = cas * attn (every column, no min shift); p = softmax over the C + 1
  columns of the mean of the k = max(1, T // top_k_divisor) largest ec[:, c],
  background dropped (p does not sum to 1).

  Args:
    cas: [T, C+1] logits; attn: [T] (or [T, 1]) attention.
  """
  cas, attn = _video_arrays(cas, attn, 0)
  return _class_scores(cas * attn[:, None], top_k_divisor)


def _class_scores(ec: np.ndarray, top_k_divisor: int) -> np.ndarray:
  t = ec.shape[0]
  k = max(1, t // top_k_divisor)
  top = np.partition(ec, t - k, axis=0)[t - k:]
  return scores_lib.softmax(top.mean(axis=0))[:-1]


def predicted_classes(class_scores: np.ndarray, class_threshold: float = 0.2) -> np.ndarray:
  """P = [c : p_c >= class_threshold] ascending, else [argmax p]  int64 (5.2)."""
  p = np.asarray(class_scores)
  chosen = np.flatnonzero(p >= class_threshold)
  return chosen if chosen.size else np.asarray([np.argmax(p)], np.int64)


def classification_scores(cas: np.ndarray) -> np.ndarray:
  """softmax over the C + 1 columns of max_t cas  [C+1] (SPEC-CO2NET-DELU 5.7).

  Their top-k has k = ceil(1 / 8) = 1 (the batched features' length), so the
  mean of the top k is the maximum. The first C entries go to
  `classification_map`.

  Args:
    cas: [T, C+1] logits.
  """
  return scores_lib.softmax(np.asarray(cas, np.float64).max(axis=0))


def classification_map(scores: np.ndarray, labels: np.ndarray) -> float:
  """Classification mAP in percent, W-TALC's getClassificationMAP (SPEC-CO2NET-DELU 6.6).

  Per class c < C: videos ordered by numpy argsort(-scores[:, c]); precision
  = cumTP / (cumTP + cumFP) in float32; AP_c = float32 sum of the precision at
  the positives / #positives (float64); the result is 100 * (Python sum of the
  AP_c) / C. A class without positives gives NaN, as theirs does.

  Args:
    scores: [V, C'] video scores, C' >= C (only the first C columns are read:
      the background column is ignored).
    labels: [V, C] multi-hot labels (labels_all; a video may have none).
  """
  scores = np.asarray(scores, np.float64)
  labels = np.asarray(labels, np.float64)
  if labels.ndim != 2 or scores.ndim != 2 or scores.shape[0] != labels.shape[0] \
      or scores.shape[1] < labels.shape[1]:
    raise ValueError(f"classification_map: scores {list(scores.shape)} and labels "
                     f"{list(labels.shape)} do not match")
  num_classes = labels.shape[1]
  order = np.argsort(-scores[:, :num_classes], axis=0)
  hits = np.take_along_axis(labels, order, axis=0).T == 1  # [C, V]
  tp = np.cumsum(hits, axis=1).astype(np.float32)
  fp = np.cumsum(~hits, axis=1).astype(np.float32)
  with np.errstate(invalid="ignore", divide="ignore"):
    precision = tp / (fp + tp)
    # A contiguous row per class: the same float32 (pairwise) sum as theirs.
    ap = np.sum(np.ascontiguousarray(hits.astype(np.float32) * precision), axis=1) \
        / np.sum(labels, axis=0)
  return 100 * sum(ap.tolist()) / num_classes


@dataclasses.dataclass(frozen=True)
class WtalcProposals:
  """Proposals of V videos, in snippet units, in the authors' output order.

  Rows are ordered by video, then class in P's (ascending) order, then soft-NMS
  pick order (SPEC-CO2NET-DELU 5.6), before any filter.

  Attributes:
    video: [N] int, index of the video (input order).
    label: [N] int, class index (0 .. C - 1).
    score: [N] float64, decayed soft-NMS score.
    start, end: [N] float64 snippets: first snippet and last + 1.
    class_scores: [V, C] p of 5.2.
    predicted: [V, C] bool, the classes P (argmax fallback included).
  """
  video: np.ndarray
  label: np.ndarray
  score: np.ndarray
  start: np.ndarray
  end: np.ndarray
  class_scores: np.ndarray
  predicted: np.ndarray

  def __len__(self) -> int:
    return int(self.score.shape[0])

  def take(self, index) -> "WtalcProposals":
    """The rows at `index` (indices or a bool mask [N]); video-level fields unchanged."""
    return dataclasses.replace(self, **{f: getattr(self, f)[index] for f in
                                        ("video", "label", "score", "start", "end")})

  def rows(self, v: int) -> np.ndarray:
    """Video v's rows [n, 4]: [t-start, t-end, score, class] as in their table."""
    mine = self.video == v
    return np.stack([self.start[mine], self.end[mine], self.score[mine],
                     self.label[mine].astype(np.float64)], axis=1)


def _runs(attn: Sequence[np.ndarray], lengths: np.ndarray, thresholds: np.ndarray):
  """Runs of attn > th for every video and threshold (SPEC-CO2NET-DELU 5.3).

  Returns:
    (video, threshold, t0, t1) [R] int64, ordered by threshold, video, t0;
    (video, threshold) pairs whose above-set is empty or {0} yield nothing.
  """
  # One line of every video, each preceded by a -inf separator (never above).
  offsets = np.cumsum(lengths + 1) - lengths
  line = np.full(int(lengths.sum() + lengths.size + 1), -np.inf)
  _, pos = arrays.expand_ranges(offsets, offsets + lengths)
  line[pos] = np.concatenate(attn)
  line[np.isnan(line)] = -np.inf  # NaN > th is False
  # Snippet t is above thresholds 0 .. count[t] - 1 (attn > th, ascending th).
  count = np.searchsorted(thresholds, line, "left")
  # A run of threshold i starts at t when count[t - 1] <= i < count[t], and
  # ends at t when count[t + 1] <= i < count[t]; sorted by (i, t), starts and
  # ends pair up.
  size = line.size
  at, th = arrays.expand_ranges(count[:-1], count[1:])
  starts = np.sort(th * size + at + 1)
  at, th = arrays.expand_ranges(count[1:], count[:-1])
  ends = np.sort(th * size + at)
  th, first = np.divmod(starts, size)
  last = ends % size
  video = np.searchsorted(offsets, first, "right") - 1
  t0, t1 = first - offsets[video], last - offsets[video]
  # Their `temp_list.any()`: a (video, threshold) whose only run is [0, 0] is skipped.
  key = th * lengths.size + video
  alone = np.r_[True, key[1:] != key[:-1]] & np.r_[key[:-1] != key[1:], True]
  keep = ~(alone & (t0 == 0) & (t1 == 0))
  return video[keep], th[keep], t0[keep], t1[keep]


def propose(cas: Sequence[np.ndarray], attn: Sequence[np.ndarray], *,
            num_thresholds: int, class_threshold: float = 0.2,
            top_k_divisor: int = 10, outer_lambda: float = 0.25, gamma: float = 0.2,
            sigma: float = 0.3) -> WtalcProposals:
  """Proposals of many videos, as `multiple_threshold_hamnet` (SPEC-CO2NET-DELU 5.2-5.5).

  Args:
    cas: V arrays [T_v, C+1] of class activation logits (last column background).
    attn: V arrays [T_v] (or [T_v, 1]) of fused attention.
    num_thresholds: N of linspace(0.1, 0.9, N): 10 CO2-Net, 20 DELU.
    class_threshold: P = classes with p >= this (else the argmax).
    top_k_divisor: k = max(1, T // top_k_divisor) for the class scores.
    outer_lambda: OIC outer margin, a fraction of the run length.
    gamma: weight of p_c added to the OIC contrast.
    sigma: Gaussian soft-NMS, score *= exp(-IoU^2 / sigma).
  Returns:
    WtalcProposals, rows in the authors' order, unfiltered.
  """
  if len(cas) != len(attn) or not len(cas):
    raise ValueError(f"propose: {len(cas)} cas for {len(attn)} attn (need >= 1 video)")
  thresholds = activation_thresholds(num_thresholds)
  num_videos = len(cas)
  lengths = np.empty(num_videos, np.int64)
  attn_lines, curves, class_lists = [], [], []
  class_scores = None
  for v in range(num_videos):
    c, a = _video_arrays(cas[v], attn[v], v)
    ec = c * a[:, None]
    p = _class_scores(ec, top_k_divisor)
    if class_scores is None:
      class_scores = np.empty((num_videos, p.size))
    elif p.size != class_scores.shape[1]:
      raise ValueError(f"video {v}: cas has {p.size + 1} columns, video 0 has "
                       f"{class_scores.shape[1] + 1}")
    class_scores[v] = p
    chosen = predicted_classes(p, class_threshold)
    lengths[v] = a.size
    attn_lines.append(a)
    curves.append(ec[:, chosen].T.reshape(-1))  # ec[:, c] of every c in P, one after another
    class_lists.append(chosen)
  predicted = np.zeros(class_scores.shape, bool)
  # One curve per (video, predicted class), videos in order, P ascending.
  num_curves = np.asarray([c.size for c in class_lists], np.int64)
  curve_first = np.cumsum(num_curves) - num_curves
  curve_video = np.repeat(np.arange(num_videos), num_curves)
  curve_class = np.concatenate(class_lists)
  predicted[curve_video, curve_class] = True
  curve_length = lengths[curve_video]
  curve_offset = np.cumsum(curve_length) - curve_length

  run_video, _, run_t0, run_t1 = _runs(attn_lines, lengths, thresholds)
  # Every run for every class of its video, then per curve in append order
  # (threshold, then run order).
  run, curve = arrays.expand_ranges(curve_first[run_video],
                                    curve_first[run_video] + num_curves[run_video])
  order = np.argsort(curve, kind="stable")
  run, curve = run[order], curve[order]
  t0, t1 = run_t0[run], run_t1[run]
  video, label = curve_video[curve], curve_class[curve]
  # A run found at several thresholds is scored once.
  key = (curve_offset[curve] + t0) * (int(lengths.max()) + 1) + (t1 - t0)
  _, once, again = np.unique(key, return_index=True, return_inverse=True)
  score = _oic_scores(np.concatenate(curves), curve_offset[curve[once]], lengths[video[once]],
                      t0[once], t1[once], outer_lambda)[again]
  score += gamma * class_scores[video, label]
  start, end = t0.astype(np.float64), (t1 + 1).astype(np.float64)
  index, score = soft_nms_gaussian(curve, score, start, end, sigma)
  return WtalcProposals(video[index], label[index], score, start[index], end[index],
                        class_scores, predicted)


def _pairwise_sums(values: np.ndarray, first: np.ndarray, length: np.ndarray) -> np.ndarray:
  """np.add.reduce(values[first_i : first_i + length_i]) for every i, bit for bit  [S].

  NumPy's pairwise summation of a contiguous float64 array (what np.mean
  sums with): n < 8: ((0 + a_0) + a_1) + ...; n <= 128: eight lanes
  r_j = a_j + a_{8+j} + ... over the whole blocks, ((r_0 + r_1) + (r_2 + r_3))
  + ((r_4 + r_5) + (r_6 + r_7)), then the rest one by one; n > 128: the sums of
  the halves split at n2 = n // 2 - (n // 2) % 8, added. Being local (a
  segment's sum depends only on its values), equal windows give equal sums:
  ties of the authors' scores stay ties here, which prefix sums would break.

  Args:
    values: [L] float64; first, length: [S] segments (length 0 sums to 0).
  """
  first = np.asarray(first, np.int64)
  length = np.asarray(length, np.int64)
  out = np.zeros(first.shape)

  def add_one_by_one(res, start, count):
    # Rows sorted by count, descending: step k touches the rows with count > k.
    order = np.argsort(-count, kind="stable")
    res, start, count = res[order], start[order], count[order]
    rows = np.searchsorted(-count, -np.arange(int(count.max(initial=0))), "left")
    for k, a in enumerate(rows):
      res[:a] += values[start[:a] + k]
    out_res = np.empty_like(res)
    out_res[order] = res
    return out_res

  small = length < 8
  if small.any():
    out[small] = add_one_by_one(np.zeros(int(small.sum())), first[small], length[small])
  mid = (length >= 8) & (length <= 128)
  if mid.any():
    f, n = first[mid], length[mid]
    blocks = n // 8
    order = np.argsort(-blocks, kind="stable")
    f_sorted, b_sorted = f[order], blocks[order]
    lanes = f_sorted[:, None] + np.arange(8)
    r = values[lanes]
    for b, a in enumerate(np.searchsorted(-b_sorted, -np.arange(1, int(b_sorted[0])), "left"), 1):
      r[:a] += values[lanes[:a] + 8 * b]
    res = np.empty(f.size)
    res[order] = ((r[:, 0] + r[:, 1]) + (r[:, 2] + r[:, 3])) + \
        ((r[:, 4] + r[:, 5]) + (r[:, 6] + r[:, 7]))
    out[mid] = add_one_by_one(res, f + 8 * blocks, n - 8 * blocks)
  big = length > 128
  if big.any():
    f, n = first[big], length[big]
    half = n // 2
    half -= half % 8
    out[big] = _pairwise_sums(values, f, half) + _pairwise_sums(values, f + half, n - half)
  return out


def _oic_scores(values: np.ndarray, offset: np.ndarray, length: np.ndarray,
                t0: np.ndarray, t1: np.ndarray, outer_lambda: float) -> np.ndarray:
  """inner - outer of runs [t0, t1] (SPEC-CO2NET-DELU 5.4)  [R] float64.

  inner = mean of the curve over t0 .. t1 (n = t1 - t0 + 1); outer = mean over
  max(0, int(t0 - lam n)) .. t0 - 1 and t1 + 1 .. min(T - 1, int(t1 + lam n))
  together, 0 when both are empty (int truncates toward 0). Means are np.mean's
  arithmetic (`_pairwise_sums` / n) on the same values in the same order.

  Args:
    values: the curves one after another; a run's curve starts at `offset`.
    offset, length: [R] each run's curve offset and its video's T.
  """
  n = t1 - t0 + 1
  outer_s = np.maximum(0, np.trunc(t0 - outer_lambda * n).astype(np.int64))
  outer_e = np.minimum(length - 1, np.trunc(t1 + outer_lambda * n).astype(np.int64))
  inner = _pairwise_sums(values, offset + t0, n) / n
  # The outer snippets of each run, both sides, gathered into one segment.
  lo = np.stack([offset + outer_s, offset + t1 + 1], axis=1).reshape(-1)
  hi = np.stack([offset + t0, offset + outer_e + 1], axis=1).reshape(-1)
  _, where = arrays.expand_ranges(lo, hi)
  outer_n = (t0 - outer_s) + (outer_e - t1)
  outer_sum = _pairwise_sums(values[where], np.cumsum(outer_n) - outer_n, outer_n)
  outer = np.where(outer_n > 0, outer_sum / np.maximum(outer_n, 1), 0.0)
  return inner - outer


# --------------------------------------------------------------------------------
# Gaussian soft-NMS that keeps everything (SPEC-CO2NET-DELU 5.5).


def _decay(score: np.ndarray, start: np.ndarray, end: np.ndarray, area: np.ndarray,
           s0, e0, a0, sigma: float) -> None:
  """score *= exp(-IoU^2 / sigma) against the pick (s0, e0, a0), "+1" IoU, in place.

  Their arithmetic: inter = max(min(e0, e) - max(s0, s) + 1, 0);
  iou = inter / (a0 + a - inter).
  """
  inter = np.minimum(e0, end)
  inter -= np.maximum(s0, start)
  inter += 1
  np.maximum(inter, 0.0, out=inter)
  union = a0 + area
  union -= inter
  inter /= union  # iou
  inter *= inter
  inter /= -sigma  # -(iou * iou) / sigma, bit for bit
  score *= np.exp(inter, out=inter)


def soft_nms_gaussian_one(score: np.ndarray, start: np.ndarray, end: np.ndarray,
                          sigma: float = 0.3) -> Tuple[np.ndarray, np.ndarray]:
  """Their `soft_nms(dets, 0.7, sigma)` of one class, literally (SPEC-CO2NET-DELU 5.5).

  Repeat until empty: i = first argmax of the scores; swap rows 0 and i; output
  row 0; decay every remaining score by exp(-IoU^2 / sigma) against it; delete
  row 0. The swap moves the old row 0 into row i, which decides later ties.
  One array operation per pick; `soft_nms_gaussian` gives the same for many
  classes at once.

  Args:
    score, start, end: [n] proposals in append order.
  Returns:
    (index [n] into the inputs in pick order, score [n] at pick time).
  """
  n = np.size(score)
  rows = np.stack([np.asarray(score, np.float64), np.asarray(start, np.float64),
                   np.asarray(end, np.float64), np.zeros(n), np.arange(n, dtype=np.float64)])
  rows[3] = rows[2] - rows[1] + 1
  for k in range(n):
    i = k + int(np.argmax(rows[0, k:]))
    rows[:, [k, i]] = rows[:, [i, k]]
    _decay(rows[0, k + 1:], rows[1, k + 1:], rows[2, k + 1:], rows[3, k + 1:],
           rows[1, k], rows[2, k], rows[3, k], sigma)
  return rows[4].astype(np.int64), rows[0].copy()


def _segment_ids(first_flags: np.ndarray) -> np.ndarray:
  return np.cumsum(first_flags) - 1


def _components(group: np.ndarray, start: np.ndarray, end: np.ndarray) -> np.ndarray:
  """Connected components of "IoU > 0" within each group  [N] int, ascending with group.

  Sorted by start within a group, a proposal opens a new component when its
  "+1" intersection with every earlier one is <= 0: min(max end so far, end) -
  start + 1 <= 0. Decays between components are exactly 1.
  """
  n = group.size
  by_start = np.lexsort((start, group))
  g, s, e = group[by_start], start[by_start], end[by_start]
  new_group = np.r_[True, g[1:] != g[:-1]]
  # Running max of `end` within groups, on ranks (exact integer keys).
  rank = np.empty(n, np.int64)
  by_end = np.argsort(e, kind="stable")
  rank[by_end] = np.arange(n)
  seg = _segment_ids(new_group)
  run_max = e[by_end][np.maximum.accumulate(seg * n + rank) - seg * n]
  prev_max = np.r_[-np.inf, run_max[:-1]]
  new_comp = new_group | ~(np.minimum(prev_max, e) - s + 1 > 0)
  comp = np.empty(n, np.int64)
  comp[by_start] = _segment_ids(new_comp)
  return comp


def _isolated_soft_nms(score, start, end, size, sigma):
  """Soft-NMS of each component alone, all components in lockstep rounds.

  Components of similar size (same power-of-two width) share a padded
  [4, rows, width] array (score, start, end, area); round r picks in every
  component with more than r members at once: one argmax, one swap and one
  decay per round for all of them.

  Args:
    score, start, end: [M] float64, component after component (contiguous),
      append order within each.
    size: [K] component sizes.
  Returns:
    pick [M]: positions into the inputs, per component in pick order;
    picked [M]: scores at pick time; key [M]: running minimum of `picked`
    within the component; tied [K] bool: a pick tied with a proposal of
    another segment (other start or end), which their row-swap order decides,
    not handled here. Ties between equal segments do not matter: the rows
    they give are the same either way.
  """
  first = np.cumsum(size) - size
  pick = np.arange(score.size)
  picked = score.copy()
  key = score.copy()
  tied = np.zeros(size.size, bool)
  width_class = np.ceil(np.log2(np.maximum(size, 1))).astype(np.int64)
  for w in np.unique(width_class[size > 1]):
    comps = np.flatnonzero((width_class == w) & (size > 1))
    comps = comps[np.argsort(-size[comps], kind="stable")]
    sizes = size[comps]
    rows, width = comps.size, int(sizes[0])
    owner, member = arrays.expand_ranges(first[comps], first[comps] + sizes)
    col = member - first[comps][owner]
    data = np.zeros((4, rows, width))
    data[0] = -np.inf
    data[0, owner, col], data[1, owner, col], data[2, owner, col] = (
        score[member], start[member], end[member])
    data[3] = data[2] - data[1] + 1
    where = np.zeros((rows, width), np.int64)
    where[owner, col] = member
    out = np.full((rows, width), np.inf)
    active = np.searchsorted(-sizes, -np.arange(width), "left")
    for r in range(width):
      a = int(active[r])
      live = data[0, :a, r:]
      i = np.argmax(live, axis=1)
      ar = np.arange(a)
      top = live[ar, i]
      ties = np.flatnonzero(np.count_nonzero(live == top[:, None], axis=1) > 1)
      if ties.size:  # tied with a different segment?
        j = r + i[ties]
        other = ((live[ties] == top[ties, None])
                 & ((data[1, ties, r:] != data[1, ties, j][:, None])
                    | (data[2, ties, r:] != data[2, ties, j][:, None])))
        tied[comps[ties[other.any(axis=1)]]] = True
      j = r + i
      front = data[:, :a, r].copy()
      data[:, ar, r] = data[:, ar, j]
      data[:, ar, j] = front
      front_where = where[:a, r].copy()
      where[ar, r] = where[ar, j]
      where[ar, j] = front_where
      out[:a, r] = data[0, :a, r]
      if r + 1 < width:
        _decay(data[0, :a, r + 1:], data[1, :a, r + 1:], data[2, :a, r + 1:],
               data[3, :a, r + 1:], data[1, :a, r, None], data[2, :a, r, None],
               data[3, :a, r, None], sigma)
    slot = first[comps][owner] + col
    pick[slot] = where[owner, col]
    picked[slot] = out[owner, col]
    key[slot] = np.minimum.accumulate(out, axis=1)[owner, col]
  return pick, picked, key, tied


def soft_nms_gaussian(group: np.ndarray, score: np.ndarray, start: np.ndarray,
                      end: np.ndarray, sigma: float = 0.3) -> Tuple[np.ndarray, np.ndarray]:
  """`soft_nms_gaussian_one` of every group, all groups at once (SPEC-CO2NET-DELU 5.5).

  A pick changes only the scores of proposals it overlaps ("+1" IoU > 0;
  elsewhere the factor is exactly 1), so each group splits into components
  (`_components`) that evolve independently. Each component is run alone
  (`_isolated_soft_nms`, in vectorized rounds over all components), and a
  group's pick order is the merge of its components' sequences that always
  takes the largest head: sorting by the running minimum of each sequence,
  then by pick index. This equals the literal algorithm unless a pick ties
  with a different proposal (equal current scores): the row-swap order decides
  that, and such groups are redone with `soft_nms_gaussian_one`.

  Args:
    group: [N] int group ids, ascending (one group per (video, class)).
    score, start, end: [N] proposals, each group in append order.
    sigma: score *= exp(-IoU^2 / sigma).
  Returns:
    (index [N], score [N]): every proposal, groups in ascending order, each in
    pick order, with its decayed score.
  """
  group = np.asarray(group, np.int64)
  score, start, end = (np.asarray(x, np.float64) for x in (score, start, end))
  n = score.size
  if n == 0:
    return np.zeros(0, np.int64), np.zeros(0)
  if np.any(np.diff(group) < 0):
    raise ValueError("soft_nms_gaussian: group ids must be ascending")
  comp = _components(group, start, end)
  by_comp = np.argsort(comp, kind="stable")
  size = np.bincount(comp)
  comp_group = group[by_comp][np.cumsum(size) - size]
  pick, picked, key, tied = _isolated_soft_nms(score[by_comp], start[by_comp],
                                               end[by_comp], size, sigma)
  # Merge each group's components: largest running minimum first, pick order within.
  pick_comp = np.repeat(np.arange(size.size), size)
  pick_round = np.arange(n) - np.repeat(np.cumsum(size) - size, size)
  pick_group = comp_group[pick_comp]
  order = np.lexsort((pick_round, -key, pick_group))
  g, k, c = pick_group[order], key[order], pick_comp[order]
  cross = (g[1:] == g[:-1]) & (k[1:] == k[:-1]) & (c[1:] != c[:-1])
  redo = np.zeros(int(group[-1]) + 1, bool)
  redo[g[1:][cross]] = True
  redo[comp_group[tied]] = True
  index = by_comp[pick[order]]
  out_score = picked[order]
  if redo.any():
    bounds = np.searchsorted(group, np.arange(redo.size + 1))
    for r in np.flatnonzero(redo):
      lo, hi = bounds[r], bounds[r + 1]
      i, s = soft_nms_gaussian_one(score[lo:hi], start[lo:hi], end[lo:hi], sigma)
      index[lo:hi], out_score[lo:hi] = lo + i, s
  return index, out_score


# --------------------------------------------------------------------------------
# From proposals to the one detections type.


def filter_rows(proposals: WtalcProposals, video_names: Sequence[str], *,
                ambiguous: Optional[ground_truth.AmbiguousSegments] = None,
                min_length: Optional[float] = None,
                frames_per_snippet: int = constants.SNIPPET_FRAMES,
                fps: float = constants.FEATURE_FPS) -> WtalcProposals:
  """The proposals the filters keep, order kept (SPEC-CO2NET-DELU 5.6).

  Args:
    proposals: of the videos `video_names` (index = position).
    ambiguous: the Ambiguous segments (`wtalc_filters.read_ambiguous`); None: no
      Ambiguous filter.
    min_length: DELU's filter keeps t-end - t-start > min_length (1); None (CO2-Net):
      no length filter.
  """
  keep = np.ones(len(proposals), bool)
  if ambiguous is not None:
    keep &= wtalc_filters.ambiguous_keep(video_names, proposals.video, proposals.start,
                                         proposals.end, ambiguous,
                                         frames_per_snippet=frames_per_snippet, fps=fps)
  if min_length is not None:
    keep &= wtalc_filters.length_keep(proposals.start, proposals.end, min_length)
  return proposals.take(keep)


def to_detections(proposals: WtalcProposals, video_names: Sequence[str],
                  class_names: Sequence[str], *,
                  frames_per_snippet: int = constants.SNIPPET_FRAMES,
                  fps: float = constants.FEATURE_FPS, source: str = "<wtalc>") -> Detections:
  """Detections in seconds (snippets * frames_per_snippet / fps), order kept (5.8)."""
  if len(video_names) != proposals.class_scores.shape[0]:
    raise ValueError(f"{len(video_names)} video names for "
                     f"{proposals.class_scores.shape[0]} videos")
  if len(class_names) != proposals.class_scores.shape[1]:
    raise ValueError(f"{len(class_names)} class names for "
                     f"{proposals.class_scores.shape[1]} classes")
  per_second = frames_per_snippet / fps
  return Detections(tuple(str(v) for v in video_names), tuple(class_names),
                    proposals.video.astype(np.int64), proposals.label.astype(np.int64),
                    proposals.score, proposals.start * per_second,
                    proposals.end * per_second, source=source)


def detections(cas: Sequence[np.ndarray], attn: Sequence[np.ndarray],
               video_names: Sequence[str], class_names: Sequence[str], *,
               num_thresholds: int,
               ambiguous: Optional[ground_truth.AmbiguousSegments] = None,
               min_length: Optional[float] = None,
               frames_per_snippet: int = constants.SNIPPET_FRAMES,
               fps: float = constants.FEATURE_FPS, **settings) -> Detections:
  """CO2-Net's or DELU's detections of many videos, in seconds (SPEC-CO2NET-DELU 5).

  CO2-Net: num_thresholds=10, ambiguous=segments; DELU: num_thresholds=20,
  ambiguous=segments, min_length=1.

  Args:
    cas, attn: per video [T_v, C+1] logits and [T_v] attention (`propose`).
    video_names: the V video names (the Ambiguous filter looks them up).
    class_names: the C classes (without background).
    num_thresholds, **settings: `propose`'s settings.
    ambiguous, min_length: `filter_rows`.
  """
  proposals = propose(cas, attn, num_thresholds=num_thresholds, **settings)
  proposals = filter_rows(proposals, video_names, ambiguous=ambiguous,
                          min_length=min_length, frames_per_snippet=frames_per_snippet,
                          fps=fps)
  return to_detections(proposals, video_names, class_names,
                       frames_per_snippet=frames_per_snippet, fps=fps)
