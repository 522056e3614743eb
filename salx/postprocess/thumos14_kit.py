"""The official THUMOS'14 detection kit (TH14evalDet.m, 2015), vectorized.

Implemented from tests/fixtures/thumos14_official/README.md, section 4:

  ground truth   the per-class folder: `detclasslist.txt` (`<id> <Name>`),
                 `<Name>_test.txt` and `Ambiguous_test.txt` (`<video> <start> <end>`
                 seconds), every line counted, file order kept;
  overlap        both intervals flipped to [min, max]; iw = min(ends) - max(starts);
                 ov = iw / (max(ends) - min(starts)) when iw > 0, else 0;
  matching       per class and video, ground-truth-centric: each instance in file
                 order takes the free detection of largest ov (ties: the first in
                 score order), a TP when ov > threshold (strict);
  Ambiguous      an unmatched detection with ov > 0 with an Ambiguous segment of
                 its video is dropped (neither TP nor FP);
  ranking        (-score, video name, input order), a stable sort;
  AP             non-interpolated: sum of the precision at each TP / npos;
  mAP            the mean over the classes of detclasslist.txt.

The kit's input text (`<video> <t1> <t2> <class id> <score>`) is read and written
here too.
"""

from __future__ import annotations

import dataclasses
import os
import warnings
from typing import Dict, List, Mapping, Optional, Sequence, Tuple, Union

import numpy as np

from salx.postprocess import ap as ap_lib
from salx.postprocess import inputs
from salx.postprocess.detections import Detections
from salx.postprocess.ground_truth import AmbiguousSegments, GroundTruth
from salx.postprocess.inputs import EvalInputError

PathLike = Union[str, os.PathLike]

# The UCF101 ids of the 20 THUMOS'14 detection classes (detclasslist.txt), used
# when a folder lacks detclasslist.txt.
THUMOS14_CLASS_IDS = {
    "BaseballPitch": 7, "BasketballDunk": 9, "Billiards": 12, "CleanAndJerk": 21,
    "CliffDiving": 22, "CricketBowling": 23, "CricketShot": 24, "Diving": 26,
    "FrisbeeCatch": 31, "GolfSwing": 33, "HammerThrow": 36, "HighJump": 40,
    "JavelinThrow": 45, "LongJump": 51, "PoleVault": 68, "Shotput": 79,
    "SoccerPenalty": 85, "TennisSwing": 92, "ThrowDiscus": 93, "VolleyballSpiking": 97,
}
AMBIGUOUS = "Ambiguous"


@dataclasses.dataclass(frozen=True)
class OfficialGroundTruth:
  """The kit's ground truth: instances, Ambiguous segments and class ids.

  Attributes:
    instances: the classes of detclasslist.txt in its order; the instances class
      by class, each class in its file's line order; video_ids: every video of
      any file (Ambiguous_test.txt included), sorted.
    ambiguous: the Ambiguous segments by video (as written; the kit flips).
    class_ids: [C] the id of each class, None when unknown.
  """
  instances: GroundTruth
  ambiguous: AmbiguousSegments
  class_ids: Optional[Tuple[int, ...]]

  @property
  def num_ambiguous(self) -> int:
    return int(sum(len(s) for s in self.ambiguous.segments.values()))

  def describe(self) -> str:
    return (f"{self.instances.describe()} (+{self.num_ambiguous} Ambiguous, "
            f"{self.ambiguous.source})")


def _read_lines(path: str) -> List[Tuple[int, List[str]]]:
  """(line number, fields) of the non-blank lines of a text file."""
  try:
    with open(path, "r") as f:
      text = f.read()
  except OSError as e:
    raise EvalInputError(f"{path}: cannot read: {e.strerror or e}") from None
  except UnicodeDecodeError as e:
    raise EvalInputError(f"{path}: not a text file: {e}") from None
  return [(n, line.split()) for n, line in enumerate(text.splitlines(), 1) if line.split()]


def _read_segments(path: str) -> Tuple[List[str], np.ndarray]:
  """(video [n], segments [n, 2]) of `<video> <start> <end>` lines, in file order."""
  videos, segments = [], []
  for number, fields in _read_lines(path):
    try:
      if len(fields) != 3:
        raise ValueError
      segments.append((float(fields[1]), float(fields[2])))
    except ValueError:
      raise EvalInputError(f"{path}: line {number}: expected '<video> <start> <end>' "
                           "(seconds)") from None
    if not np.all(np.isfinite(segments[-1])):
      raise EvalInputError(f"{path}: line {number}: segment is not finite")
    videos.append(fields[0])
  return videos, np.asarray(segments, np.float64).reshape(-1, 2)


def _read_class_list(folder: str, subset: str) -> Tuple[List[str], Optional[List[int]]]:
  """(class names, ids) of detclasslist.txt, or of the `<Name>_<subset>.txt` files."""
  path = os.path.join(folder, "detclasslist.txt")
  if os.path.isfile(path):
    names, ids = [], []
    for number, fields in _read_lines(path):
      try:
        if len(fields) != 2:
          raise ValueError
        ids.append(int(fields[0]))
      except ValueError:
        raise EvalInputError(f"{path}: line {number}: expected '<id> <ClassName>'") from None
      names.append(fields[1])
    if not names:
      raise EvalInputError(f"{path}: no class")
    return names, ids
  suffix = f"_{subset}.txt"
  names = sorted(f[:-len(suffix)] for f in os.listdir(folder)
                 if f.endswith(suffix) and f != AMBIGUOUS + suffix)
  if not names:
    raise EvalInputError(f"{folder}: neither detclasslist.txt nor any <Class>{suffix}")
  known = all(n in THUMOS14_CLASS_IDS for n in names)
  return names, [THUMOS14_CLASS_IDS[n] for n in names] if known else None


def load_official_ground_truth(folder: PathLike, subset: str = "test") -> OfficialGroundTruth:
  """The kit's ground truth from the official per-class folder.

  Args:
    folder: holds `<Name>_<subset>.txt` per class, `Ambiguous_<subset>.txt` (optional)
      and `detclasslist.txt` (optional: else the class files in name order).
    subset: 'test' (or 'val' for the validation folder).
  Raises:
    EvalInputError: a missing folder or class file, a malformed line.
  """
  folder = os.fspath(folder)
  if not os.path.isdir(folder):
    raise EvalInputError(f"{folder}: not a folder (the official per-class annotation "
                         "folder: detclasslist.txt, <Class>_test.txt, Ambiguous_test.txt)")
  names, ids = _read_class_list(folder, subset)
  per_class = [_read_segments(os.path.join(folder, f"{name}_{subset}.txt"))
               for name in names]
  amb_path = os.path.join(folder, f"{AMBIGUOUS}_{subset}.txt")
  amb_videos, amb_segments = (_read_segments(amb_path) if os.path.isfile(amb_path)
                              else ([], np.zeros((0, 2))))
  video_ids = sorted(set(amb_videos).union(*(set(v) for v, _ in per_class)))
  index = {v: i for i, v in enumerate(video_ids)}
  videos = [v for v, _ in per_class]
  ambiguous: Dict[str, List] = {}
  for v, seg in zip(amb_videos, amb_segments):
    ambiguous.setdefault(v, []).append(seg)
  instances = GroundTruth(
      source=folder, subset=subset, video_ids=tuple(video_ids), class_names=tuple(names),
      video=np.asarray([index[v] for vs in videos for v in vs], np.int64),
      label=np.repeat(np.arange(len(names)), [len(v) for v in videos]),
      start=np.concatenate([s[:, 0] for _, s in per_class]),
      end=np.concatenate([s[:, 1] for _, s in per_class]))
  return OfficialGroundTruth(
      instances,
      AmbiguousSegments(os.path.basename(amb_path) if amb_videos else "no Ambiguous file",
                        {v: np.asarray(s, np.float64) for v, s in ambiguous.items()}),
      tuple(ids) if ids is not None else None)


# ---------------------------------------------------------------------------
# The kit's input text and flip-tolerant JSON.


def _strip_mp4(name: str) -> str:
  return name.replace(".mp4", "")


def read_kit_text(path: PathLike, class_names: Sequence[str],
                  class_ids: Sequence[int]) -> Detections:
  """Detections of the kit's input text `<video> <t1> <t2> <class id> <score>`.

  As the kit reads it: `.mp4` is removed from video names; lines whose class id is
  not in `class_ids` are ignored (with a warning) when they all come at the end,
  else the kit stops, and so does this. Segments are kept as written (t1 > t2 too).

  Args:
    path: the text file.
    class_names, class_ids: [C] detclasslist.txt.
  Raises:
    EvalInputError: unreadable file, a malformed line, an unknown class id before a
      known one.
  """
  path = os.fspath(path)
  by_id = {int(i): c for c, i in enumerate(class_ids)}
  rows = []
  for number, fields in _read_lines(path):
    try:
      if len(fields) != 5:
        raise ValueError
      row = (number, _strip_mp4(fields[0]), float(fields[1]), float(fields[2]),
             int(fields[3]), float(fields[4]))
    except ValueError:
      raise EvalInputError(f"{path}: line {number}: expected '<video> <t1> <t2> "
                           "<class id> <score>'") from None
    if not np.all(np.isfinite(row[2:])):
      raise EvalInputError(f"{path}: line {number}: not finite")
    rows.append(row)
  known = [r[4] in by_id for r in rows]
  last = max((i for i, k in enumerate(known) if k), default=-1)
  unknown = [r for r, k in zip(rows[:last], known[:last]) if not k]
  if unknown:
    raise EvalInputError(f"{path}: line {unknown[0][0]}: class id {unknown[0][4]} is not "
                         "in detclasslist.txt and lines follow it (the official kit "
                         "stops there)")
  if last + 1 < len(rows):
    warnings.warn(f"{path}: {len(rows) - last - 1} trailing line(s) with a class id not "
                  "in detclasslist.txt ignored, as the official kit does", stacklevel=2)
  rows = rows[:last + 1]
  names = list(dict.fromkeys(r[1] for r in rows))
  index = {v: i for i, v in enumerate(names)}
  return Detections(
      tuple(names), tuple(class_names),
      np.asarray([index[r[1]] for r in rows], np.int64),
      np.asarray([by_id[r[4]] for r in rows], np.int64),
      np.asarray([r[5] for r in rows], np.float64),
      np.asarray([r[2] for r in rows], np.float64),
      np.asarray([r[3] for r in rows], np.float64), source=path)


def _reversed(det) -> bool:
  seg = det.get("segment") if isinstance(det, Mapping) else None
  try:
    return len(seg) == 2 and float(seg[0]) > float(seg[1])
  except (TypeError, ValueError):
    return False


def read_detections_json(path_or_data: inputs.PathOrData,
                         class_names: Optional[Sequence[str]] = None) -> Detections:
  """`Detections.from_json`, keeping reversed segments (t1 > t2) as written.

  The kit flips them; ActivityNet-style evaluation rejects them.
  """
  source, data = inputs.source_and_data(path_or_data)
  results = data.get("results") if isinstance(data, Mapping) else None
  if not isinstance(results, Mapping):
    raise EvalInputError(f"{source}: no 'results' object (ActivityNet format)")
  flipped, swapped = {}, []
  for vid, dets in results.items():
    if isinstance(dets, list):
      swapped += [_reversed(d) for d in dets]
      dets = [dict(d, segment=list(d["segment"])[::-1]) if _reversed(d) else d
              for d in dets]
    flipped[vid] = dets
  try:
    detections = Detections.from_json({"results": flipped}, class_names)
  except EvalInputError as e:
    raise EvalInputError(str(e).replace("<dict>", source, 1)) from None
  swap = np.asarray(swapped, bool)
  return dataclasses.replace(detections, source=source,
                             start=np.where(swap, detections.end, detections.start),
                             end=np.where(swap, detections.start, detections.end))


def kit_lines(detections: Detections, class_names: Sequence[str],
              class_ids: Sequence[int]) -> List[str]:
  """The kit's input lines `<video> <t1> <t2> <class id> <score>`, in detection order.

  Numbers are written in their shortest round-trip form (Python's repr).
  Raises:
    EvalInputError: a detection label is not among `class_names`.
  """
  ids = dict(zip(class_names, (int(i) for i in class_ids)))
  missing = [c for c in detections.class_names if c not in ids]
  used = set(np.unique(detections.label).tolist())
  bad = [c for i, c in enumerate(detections.class_names) if i in used and c in missing]
  if bad:
    raise EvalInputError(f"{detections.source}: label {bad[0]!r} has no class id in "
                         "detclasslist.txt")
  label_id = [ids.get(c, -1) for c in detections.class_names]
  videos, labels = detections.video.tolist(), detections.label.tolist()
  starts, ends = detections.start.tolist(), detections.end.tolist()
  scores = detections.score.tolist()
  return [f"{detections.video_names[v]} {s!r} {e!r} {label_id[c]} {p!r}"
          for v, c, s, e, p in zip(videos, labels, starts, ends, scores)]


def write_kit_text(path: PathLike, detections: Detections, class_names: Sequence[str],
                   class_ids: Sequence[int]) -> int:
  """Writes the kit's input text; returns the number of lines."""
  lines = kit_lines(detections, class_names, class_ids)
  try:
    with open(path, "w") as f:
      f.write("".join(line + "\n" for line in lines))
  except OSError as e:
    raise EvalInputError(f"{os.fspath(path)}: cannot write: {e.strerror or e}") from None
  return len(lines)


# ---------------------------------------------------------------------------
# Overlap, matching and AP.


def kit_overlap(a_start, a_end, b_start, b_end) -> np.ndarray:
  """The kit's `intervaloverlapvalseconds`, elementwise, in its operation order."""
  a0, a1 = np.minimum(a_start, a_end), np.maximum(a_start, a_end)
  b0, b1 = np.minimum(b_start, b_end), np.maximum(b_start, b_end)
  iw = np.minimum(a1, b1) - np.maximum(a0, b0)
  span = np.maximum(a1, b1) - np.minimum(a0, b0)
  with np.errstate(divide="ignore", invalid="ignore"):
    return np.where(iw > 0, iw / np.where(iw > 0, span, 1.0), 0.0)


def non_interpolated_ap(tp: np.ndarray, kept: np.ndarray, num_positives: int) -> np.ndarray:
  """Sum of the precision at each TP, in rank order, divided once by npos.

  Args:
    tp: [K, n] bool, true positives in rank order.
    kept: [K, n] bool, false: dropped (neither TP nor FP).
  Returns:
    [K] AP.
  """
  k, n = tp.shape
  if n == 0 or num_positives == 0:
    return np.zeros(k)
  tp_cum = np.cumsum(tp, axis=1, dtype=np.float64)
  fp_cum = np.cumsum(kept & ~tp, axis=1, dtype=np.float64)
  with np.errstate(divide="ignore", invalid="ignore"):
    precision = np.where(tp, tp_cum / (tp_cum + fp_cum), 0.0)
  return np.cumsum(precision, axis=1)[:, -1] / num_positives  # sequential, as the kit


@dataclasses.dataclass(frozen=True)
class KitAP:
  """The kit's per-class AP.

  Attributes:
    ap: [K, C] AP at each threshold.
    num_dropped: [K] detections dropped as Ambiguous at each threshold.
    num_outside: detections of videos without any ground truth line.
  """
  ap: np.ndarray
  num_dropped: np.ndarray
  num_outside: int


def _touches_ambiguous(names: np.ndarray, start: np.ndarray, end: np.ndarray,
                       ambiguous: AmbiguousSegments) -> np.ndarray:
  """[N] bool: ov > 0 with an Ambiguous segment of the detection's video."""
  amb_names = sorted(ambiguous.segments)
  if not amb_names or names.size == 0:
    return np.zeros(names.size, bool)
  seg = np.concatenate([ambiguous.segments[v] for v in amb_names])
  owner = np.repeat(np.arange(len(amb_names)),
                    [len(ambiguous.segments[v]) for v in amb_names])
  lookup = {v: i for i, v in enumerate(amb_names)}
  group = np.asarray([lookup.get(v, -1) for v in names.tolist()], np.int64)
  a0, a1 = seg.min(axis=1), seg.max(axis=1)
  det, amb = ap_lib.candidate_pairs(group, start, end, owner, a0, a1)
  touch = np.zeros(names.size, bool)
  touch[det[np.minimum(end[det], a1[amb]) - np.maximum(start[det], a0[amb]) > 0]] = True
  return touch


def average_precision(ground_truth: OfficialGroundTruth, detections: Detections,
                      tiou_thresholds: Sequence[float]) -> KitAP:
  """The kit's AP of every class at every threshold (README section 4).

  Args:
    ground_truth: `load_official_ground_truth` (a `GroundTruth` alone: no Ambiguous).
    detections: seconds; reversed segments are flipped, `.mp4` is removed from
      video names, videos without ground truth make false positives.
    tiou_thresholds: K literal thresholds (0.85 is 0.85).
  Raises:
    EvalInputError: a detection label is not a class of detclasslist.txt.
  """
  if isinstance(ground_truth, GroundTruth):
    ground_truth = OfficialGroundTruth(ground_truth, AmbiguousSegments("none", {}), None)
  gt = ground_truth.instances
  th = np.asarray(tiou_thresholds, np.float64).reshape(-1)
  k, num_classes, num_videos = th.size, len(gt.class_names), len(gt.video_ids)
  classes = {c: i for i, c in enumerate(gt.class_names)}
  label_of = np.asarray([classes.get(c, -1) for c in detections.class_names], np.int64)
  label = label_of[detections.label]
  if np.any(label < 0):
    i = int(np.argmax(label < 0))
    raise EvalInputError(
        f"{detections.source}: video {detections.video_names[detections.video[i]]}: "
        f"label {detections.class_names[detections.label[i]]!r} is not a class of "
        f"{gt.source} (detclasslist.txt)")
  stripped = np.asarray([_strip_mp4(v) for v in detections.video_names], dtype=str)
  names, name_of = np.unique(stripped, return_inverse=True)
  rank = name_of.reshape(-1)[detections.video]  # the rank of the video's name, sorted
  index = {v: i for i, v in enumerate(gt.video_ids)}
  video = np.asarray([index.get(v, -1) for v in names.tolist()], np.int64)[rank]
  n = len(detections)
  # Rank order: class blocks, each by (-score, video name, input order).
  order = np.lexsort((np.arange(n), rank, -detections.score.astype(np.float64), label))
  p_label, p_video = label[order], video[order]
  start, end = detections.start[order], detections.end[order]
  p_start, p_end = np.minimum(start, end), np.maximum(start, end)
  g_start, g_end = np.minimum(gt.start, gt.end), np.maximum(gt.start, gt.end)
  p_group = np.where(p_video >= 0, p_label * num_videos + p_video, -1)
  pair_p, pair_g = ap_lib.candidate_pairs(p_group, p_start, p_end,
                                          gt.label * num_videos + gt.video, g_start, g_end)
  ov = kit_overlap(p_start[pair_p], p_end[pair_p], g_start[pair_g], g_end[pair_g])
  useful = ov > th.min() if k else np.zeros(ov.shape, bool)
  pair_p, pair_g, ov = pair_p[useful], pair_g[useful], ov[useful]
  # Each instance, in file order, takes its free detection of largest ov (ties:
  # the first in rank order): greedy over edges in (instance, -ov, rank) order.
  edge = np.lexsort((pair_p, -ov, pair_g))
  pair_p, pair_g, ov = pair_p[edge], pair_g[edge], ov[edge]
  t_idx, e_idx = np.nonzero(ov[None, :] > th[:, None])
  matched = ap_lib.greedy_match(t_idx * n + pair_p[e_idx],
                                t_idx * gt.num_instances + pair_g[e_idx],
                                k * n).reshape(k, n)
  touch = _touches_ambiguous(names[rank[order]], p_start, p_end, ground_truth.ambiguous)
  kept = matched | ~touch[None, :]
  offsets = np.concatenate([[0], np.cumsum(np.bincount(p_label, minlength=num_classes))])
  positives = np.bincount(gt.label, minlength=num_classes)
  ap = np.zeros((k, num_classes))
  for c in range(num_classes):
    block = slice(offsets[c], offsets[c + 1])
    ap[:, c] = non_interpolated_ap(matched[:, block], kept[:, block], positives[c])
  return KitAP(ap, np.sum(~kept, axis=1), int(np.sum(video < 0)))


def mean_ap(ap: np.ndarray) -> np.ndarray:
  """[K] the kit's mAP of [K, C] AP: the sum over the C classes in order, / C."""
  return np.cumsum(ap, axis=1)[:, -1] / ap.shape[1]
