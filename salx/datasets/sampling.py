"""Which snippets of a video of L snippets make up a sample of T (SPEC 2.9, 3 and 4).

Two code paths, named by the variant's `sampling` field:
  'thumos14'     training "random perturb" (SPEC 2.9), test floor(i * L / T) (SPEC 3);
  'activitynet'  the ActivityNet code's own training and test sampling (SPEC 4).
`train_indices` and `eval_indices` pick the path; the functions below them are
the paths themselves.

Pure NumPy and exact: the bin edges floor(i * L / T) are computed with integer
arithmetic, which equals `int(i * L / T)` of the authors' float code for every
L, T the benchmarks use (a true quotient never lies within rounding error of the
next integer when L, T < 2**26). The ActivityNet test sampling is the exception:
its code computes L / T first, and that rounding is reproduced as is.
"""

from __future__ import annotations

from typing import Optional

import numpy as np

THUMOS14 = "thumos14"
ACTIVITYNET = "activitynet"
SAMPLINGS = (THUMOS14, ACTIVITYNET)


def _check_sizes(length: int, num_segments: int) -> None:
  if length < 1:
    raise ValueError(f"a video needs at least one snippet, got length {length}")
  if num_segments < 1:
    raise ValueError(f"num_segments must be at least 1, got {num_segments}")


def check_sampling(sampling: str) -> str:
  """`sampling` itself; a ValueError naming it unless it is one of SAMPLINGS."""
  if sampling not in SAMPLINGS:
    raise ValueError(f"sampling {sampling!r} is not one of {SAMPLINGS}")
  return sampling


def bin_edges(length: int, num_segments: int) -> np.ndarray:
  """[T + 1] int64 edges floor(i * L / T), i = 0..T; the last one is L."""
  _check_sizes(length, num_segments)
  steps = np.arange(num_segments + 1, dtype=np.int64)
  return steps * np.int64(length) // np.int64(num_segments)


# ------------------------------------------------------------------- THUMOS14 path


def random_perturb_indices(length: int, num_segments: int,
                           rng: np.random.Generator) -> np.ndarray:
  """THUMOS14 training sample ("random perturb", SPEC 2.9): [T] int64 indices.

  With s_i = i * L / T: index i < T - 1 is drawn uniformly from the integers
  int(s_i) .. int(s_{i+1}), both ends included (it is int(s_i) when they are
  equal); the last index is drawn from int(s_{T-1}) .. L - 1 (it is int(s_{T-1})
  when that is already L - 1). L == T takes every snippet once. Short videos
  (L < T) repeat snippets. The indices never decrease.

  Args:
    length: L, the number of snippets of the video.
    num_segments: T, the number of snippets to sample.
    rng: the random generator; equal generator states give equal samples.
  """
  _check_sizes(length, num_segments)
  if length == num_segments:
    return np.arange(length, dtype=np.int64)
  edges = bin_edges(length, num_segments)
  lows = edges[:-1]
  highs = edges[1:].copy()
  highs[-1] = length - 1   # The last bin reaches the last snippet.
  return rng.integers(lows, highs, endpoint=True).astype(np.int64)


def uniform_indices(length: int, num_segments: int,
                    keep_all_if_shorter: bool = False) -> np.ndarray:
  """THUMOS14 test sample (SPEC 3): [T] int64 indices floor(i * L / T), or [L].

  L == T takes every snippet. Shorter videos repeat snippets, unless
  `keep_all_if_shorter`, which returns all L snippets, [L], whenever L <= T.
  """
  _check_sizes(length, num_segments)
  if length == num_segments or (keep_all_if_shorter and length <= num_segments):
    return np.arange(length, dtype=np.int64)
  return bin_edges(length, num_segments)[:-1]


# ---------------------------------------------------------------- ActivityNet path


def activitynet_train_indices(length: int, num_segments: int,
                              rng: np.random.Generator) -> np.ndarray:
  """ActivityNet training sample (SPEC 4): [T] int64 snippet indices.

  L == T takes every snippet. L > T: with s_i = i * L / T, for i < T - 1 in order
  index i is a uniform draw from the integers int(s_i) .. int(s_{i+1}) (both
  included); the last index is a uniform draw from (drawn index T - 2) .. L - 1
  (from 0 .. L - 1 when T == 1). L < T: T uniform draws with replacement from
  0 .. L - 1, sorted. The indices never decrease. Arguments as in
  `random_perturb_indices`.
  """
  _check_sizes(length, num_segments)
  if length == num_segments:
    return np.arange(length, dtype=np.int64)
  if length < num_segments:
    return np.sort(rng.integers(0, length, size=num_segments)).astype(np.int64)
  edges = bin_edges(length, num_segments)[:num_segments]   # int(s_i), i < T.
  drawn = rng.integers(edges[:-1], edges[1:], endpoint=True).astype(np.int64)
  last_low = drawn[-1] if drawn.size else 0
  last = rng.integers(last_low, length - 1, endpoint=True)
  return np.append(drawn, np.int64(last))


def activitynet_test_indices(length: int, num_segments: int) -> np.ndarray:
  """ActivityNet test sample (SPEC 4): [L], [2] or [T] int64 snippet indices.

  1 < L <= T: all L snippets in order (the video keeps T' = L). L == 1: the sample
  has two snippets, both index 0. L > T: floor(i * (L / T)), i < T, with L / T
  rounded to float64 first, as the ActivityNet code computes it (this can be one
  below floor(i * L / T), e.g. L = 30, T = 22, i = 11 gives 14, not 15).
  """
  _check_sizes(length, num_segments)
  if length == 1:
    return np.zeros((2,), np.int64)
  if length <= num_segments:
    return np.arange(length, dtype=np.int64)
  step = length / num_segments
  return np.floor(np.arange(num_segments) * step).astype(np.int64)


# -------------------------------------------------------------------- the variants


def train_indices(length: int, num_segments: int, rng: np.random.Generator,
                  sampling: str = THUMOS14) -> np.ndarray:
  """[T] int64 training indices of the `sampling` path ('thumos14' | 'activitynet')."""
  if check_sampling(sampling) == ACTIVITYNET:
    return activitynet_train_indices(length, num_segments, rng)
  return random_perturb_indices(length, num_segments, rng)


def eval_indices(length: int, num_segments: int, sampling: str = THUMOS14,
                 keep_all_if_shorter: Optional[bool] = None) -> np.ndarray:
  """[T'] int64 test indices of the `sampling` code path.

  Args:
    length: L, the number of snippets of the video.
    num_segments: T.
    sampling: 'thumos14' (`uniform_indices`) or 'activitynet'
      (`activitynet_test_indices`).
    keep_all_if_shorter: for 'thumos14', keep videos of L <= T whole (default
      False). The ActivityNet sampling always keeps them whole: None or True.

  Raises:
    ValueError: an unknown `sampling`, or keep_all_if_shorter=False with the
      ActivityNet sampling.
  """
  if check_eval_sampling(sampling, keep_all_if_shorter) == ACTIVITYNET:
    return activitynet_test_indices(length, num_segments)
  return uniform_indices(length, num_segments, bool(keep_all_if_shorter))


def check_eval_sampling(sampling: str, keep_all_if_shorter: Optional[bool] = None
                        ) -> str:
  """`sampling`; a ValueError for an unknown one or a contradictory keep_all_if_shorter."""
  if check_sampling(sampling) == ACTIVITYNET and keep_all_if_shorter is False:
    raise ValueError(
        "keep_all_if_shorter=False contradicts the 'activitynet' test sampling, "
        "which keeps every video of L <= T snippets whole (SPEC 4)")
  return sampling
