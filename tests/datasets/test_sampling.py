"""Snippet sampling against the text of SPEC 2.9 (THUMOS14 training), 3 (THUMOS14
test) and 4 (the ActivityNet code path)."""

import math

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


# ------------------------------------------------------------------ ActivityNet path
#
# The references below transcribe SPEC section 4 literally, with Python floats and
# one scalar draw at a time, so that the vectorised implementation is checked
# against the text and not against itself.


def _spec_activitynet_train(length, num_segments, rng):
  """SPEC 4, training, as written."""
  if length == num_segments:
    return list(range(length))
  if length < num_segments:
    return sorted(int(rng.integers(0, length)) for _ in range(num_segments))
  s = [i * length / num_segments for i in range(num_segments)]
  for i in range(num_segments - 1):
    s[i] = int(rng.integers(int(s[i]), int(s[i + 1]), endpoint=True))
  s[num_segments - 1] = int(rng.choice(np.arange(s[num_segments - 2], length)))
  return [int(v) for v in s]


def _spec_activitynet_test(length, num_segments):
  """SPEC 4, test, as written."""
  if length == 1:
    return [0, 0]
  if length <= num_segments:
    return list(range(length))
  return [math.floor(i * (length / num_segments)) for i in range(num_segments)]


class _EndOfRange:
  """A stand-in generator whose every draw is the low (or the high) end of its range."""

  def __init__(self, high: bool):
    self.high = high

  def integers(self, low, high, size=None, endpoint=False):
    top = np.asarray(high) - (0 if endpoint else 1)
    value = top if self.high else np.asarray(low)
    return np.broadcast_to(value, np.shape(value) if size is None else size).copy()


def test_activitynet_train_hand_made_long_video():
  # L = 10, T = 4: s = 0, 2.5, 5, 7.5 -> int(s) = 0, 2, 5, 7. Positions 0..2 draw
  # from int(s_i)..int(s_{i+1}); the last from the DRAWN s_2 to L - 1 = 9.
  low = sampling.activitynet_train_indices(10, 4, _EndOfRange(high=False))
  high = sampling.activitynet_train_indices(10, 4, _EndOfRange(high=True))
  np.testing.assert_array_equal(low, [0, 2, 5, 5])    # The last starts at drawn 5.
  np.testing.assert_array_equal(high, [2, 5, 7, 9])
  seen = [set() for _ in range(4)]
  for seed in range(400):
    indices = sampling.activitynet_train_indices(10, 4, np.random.default_rng(seed))
    assert indices[3] >= indices[2]
    for i, index in enumerate(indices):
      seen[i].add(int(index))
  # Unlike THUMOS14 ({7, 8, 9}), the last position reaches back to 5.
  assert seen == [{0, 1, 2}, {2, 3, 4, 5}, {5, 6, 7}, {5, 6, 7, 8, 9}]


def test_activitynet_train_hand_made_short_video_draws_with_replacement():
  # L = 3, T = 8: eight draws from {0, 1, 2}, sorted; no fixed bins as in THUMOS14.
  np.testing.assert_array_equal(
      sampling.activitynet_train_indices(3, 8, _EndOfRange(high=True)), [2] * 8)
  firsts, counts = set(), set()
  for seed in range(400):
    indices = sampling.activitynet_train_indices(3, 8, np.random.default_rng(seed))
    assert indices.shape == (8,) and indices.dtype == np.int64
    assert np.all(np.diff(indices) >= 0) and set(indices.tolist()) <= {0, 1, 2}
    firsts.add(int(indices[0]))
    counts.add(int(np.sum(indices == 0)))
  assert firsts == {0, 1}      # Snippet 0 is sometimes not drawn at all...
  assert max(counts) >= 6      # ...and sometimes drawn most of the time.


def test_activitynet_train_takes_every_snippet_when_lengths_match():
  np.testing.assert_array_equal(
      sampling.activitynet_train_indices(50, 50, _EndOfRange(high=True)), np.arange(50))


def test_activitynet_train_with_one_segment_draws_from_the_whole_video():
  seen = {int(sampling.activitynet_train_indices(6, 1, np.random.default_rng(seed))[0])
          for seed in range(200)}
  assert seen == set(range(6))


@pytest.mark.parametrize("length,num_segments", [(10, 4), (3, 8), (50, 50), (58, 50),
                                                 (2000, 50), (49, 50), (1, 5), (6, 1),
                                                 (51, 50), (30, 22)])
def test_activitynet_train_equals_the_spec_text(length, num_segments):
  for seed in range(25):
    actual = sampling.activitynet_train_indices(length, num_segments,
                                                np.random.default_rng(seed))
    expected = _spec_activitynet_train(length, num_segments, np.random.default_rng(seed))
    assert actual.dtype == np.int64
    assert actual.tolist() == expected


def test_activitynet_test_hand_made():
  np.testing.assert_array_equal(sampling.activitynet_test_indices(1, 50), [0, 0])
  np.testing.assert_array_equal(sampling.activitynet_test_indices(2, 50), [0, 1])
  np.testing.assert_array_equal(sampling.activitynet_test_indices(5, 8), [0, 1, 2, 3, 4])
  np.testing.assert_array_equal(sampling.activitynet_test_indices(8, 8), np.arange(8))
  np.testing.assert_array_equal(sampling.activitynet_test_indices(10, 4), [0, 2, 5, 7])
  # L / T first: 30 / 22 rounds below 15 / 11, so 11 * (30 / 22) = 14.999... -> 14,
  # where floor(11 * 30 / 22) = 15 (the THUMOS14 formula).
  expected = [0, 1, 2, 4, 5, 6, 8, 9, 10, 12, 13, 14, 16, 17, 19, 20, 21, 23, 24, 25,
              27, 28]
  np.testing.assert_array_equal(sampling.activitynet_test_indices(30, 22), expected)
  assert sampling.uniform_indices(30, 22)[11] == 15
  # At T = 50: 25 * (58 / 50) = 28.999... -> 28, not 29.
  assert sampling.activitynet_test_indices(58, 50)[25] == 28
  assert sampling.uniform_indices(58, 50)[25] == 29


@pytest.mark.parametrize("num_segments", [4, 22, 50])
def test_activitynet_test_equals_the_spec_text(num_segments):
  for length in range(1, 6 * num_segments):
    actual = sampling.activitynet_test_indices(length, num_segments)
    assert actual.dtype == np.int64
    assert actual.tolist() == _spec_activitynet_test(length, num_segments)


def test_the_variant_field_selects_the_code_path():
  rng = lambda: np.random.default_rng(7)   # noqa: E731
  np.testing.assert_array_equal(
      sampling.train_indices(100, 30, rng(), "thumos14"),
      sampling.random_perturb_indices(100, 30, rng()))
  np.testing.assert_array_equal(
      sampling.train_indices(100, 30, rng(), "activitynet"),
      sampling.activitynet_train_indices(100, 30, rng()))
  np.testing.assert_array_equal(sampling.train_indices(100, 30, rng()),
                                sampling.random_perturb_indices(100, 30, rng()))
  np.testing.assert_array_equal(sampling.eval_indices(30, 22, "activitynet"),
                                sampling.activitynet_test_indices(30, 22))
  np.testing.assert_array_equal(sampling.eval_indices(1, 50, "activitynet", True),
                                [0, 0])
  np.testing.assert_array_equal(sampling.eval_indices(30, 22),
                                sampling.uniform_indices(30, 22))
  np.testing.assert_array_equal(sampling.eval_indices(5, 8, "thumos14", True),
                                np.arange(5))
  assert sampling.eval_indices(5, 8, "thumos14").shape == (8,)


def test_unknown_or_contradictory_sampling_is_refused():
  with pytest.raises(ValueError, match="sampling 'thumos' is not one of"):
    sampling.train_indices(10, 4, np.random.default_rng(0), "thumos")
  with pytest.raises(ValueError, match="sampling 'anet' is not one of"):
    sampling.eval_indices(10, 4, "anet")
  with pytest.raises(ValueError, match="keep_all_if_shorter=False contradicts"):
    sampling.eval_indices(10, 4, "activitynet", keep_all_if_shorter=False)


@pytest.mark.parametrize("length,num_segments", [(0, 5), (5, 0)])
def test_activitynet_bad_sizes_are_errors(length, num_segments):
  with pytest.raises(ValueError):
    sampling.activitynet_test_indices(length, num_segments)
  with pytest.raises(ValueError):
    sampling.activitynet_train_indices(length, num_segments, np.random.default_rng(0))
