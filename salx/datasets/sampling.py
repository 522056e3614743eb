"""Which snippets of a video of L snippets make up a sample of T (SPEC 2.9 and 3).

Pure NumPy and exact: the bin edges floor(i * L / T) are computed with integer
arithmetic, which equals `int(i * L / T)` of the authors' float code for every
L, T the benchmarks use (a true quotient never lies within rounding error of the
next integer when L, T < 2**26).
"""

from __future__ import annotations

import numpy as np


def _check_sizes(length: int, num_segments: int) -> None:
  if length < 1:
    raise ValueError(f"a video needs at least one snippet, got length {length}")
  if num_segments < 1:
    raise ValueError(f"num_segments must be at least 1, got {num_segments}")


def bin_edges(length: int, num_segments: int) -> np.ndarray:
  """[T + 1] int64 edges floor(i * L / T), i = 0..T; the last one is L."""
  _check_sizes(length, num_segments)
  steps = np.arange(num_segments + 1, dtype=np.int64)
  return steps * np.int64(length) // np.int64(num_segments)


def random_perturb_indices(length: int, num_segments: int,
                           rng: np.random.Generator) -> np.ndarray:
  """Training sample ("random perturb", SPEC 2.9): [T] int64 snippet indices.

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
  """Test sample (SPEC 3 and 4): [T] int64 indices floor(i * L / T), or [L].

  L == T takes every snippet. Shorter videos repeat snippets, unless
  `keep_all_if_shorter` (the ActivityNet test sampling), which returns all L
  snippets, [L], whenever L <= T.
  """
  _check_sizes(length, num_segments)
  if length == num_segments or (keep_all_if_shorter and length <= num_segments):
    return np.arange(length, dtype=np.int64)
  return bin_edges(length, num_segments)[:-1]
