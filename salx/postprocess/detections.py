"""Detections: the one type that travels from localization to the AP.

Flat arrays, one entry per detection, with the names they index:

    Detections(video_names [V], class_names [C],
               video [N], label [N], score [N], start [N], end [N])

`salx.postprocess.localization.localize` makes them from model outputs,
`salx.postprocess.nms` orders them, `salx.postprocess.ap` scores them, and the
ActivityNet detection JSON ({"results": {video: [{label, score, segment}]}})
is read and written here.
"""

from __future__ import annotations

import dataclasses
import itertools
from typing import Mapping, Optional, Sequence, Tuple

import numpy as np

from salx.postprocess import inputs
from salx.postprocess import json_limits

_FIELDS = ("video", "label", "score", "start", "end")


@dataclasses.dataclass(frozen=True)
class Detections:
  """Detections of V videos over C classes.

  Attributes:
    video_names: the V videos (every video localized, with or without detections).
    class_names: the C classes.
    video: [N] int, index into video_names.
    label: [N] int, index into class_names.
    score: [N] float.
    start, end: [N] float64, segment in seconds.
    source: where they come from (a file, '<dict>', 'of step 300'), as reports
      and error messages name it.
  """
  video_names: Tuple[str, ...]
  class_names: Tuple[str, ...]
  video: np.ndarray
  label: np.ndarray
  score: np.ndarray
  start: np.ndarray
  end: np.ndarray
  source: str = "<arrays>"

  def __post_init__(self):
    n = np.shape(self.score)
    for name in _FIELDS:
      if np.shape(getattr(self, name)) != n or len(n) != 1:
        raise ValueError(f"detections: {name} must be [N] like score {n}, got "
                         f"{np.shape(getattr(self, name))}")
    for name, names in (("video", self.video_names), ("label", self.class_names)):
      index = getattr(self, name)
      if index.size and (index.min() < 0 or index.max() >= len(names)):
        raise ValueError(f"detections: {name} index outside [0, {len(names)})")

  def __len__(self) -> int:
    return int(self.score.shape[0])

  def take(self, index) -> "Detections":
    """The detections at `index` (indices or a bool mask [N]), names unchanged."""
    return dataclasses.replace(self, **{f: getattr(self, f)[index] for f in _FIELDS})

  @staticmethod
  def concatenate(parts: Sequence["Detections"]) -> "Detections":
    """Detections of the videos of every part, in order (same class names)."""
    if not parts:
      raise ValueError("no detections to concatenate")
    classes = parts[0].class_names
    if any(p.class_names != classes for p in parts):
      raise ValueError("detections over different class names cannot be concatenated")
    offsets = np.cumsum([0] + [len(p.video_names) for p in parts])
    return Detections(
        tuple(itertools.chain.from_iterable(p.video_names for p in parts)), classes,
        np.concatenate([p.video + o for p, o in zip(parts, offsets)]),
        *(np.concatenate([getattr(p, f) for p in parts]) for f in _FIELDS[1:]),
        source=parts[0].source)

  def _check_values(self) -> None:
    """Raise EvalInputError naming the first detection with a non-finite score or
    segment, or with end < start."""
    for bad, what in ((~np.isfinite(self.score), "score {s} is not a finite number"),
                      (~(np.isfinite(self.start) & np.isfinite(self.end)),
                       "segment [{a}, {b}] is not finite"),
                      (self.end < self.start, "segment end {b} < start {a}")):
      if bad.any():
        i = int(np.argmax(bad))
        raise inputs.EvalInputError(
            f"{self.source}: video {self.video_names[self.video[i]]}: " + what.format(
                s=self.score[i], a=self.start[i], b=self.end[i]))

  @staticmethod
  def from_json(path_or_data: inputs.PathOrData,
                class_names: Optional[Sequence[str]] = None) -> "Detections":
    """Detections of ActivityNet JSON {"results": {video: [{label, score, segment}]}}.

    Args:
      path_or_data: a JSON file or its parsed content.
      class_names: the classes to index labels by; default: the labels in order
        of first appearance.
    Raises:
      EvalInputError: unreadable or malformed file, a detection lacking a field,
        a label outside `class_names`, a non-finite score or segment, end < start.
    """
    source, data = json_limits.source_and_data(path_or_data)
    results = data.get("results") if isinstance(data, Mapping) else None
    if not isinstance(results, Mapping):
      raise inputs.EvalInputError(f"{source}: no 'results' object (ActivityNet format)")
    videos, counts, labels, scores, segments = [], [], [], [], []
    for vid, dets in results.items():
      if not isinstance(dets, list):
        raise inputs.EvalInputError(f"{source}: video {vid}: detections are not a list")
      try:
        labels += [d["label"] for d in dets]
        scores += [d["score"] for d in dets]
        segments += [d["segment"] for d in dets]
      except (TypeError, KeyError):
        i = next(i for i, d in enumerate(dets) if not isinstance(d, Mapping)
                 or not {"label", "score", "segment"} <= d.keys())
        raise inputs.EvalInputError(f"{source}: video {vid}: detection {i} lacks "
                                    "'label', 'score' or 'segment'") from None
      videos.append(str(vid))
      counts.append(len(dets))
    video = np.repeat(np.arange(len(videos)), counts)
    fixed = class_names is not None
    index = {c: i for i, c in enumerate(class_names or ())}
    try:
      label = np.fromiter((index[l] if fixed else index.setdefault(l, len(index))
                           for l in labels), np.int64, len(labels))
    except (KeyError, TypeError):
      i = next(i for i, l in enumerate(labels) if not isinstance(l, str) or l not in index)
      raise inputs.EvalInputError(
          f"{source}: video {videos[video[i]]}: label {labels[i]!r} is not "
          + (f"among the {len(index)} class names" if fixed else "a class name")) from None
    try:
      score = np.array(scores, np.float64)
      if any(len(x) != 2 for x in segments) or score.shape != (len(labels),):
        raise ValueError
      seg = np.fromiter(itertools.chain.from_iterable(segments), np.float64,
                        2 * len(segments)).reshape(-1, 2)
    except (TypeError, ValueError):
      raise inputs.EvalInputError(f"{source}: scores must be numbers and segments "
                                  "pairs [start, end] of numbers") from None
    detections = Detections(tuple(videos), tuple(index), video, label, score,
                            np.ascontiguousarray(seg[:, 0]),
                            np.ascontiguousarray(seg[:, 1]), source=source)
    detections._check_values()
    return detections

  def to_json(self, details: str = "salx") -> dict:
    """ActivityNet detection JSON {"version", "results", "external_data"}.

    Every video has an entry (an empty list when it has no detection); each
    video's detections keep their order.
    """
    order = np.argsort(self.video, kind="stable")
    bounds = np.searchsorted(self.video[order], np.arange(len(self.video_names) + 1))
    label = np.asarray(self.class_names, dtype=object)[self.label[order]].tolist()
    score = self.score[order].tolist()
    start, end = self.start[order].tolist(), self.end[order].tolist()
    results = {}
    for v, name in enumerate(self.video_names):
      results.setdefault(name, []).extend(
          {"label": label[i], "score": score[i], "segment": [start[i], end[i]]}
          for i in range(bounds[v], bounds[v + 1]))
    return {"version": "VERSION 1.3", "results": results,
            "external_data": {"used": True, "details": details}}
