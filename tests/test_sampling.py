"""Snippet sampling against the text of SPEC 2.9 (training) and 3/4 (test)."""

import numpy as np
import pytest

from salx.datasets import sampling


def _observed_values(length, num_segments, draws=400):
  """{position: set of indices seen} over many seeds."""
  seen = [set() for _ in range(num_segments)]
  for seed in range(draws):
    indices = sampling.random_perturb_indices(
        length, num_segments, np.random.default_rng(seed))
    for i, index in enumerate(indices):
      seen[i].add(int(index))
  return seen


def test_random_perturb_takes_every_snippet_when_lengths_match():
  indices = sampling.random_perturb_indices(7, 7, np.random.default_rng(0))
  np.testing.assert_array_equal(indices, np.arange(7))


def test_random_perturb_hand_made_long_video():
  # L = 10, T = 4: s = 0, 2.5, 5, 7.5 -> int(s) = 0, 2, 5, 7. Bins include both
  # ends; the last runs to L - 1 = 9.
  assert _observed_values(10, 4) == [{0, 1, 2}, {2, 3, 4, 5}, {5, 6, 7}, {7, 8, 9}]


def test_random_perturb_hand_made_short_video_repeats_snippets():
  # L = 3, T = 8: s_i = 3i/8 -> int(s) = 0,0,0,1,1,1,2,2. Equal neighbours give
  # int(s_i); position 2 spans 0..1, position 5 spans 1..2; the last is int(s_7) = 2
  # = L - 1.
  expected = [{0}, {0}, {0, 1}, {1}, {1}, {1, 2}, {2}, {2}]
  assert _observed_values(3, 8) == expected


@pytest.mark.parametrize("length,num_segments", [(1000, 750), (751, 750), (50, 750),
                                                 (2000, 50), (49, 50), (1, 5)])
def test_random_perturb_stays_in_its_bin(length, num_segments):
  rng = np.random.default_rng(3)
  lows = (np.arange(num_segments) * length) // num_segments
  highs = (np.arange(1, num_segments + 1) * length) // num_segments
  highs[-1] = length - 1
  for _ in range(5):
    indices = sampling.random_perturb_indices(length, num_segments, rng)
    assert indices.shape == (num_segments,)
    assert indices.dtype == np.int64
    assert np.all(indices >= lows) and np.all(indices <= highs)
    assert np.all(np.diff(indices) >= 0)
    assert indices.min() >= 0 and indices.max() <= length - 1


def test_random_perturb_covers_both_ends_of_every_bin():
  length, num_segments = 37, 5   # bins of 7 or 8 snippets
  seen = _observed_values(length, num_segments, draws=600)
  edges = (np.arange(num_segments + 1) * length) // num_segments
  for i in range(num_segments):
    high = length - 1 if i == num_segments - 1 else edges[i + 1]
    assert seen[i] == set(range(edges[i], high + 1))


def test_random_perturb_is_deterministic_per_seed():
  first = sampling.random_perturb_indices(1000, 750, np.random.default_rng(42))
  again = sampling.random_perturb_indices(1000, 750, np.random.default_rng(42))
  other = sampling.random_perturb_indices(1000, 750, np.random.default_rng(43))
  np.testing.assert_array_equal(first, again)
  assert not np.array_equal(first, other)


def test_uniform_hand_made():
  np.testing.assert_array_equal(sampling.uniform_indices(10, 4), [0, 2, 5, 7])
  np.testing.assert_array_equal(sampling.uniform_indices(3, 8),
                                [0, 0, 0, 1, 1, 1, 2, 2])
  np.testing.assert_array_equal(sampling.uniform_indices(750, 750), np.arange(750))


def test_uniform_matches_floor_of_float_formula():
  for length in (1, 49, 50, 51, 749, 751, 2345):
    expected = np.floor(np.arange(750) * length / 750).astype(np.int64)
    np.testing.assert_array_equal(sampling.uniform_indices(length, 750), expected)


def test_uniform_keeps_all_short_videos_when_asked():
  np.testing.assert_array_equal(
      sampling.uniform_indices(30, 50, keep_all_if_shorter=True), np.arange(30))
  np.testing.assert_array_equal(
      sampling.uniform_indices(50, 50, keep_all_if_shorter=True), np.arange(50))
  np.testing.assert_array_equal(
      sampling.uniform_indices(120, 50, keep_all_if_shorter=True),
      (np.arange(50) * 120) // 50)
  assert sampling.uniform_indices(30, 50).shape == (50,)


@pytest.mark.parametrize("length,num_segments", [(0, 5), (5, 0), (-1, 3)])
def test_bad_sizes_are_errors(length, num_segments):
  with pytest.raises(ValueError):
    sampling.uniform_indices(length, num_segments)
  with pytest.raises(ValueError):
    sampling.random_perturb_indices(length, num_segments, np.random.default_rng(0))
