"""Array helpers shared by localization, suppression and evaluation.

Each is one vectorized idiom the postprocess tier needs in several places:
expanding ranges into their indices (the segmented arange), bisection over many
ranges at once, greedy selection in priority order solved in rounds, and
padding per-video arrays into a batch.
"""

from __future__ import annotations

from typing import Callable, Sequence, Tuple

import numpy as np


def expand_ranges(lo: np.ndarray, hi: np.ndarray) -> Tuple[np.ndarray, np.ndarray]:
  """Every index of the ranges [lo_i, hi_i), range by range.

  Args:
    lo, hi: [R] integer bounds; a range with hi_i <= lo_i is empty.
  Returns:
    (owner [E], index [E]): for each element, its range i (ascending) and its
    value lo_i, lo_i + 1, ..., hi_i - 1.
  """
  lo = np.asarray(lo, np.int64)
  count = np.maximum(np.asarray(hi, np.int64) - lo, 0)
  if count.size == 0 or count.max() <= 1:
    owner = np.flatnonzero(count)
    return owner, lo[owner]
  owner = np.repeat(np.arange(count.size), count)
  first = np.cumsum(count) - count
  return owner, lo[owner] + (np.arange(owner.size) - first[owner])


def bisect_first(predicate: Callable[[np.ndarray], np.ndarray], lo: np.ndarray,
                 hi: np.ndarray) -> np.ndarray:
  """First i in [lo_j, hi_j) where `predicate` holds, for every range j at once.

  Within each range the predicate must be false and then true (monotone);
  where it never holds the answer is hi_j.

  Args:
    predicate: maps positions [R] (one per range) to bool [R].
    lo, hi: [R] integer bounds.
  Returns:
    [R] int64.
  """
  lo = np.array(lo, np.int64)
  hi = np.array(hi, np.int64)
  active = lo < hi
  while active.any():
    mid = (lo + hi) // 2
    holds = predicate(mid)
    hi = np.where(active & holds, mid, hi)
    lo = np.where(active & ~holds, mid + 1, lo)
    active = lo < hi
  return lo


def first_above(values: np.ndarray, lo: np.ndarray, hi: np.ndarray,
                target: np.ndarray) -> np.ndarray:
  """First i in [lo_j, hi_j) with values[i] > target_j (else hi_j)  [R].

  Args:
    values: [N], ascending within every range.
    lo, hi, target: [R].
  """
  last = values.size - 1
  return bisect_first(lambda i: values[np.minimum(i, last)] > target, lo, hi)


def greedy_rounds(num_nodes: int, group: np.ndarray, member: np.ndarray) -> np.ndarray:
  """Greedy selection in priority order under exclusive groups.

  Nodes 0 .. num_nodes - 1 are visited in order; a node is selected unless an
  already selected node shares a group with it (greedy NMS: a group is a pair of
  overlapping proposals; greedy matching: a group holds the edges of one
  vertex). Solved in vectorized rounds: every undecided node that comes first
  among the undecided members of each of its groups is selected, and the other
  members of those groups are discarded. Each round decides at least the first
  undecided node; a few rounds suffice in practice. The work of a round is
  proportional to the memberships still undecided.

  Args:
    num_nodes: N.
    group, member: [E] memberships, in any order: node `member` belongs to
      group `group` (non-negative ids).
  Returns:
    [N] bool, selected.
  """
  selected = np.ones(num_nodes, bool)
  decided = np.zeros(num_nodes, bool)
  blocked = np.zeros(num_nodes, bool)
  first = np.empty(int(group.max()) + 1 if group.size else 0, np.int64)
  while group.size:
    first[group] = num_nodes
    np.minimum.at(first, group, member)
    head = first[group]  # the first undecided member of each membership's group
    behind = head != member
    blocked[member[behind]] = True
    # A head first in all its groups is selected; the rest of its groups, discarded.
    taken = ~blocked[head]
    blocked[member[behind]] = False
    decided[member[taken]] = True
    selected[member[taken & behind]] = False
    keep = ~decided[member]
    group, member = group[keep], member[keep]
  return selected


def pad_stack(arrays: Sequence[np.ndarray], dtype=None) -> Tuple[np.ndarray, np.ndarray]:
  """Per-video arrays [T_i, ...] as one zero-padded batch.

  Args:
    arrays: B arrays whose shapes differ only in their first axis.
    dtype: of the batch (default: that of the first array).
  Returns:
    (batch [B, max T_i, ...], lengths [B] int64).
  """
  arrays = [np.asarray(a) for a in arrays]
  if not arrays:
    raise ValueError("pad_stack needs at least one array")
  tail = arrays[0].shape[1:]
  for i, a in enumerate(arrays):
    if a.ndim == 0 or a.shape[1:] != tail:
      raise ValueError(f"array {i}: shape {a.shape} does not extend [T, {tail}]")
  lengths = np.asarray([a.shape[0] for a in arrays], np.int64)
  batch = np.zeros((len(arrays), int(lengths.max())) + tail, dtype or arrays[0].dtype)
  for i, a in enumerate(arrays):
    batch[i, :a.shape[0]] = a
  return batch, lengths
