"""CO2-Net / DELU training batches (SPEC-CO2NET-DELU section 4) in NumPy.

A batch is a pure function of a seeded generator: `draws` is a
`np.random.RandomState` or a `np.random.Generator` (only `.choice` is called).
With `np.random.RandomState(seed)` the draws are their code's, in their order
(SPEC-CO2NET-DELU 4.5), so their batches come out exactly.

    classwise = sampling.classwise_videos(train_videos, train_labels)
    draws = np.random.RandomState(seed)
    video_index, snippet_index = sampling.sample_batch(
        draws, classwise, train_videos, video_lengths, batch_size=10, num_similar=3,
        max_seqlen=320)
    x = np.stack([features[v][i] for v, i in zip(video_index, snippet_index)])
"""

from __future__ import annotations

from typing import Any, List, Mapping, Sequence, Tuple, Union

import numpy as np

# `load_data` uses its own default of 2 videos per drawn class; the `similar_size`
# option is never passed to it (SPEC-CO2NET-DELU 0, 4.2).
SIMILAR_SIZE = 2


def classwise_videos(train_videos: Sequence[int], train_labels: np.ndarray
                     ) -> List[List[int]]:
  """classwise[c] = the training videos (ascending index) labelled c (SPEC-CO2NET-DELU 4.1).

  Args:
    train_videos: the training videos' indices in the feature file [N].
    train_labels: their multi-hot labels [N, C].

  Returns:
    C lists of video indices.
  """
  train_labels = np.asarray(train_labels)
  order = np.argsort(np.asarray(train_videos), kind="stable")
  videos = np.asarray(train_videos)[order]
  labels = train_labels[order]
  return [[int(v) for v in videos[labels[:, c] > 0]] for c in range(labels.shape[1])]


def random_perturb(draws: Any, length: int, num_segments: int) -> np.ndarray:
  """The snippets `random_perturb(L)` takes to resample a video to T rows (SPEC-CO2NET-DELU 4.3).

  L == T: 0 .. T - 1. Otherwise s_i = i L / T and, in order of i, snippet i is
  drawn uniformly from int(s_i) .. int(s_{i+1}) (both ends) when they differ, else
  int(s_i); the last from int(s_{T-1}) .. L - 1 when int(s_{T-1}) < L - 1. One draw
  `choice(range(a, b + 1))` per range. Non-decreasing, may repeat; videos shorter
  than T are upsampled by repetition.

  Args:
    draws: RandomState or Generator.
    length: L, the video's number of snippets.
    num_segments: T.

  Returns:
    [T] int64 indices into the video's snippets.
  """
  if length == num_segments:
    return np.arange(num_segments, dtype=np.int64)
  grid = np.arange(num_segments, dtype=np.float64) * length / num_segments
  starts = grid.astype(np.int64)   # int() truncates; the grid is non-negative.
  out = np.empty(num_segments, dtype=np.int64)
  for i in range(num_segments):
    low = int(starts[i])
    high = int(starts[i + 1]) if i < num_segments - 1 else length - 1
    if low < high:   # int(s_i) <= int(s_{i+1}): "differ" is "less than".
      # choice(n) + low draws as their choice(range(low, high + 1)) does.
      out[i] = low + int(draws.choice(high - low + 1))
    else:
      out[i] = low
  return out


def sample_videos(draws: Any, classwise: Sequence[Sequence[int]],
                  train_videos: Sequence[int], *, batch_size: int, num_similar: int
                  ) -> np.ndarray:
  """The videos of one batch, `load_data(n_similar)` (SPEC-CO2NET-DELU 4.2).

  num_similar classes drawn WITH replacement; per class in order 2 distinct
  videos of that class (the first drawn first); then batch_size - 2 num_similar
  videos drawn uniformly from all training videos WITH replacement (a batch
  smaller than 2 num_similar is raised to it, as their code does).

  Args:
    draws: RandomState or Generator.
    classwise: per class, its training videos (`classwise_videos`).
    train_videos: all training videos' indices.
    batch_size, num_similar: 10 and 3 in their scripts.

  Returns:
    [max(batch_size, 2 num_similar)] video indices, the pairs first.
  """
  index = []
  for c in draws.choice(len(classwise), num_similar):
    members = classwise[int(c)]
    for position in draws.choice(len(members), SIMILAR_SIZE, replace=False):
      index.append(int(members[int(position)]))
  num_random = max(batch_size - SIMILAR_SIZE * num_similar, 0)
  for position in draws.choice(len(train_videos), num_random):
    index.append(int(train_videos[int(position)]))
  return np.asarray(index, dtype=np.int64)


def sample_batch(draws: Any, classwise: Sequence[Sequence[int]],
                 train_videos: Sequence[int],
                 video_lengths: Union[Mapping[int, int], Sequence[int], np.ndarray], *,
                 batch_size: int, num_similar: int, max_seqlen: int
                 ) -> Tuple[np.ndarray, np.ndarray]:
  """One training batch's indices: the videos, then each one's snippets (SPEC-CO2NET-DELU 4.2-4.5).

  Args:
    draws: RandomState or Generator, consumed in their code's order.
    classwise: per class, its training videos.
    train_videos: all training videos' indices.
    video_lengths: L of each video, indexed by video index (array or mapping).
    batch_size, num_similar: batch layout (`CO2NetHparams`).
    max_seqlen: T.

  Returns:
    (video_index [B], snippet_index [B, T]).
  """
  videos = sample_videos(draws, classwise, train_videos, batch_size=batch_size,
                         num_similar=num_similar)
  snippets = np.stack([random_perturb(draws, int(video_lengths[int(v)]), max_seqlen)
                       for v in videos])
  return videos, snippets
