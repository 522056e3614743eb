"""Unit tests of salx.postprocess.arrays: the shared vectorized idioms."""

import numpy as np
import pytest

from salx.postprocess import arrays


def test_expand_ranges_lists_every_index_of_every_range():
  owner, index = arrays.expand_ranges(np.array([3, 0, 5, 7]), np.array([6, 0, 6, 4]))
  assert owner.tolist() == [0, 0, 0, 2]
  assert index.tolist() == [3, 4, 5, 5]
  # Ranges of at most one element take the short path; same answer.
  owner, index = arrays.expand_ranges(np.array([2, 9, 4]), np.array([3, 9, 5]))
  assert owner.tolist() == [0, 2] and index.tolist() == [2, 4]
  owner, index = arrays.expand_ranges(np.zeros(0, int), np.zeros(0, int))
  assert owner.size == 0 and index.size == 0


def test_first_above_and_bisect_first_equal_a_scan():
  rng = np.random.default_rng(0)
  values = np.sort(rng.integers(0, 20, 50)).astype(float)
  lo = rng.integers(0, 50, 200)
  hi = np.minimum(50, lo + rng.integers(0, 20, 200))
  target = rng.uniform(-1, 21, 200)
  expected = [next((i for i in range(a, b) if values[i] > t), b)
              for a, b, t in zip(lo, hi, target)]
  assert arrays.first_above(values, lo, hi, target).tolist() == expected
  assert arrays.first_above(np.zeros(0), np.zeros(2, int), np.zeros(2, int),
                            np.zeros(2)).tolist() == [0, 0]
  # A predicate of the position itself: first i in [lo, hi) with i * i >= 30.
  assert arrays.bisect_first(lambda i: i * i >= 30, np.array([0, 7, 0]),
                             np.array([10, 9, 3])).tolist() == [6, 7, 3]


def _greedy_loop(num_nodes, group, member):
  """The definition: visit nodes in order, select unless a selected node shares a group."""
  groups_of = [set() for _ in range(num_nodes)]
  for g, m in zip(group.tolist(), member.tolist()):
    groups_of[m].add(g)
  taken, selected = set(), []
  for node in range(num_nodes):
    selected.append(not groups_of[node] & taken)
    if selected[-1]:
      taken |= groups_of[node]
  return selected


@pytest.mark.parametrize("seed", range(5))
def test_greedy_rounds_equal_the_sequential_greedy(seed):
  rng = np.random.default_rng(seed)
  num_nodes, num_groups = 60, 25
  member = rng.integers(0, num_nodes, 150)
  group = rng.integers(0, num_groups, 150)
  order = rng.permutation(150)  # memberships in any order
  selected = arrays.greedy_rounds(num_nodes, group[order], member[order])
  assert selected.tolist() == _greedy_loop(num_nodes, group, member)


def test_greedy_rounds_pairs_and_no_groups():
  # Pairs (0, 1), (1, 2), (2, 3): 0 kept, 1 out, 2 kept, 3 out; 4 in no group.
  group = np.array([0, 0, 1, 1, 2, 2])
  member = np.array([0, 1, 1, 2, 2, 3])
  assert arrays.greedy_rounds(5, group, member).tolist() == [True, False, True, False, True]
  assert arrays.greedy_rounds(3, np.zeros(0, int), np.zeros(0, int)).all()


def test_pad_stack():
  batch, lengths = arrays.pad_stack([np.ones((2, 3)), np.full((4, 3), 2.0)])
  assert batch.shape == (2, 4, 3) and lengths.tolist() == [2, 4]
  assert batch[0, 2:].sum() == 0 and batch[1].min() == 2.0
  assert arrays.pad_stack([np.arange(3)], np.float32)[0].dtype == np.float32
  with pytest.raises(ValueError, match="array 1"):
    arrays.pad_stack([np.ones((2, 3)), np.ones((2, 4))])
