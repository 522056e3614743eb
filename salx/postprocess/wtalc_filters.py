"""The row filters of CO2-Net and DELU, in snippet units (SPEC-CO2NET-DELU 5.6).

Rows [t-start, t-end, score, label] of many videos, flat arrays in output order:

  ambiguous_keep   the Ambiguous filter: a row is dropped when the snippet set
                   {int(t-start) .. int(t-end) - 1} shares a snippet with
                   {round(a * 25 / 16) .. round(b * 25 / 16) - 1} for some
                   Ambiguous segment (a, b) of its video (round: half to even)
  length_keep      DELU's filter: t-end - t-start > 1

Both return a keep mask [N]; taking it keeps the order. `read_ambiguous` reads
`Ambiguous_test.txt` (`video  start end`: the real file has two spaces after the
name; any whitespace and CRLF line ends are accepted).
"""

from __future__ import annotations

import os
from typing import Sequence, Union

import numpy as np

from salx.core import constants
from salx.postprocess import arrays
from salx.postprocess import ground_truth


def read_ambiguous(path: Union[str, os.PathLike]) -> ground_truth.AmbiguousSegments:
  """Ambiguous segments (seconds) per video from `Ambiguous_test.txt`.

  Lines `video start end`, separated by any whitespace (the authors' file has
  two spaces after the name and split on single spaces, SPEC-CO2NET-DELU 5.6);
  CRLF line ends and blank lines are accepted.

  Raises:
    EvalInputError: unreadable file or a malformed line.
  """
  return ground_truth.load_ambiguous(path)


def ambiguous_snippet_bounds(seconds: np.ndarray,
                             frames_per_snippet: int = constants.SNIPPET_FRAMES,
                             fps: float = constants.FEATURE_FPS) -> np.ndarray:
  """round(seconds * fps / frames_per_snippet), half to even, on float64.

  Python's `round(float(a) * 25 / 16)` of the authors, elementwise: the product
  and the quotient in that order, then round half to even (np.rint is exact
  and rounds halves to even as Python's round does).

  Args:
    seconds: [...] bounds in seconds.
  Returns:
    [...] int64 snippet bounds.
  """
  return np.rint(np.asarray(seconds, np.float64) * fps / frames_per_snippet).astype(np.int64)


def ambiguous_keep(video_names: Sequence[str], video: np.ndarray, start: np.ndarray,
                   end: np.ndarray, ambiguous: ground_truth.AmbiguousSegments, *,
                   frames_per_snippet: int = constants.SNIPPET_FRAMES,
                   fps: float = constants.FEATURE_FPS) -> np.ndarray:
  """Rows the Ambiguous filter keeps (SPEC-CO2NET-DELU 5.6), all at once.

  Row i of video v is dropped when for some Ambiguous segment (a, b) of v the
  integer sets G = {g0 .. g1 - 1}, g = round(x * fps / frames_per_snippet), and
  R = {int(start_i) .. int(end_i) - 1} intersect (the authors' |G & R| /
  |G | R| > 0). Their code divides by zero when both sets are empty; such a
  row is kept here.

  Args:
    video_names: the V videos, looked up by name in `ambiguous`.
    video: [N] int index into video_names.
    start, end: [N] rows in snippet units.
    ambiguous: segments in seconds per video (`read_ambiguous`).
  Returns:
    [N] bool, True where the row is kept.
  """
  video = np.asarray(video, np.int64)
  keep = np.ones(video.shape, bool)
  names = [v for v in dict.fromkeys(video_names) if v in ambiguous.segments]
  if not names or video.size == 0:
    return keep
  segments = [np.asarray(ambiguous.segments[v], np.float64).reshape(-1, 2) for v in names]
  bounds = ambiguous_snippet_bounds(np.concatenate(segments), frames_per_snippet, fps)
  counts = np.asarray([len(s) for s in segments], np.int64)
  first = np.cumsum(counts) - counts
  row_of_name = {v: i for i, v in enumerate(names)}
  table = np.asarray([row_of_name.get(v, -1) for v in video_names], np.int64)[video]
  lo = np.where(table >= 0, first[table], 0)
  hi = np.where(table >= 0, first[table] + counts[table], 0)
  row, seg = arrays.expand_ranges(lo, hi)  # every (row, Ambiguous segment of its video)
  r0 = np.trunc(np.asarray(start, np.float64)[row]).astype(np.int64)
  r1 = np.trunc(np.asarray(end, np.float64)[row]).astype(np.int64)
  shared = np.maximum(r0, bounds[seg, 0]) < np.minimum(r1, bounds[seg, 1])
  keep[row[shared]] = False
  return keep


def length_keep(start: np.ndarray, end: np.ndarray, min_length: float = 1.0) -> np.ndarray:
  """Rows DELU keeps: t-end - t-start > min_length (SPEC-CO2NET-DELU 5.6).

  With min_length 1 (DELU's test.py) the single-snippet rows go.

  Args:
    start, end: [N] rows in snippet units.
  Returns:
    [N] bool.
  """
  return (np.asarray(end, np.float64) - np.asarray(start, np.float64)) > min_length
