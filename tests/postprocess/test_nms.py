"""Unit tests of salx.postprocess.nms (SPEC 3.6) against the definition as a loop."""

import math

import numpy as np
import pytest

from salx.postprocess import nms


def _spec_soft_nms(start, end, score, thresh, alpha, soft=True):
  """SPEC 3.6 written as a plain loop: indices and scores in output order."""
  order = list(np.argsort(score, kind="stable")[::-1])
  kept, aside = [], []
  while order:
    i, rest = order[0], order[1:]
    kept.append((i, score[i]))
    stay = []
    for j in rest:
      inter = max(0.0, min(end[i], end[j]) - max(start[i], start[j]) + 1)
      iou = inter / ((end[i] - start[i] + 1) + (end[j] - start[j] + 1) - inter)
      if iou >= thresh:
        aside.append((j, score[j] * math.exp(-iou ** 2 / alpha)))
      else:
        stay.append(j)
    order = stay
  out = kept + aside if soft else kept
  return [i for i, _ in out], [s for _, s in out]


def test_soft_nms_hand_made():
  #            A      B      C      D
  start = np.array([0.0, 4.0, 8.0, 30.0])
  end = np.array([10.0, 14.0, 18.0, 40.0])
  score = np.array([0.9, 0.8, 0.7, 0.6])
  group = np.zeros(4, np.int64)
  index, new = nms.suppress(group, score, start, end, 0.4, 0.3)
  # IoU(A, B) = 7 / 15 >= 0.4: B is set aside; C overlaps B (7 / 15) but B is
  # no longer in the queue, and IoU(A, C) = 3 / 19 < 0.4: C is kept; D is kept.
  assert index.tolist() == [0, 2, 3, 1]
  np.testing.assert_allclose(new, [0.9, 0.7, 0.6, 0.8 * math.exp(-(7 / 15) ** 2 / 0.3)],
                             rtol=1e-15)
  index, new = nms.suppress(group, score, start, end, 0.4, 0.3, soft=False)
  assert index.tolist() == [0, 2, 3]


def test_soft_nms_set_aside_grouped_by_remover():
  start = np.array([0.0, 100.0, 1.0, 101.0, 2.0])
  end = np.array([10.0, 110.0, 10.0, 110.0, 10.0])
  score = np.array([0.9, 0.8, 0.7, 0.95, 0.5])
  index, _ = nms.suppress(np.zeros(5, np.int64), score, start, end, 0.4, 0.3)
  # Kept by score: 3 (0.95), 0 (0.9); set aside: by 3: {1}; by 0: {2, 4}.
  assert index.tolist() == [3, 0, 1, 2, 4]


@pytest.mark.parametrize("soft", [True, False])
def test_suppress_equals_spec_loop_on_random_groups(soft):
  rng = np.random.default_rng(3)
  groups, starts, ends, scores = [], [], [], []
  for g in range(5):
    n = int(rng.integers(1, 60))
    s = np.round(rng.uniform(0, 50, n), 2)
    groups.append(np.full(n, g))
    starts.append(s)
    ends.append(s + np.round(rng.uniform(0, 8, n), 2))
    scores.append(rng.random(n))
  group, start, end, score = map(np.concatenate, (groups, starts, ends, scores))
  index, new = nms.suppress(group, score, start, end, 0.4, 0.3, soft=soft)
  expected_index, expected_score = [], []
  offset = 0
  for g in range(5):
    i, s = _spec_soft_nms(starts[g], ends[g], scores[g], 0.4, 0.3, soft)
    expected_index += [offset + j for j in i]
    expected_score += s
    offset += starts[g].size
  assert index.tolist() == expected_index
  np.testing.assert_allclose(new, expected_score, rtol=1e-14)


def test_suppress_nothing():
  index, score = nms.suppress(np.zeros(0, int), np.zeros(0), np.zeros(0), np.zeros(0),
                              0.4, 0.3)
  assert index.size == 0 and score.size == 0
