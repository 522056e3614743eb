"""Soft-NMS and NMS of proposals, every group at once (SPEC 3.6).

A group is one (video, predicted class). Overlapping pairs are found by sorting
each group by start; the greedy suppression in score order is solved in rounds
(`salx.postprocess.arrays.greedy_rounds`).
"""

from __future__ import annotations

from typing import Tuple

import numpy as np

from salx.postprocess import arrays


def iou_plus_one(s1, e1, s2, e2) -> np.ndarray:
  """1-D IoU with the official "+1" convention, elementwise.

  inter = max(0, min(e1, e2) - max(s1, s2) + 1), area = e - s + 1.
  """
  inter = np.maximum(0.0, np.minimum(e1, e2) - np.maximum(s1, s2) + 1)
  return inter / ((e1 - s1 + 1) + (e2 - s2 + 1) - inter)


def _overlapping_pairs(group: np.ndarray, start: np.ndarray, end: np.ndarray):
  """Pairs (a, b) of the same group whose "+1" intersection can be positive.

  With the group's proposals sorted by start, b follows a and starts before
  end_a + 1; every pair with IoU > 0 is among them.

  Returns:
    (a, b) proposal indices [E].
  """
  by_start = np.lexsort((start, group))
  g, s, e = group[by_start], start[by_start], end[by_start]
  position = np.arange(g.size)
  group_end = np.searchsorted(g, g, "right")
  a, b = arrays.expand_ranges(position + 1, arrays.first_above(s, position + 1,
                                                               group_end, e + 1))
  return by_start[a], by_start[b]


def suppress(group: np.ndarray, score: np.ndarray, start: np.ndarray,
             end: np.ndarray, nms_thresh: float, nms_alpha: float,
             soft: bool = True) -> Tuple[np.ndarray, np.ndarray]:
  """(Soft-)NMS within each group, all groups at once (SPEC 3.6).

  Per group: repeatedly take the highest score and keep it; the others with
  IoU >= nms_thresh with it leave the queue, in soft mode with their score times
  exp(-IoU^2 / nms_alpha) and not ranked against later picks. Soft output per
  group: the kept list, then the set-aside ones (grouped by the kept proposal
  that removed them, each group in score order); plain NMS: the kept list.
  Groups come out in ascending id order.

  Args:
    group: [N] int group ids, ascending.
    score, start, end: [N] proposals, each group in the authors' pooled order.
  Returns:
    (index [M], score [M]): proposals in output order and their scores.
  """
  n = score.size
  if n == 0:
    return np.zeros(0, np.int64), score[:0]
  # Score order within groups; equal scores: the later proposal first, as the
  # authors' argsort()[::-1].
  order = np.lexsort((-np.arange(n), -score, group))
  rank = np.empty(n, np.int64)
  rank[order] = np.arange(n)
  a, b = _overlapping_pairs(group, start, end)
  s64, e64 = start.astype(np.float64), end.astype(np.float64)
  iou = iou_plus_one(s64[a], e64[a], s64[b], e64[b])
  hit = iou >= nms_thresh
  u, v = np.minimum(rank[a[hit]], rank[b[hit]]), np.maximum(rank[a[hit]], rank[b[hit]])
  iou = iou[hit]
  # Each suppressing pair is a group of two nodes (ranks) of which greedy keeps one.
  kept = arrays.greedy_rounds(n, np.repeat(np.arange(u.size), 2),
                              np.stack([u, v], axis=1).reshape(-1))
  kept_index = order[kept]
  if not soft:
    return kept_index, score[kept_index]
  # The remover of a set-aside v: the first kept u with an edge u -> v.
  from_kept = kept[u] & ~kept[v]
  u, v, iou = u[from_kept], v[from_kept], iou[from_kept]
  by_v = np.lexsort((u, v))
  u, v, iou = u[by_v], v[by_v], iou[by_v]
  first = np.r_[True, v[1:] != v[:-1]] if v.size else np.zeros(0, bool)
  aside, remover, iou = v[first], u[first], iou[first]
  decayed = score[order[aside]] * np.exp(-np.square(iou) / nms_alpha)
  # Output: per group, kept by rank, then set-aside by (remover, own rank).
  nodes = np.concatenate([np.flatnonzero(kept), aside])
  primary = np.concatenate([np.flatnonzero(kept), remover])
  is_aside = np.r_[np.zeros(kept_index.size, bool), np.ones(aside.size, bool)]
  out = np.lexsort((nodes, primary, is_aside, group[order[nodes]]))
  index = order[nodes[out]]
  new_score = np.concatenate([score[kept_index], decayed.astype(score.dtype)])[out]
  return index, new_score
