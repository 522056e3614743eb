"""Evaluation protocols: every THUMOS14 number names the protocol that made it.

A protocol is data: the ground truth it reads and which videos it tests, how
detections are matched and AP computed, its tIoU thresholds as literal values,
and the averages it reports with their ranges. Three are registered:

  activitynet        ActivityNet-style (SAL's authors, salx's default): gt.json
                     (210 test videos), score-ordered greedy matching, tIoU >=
                     threshold, VOC all-point interpolated AP, no Ambiguous.
  thumos14_official  the official THUMOS'14 kit (TH14evalDet.m, 2015): the per-class
                     files (213 videos, 3358 instances), ground-truth-centric greedy
                     matching, ov > threshold, detections touching Ambiguous dropped,
                     non-interpolated AP, reversed segments flipped, score ties by
                     video name, the mean over the 20 classes.
  wtalc              W-TALC's evaluator (CO2-Net, DELU; SPEC-CO2NET-DELU 6): the
                     W-TALC annotations (212 videos), boundaries rounded to snippets,
                     ActivityNet-style matching and AP on snippets, exact numpy tie
                     order; the Ambiguous filter acts on the predictions before it.

    protocol = get_protocol("thumos14_official")
    result = evaluate(protocol, ground_truth, detections)   # -> ProtocolResult

`evaluate` goes through `salx.postprocess.ap` where the rules agree (candidate
pairs, greedy matching, interpolated AP) and through `thumos14_kit` /
`wtalc_eval` where they differ. Ground truth: `ground_truth.load_ground_truth`
(gt.json), `thumos14_kit.load_official_ground_truth` (the per-class folder),
`salx.datasets.protocol_ground_truth` (the W-TALC annotations; also dispatches).
"""

from __future__ import annotations

import dataclasses
import os
from typing import Dict, Optional, Sequence, Tuple, Union

import numpy as np

from salx.postprocess import ap as ap_lib
from salx.postprocess import thumos14_kit
from salx.postprocess import wtalc_eval
from salx.postprocess.detections import Detections
from salx.postprocess.ground_truth import AmbiguousSegments, GroundTruth

_THUMOS_TIOU = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


@dataclasses.dataclass(frozen=True)
class Average:
  """A reported mean of mAP over literal thresholds.

  Attributes:
    name: as papers print it, e.g. 'AVG(0.1:0.7)'.
    thresholds: the thresholds averaged, literal (0.1, 0.2, ..., 0.7).
  """
  name: str
  thresholds: Tuple[float, ...]

  @property
  def range(self) -> str:
    """'lo:step:hi' (or the comma list when the steps differ)."""
    th = self.thresholds
    steps = {round(b - a, 10) for a, b in zip(th, th[1:])}
    if len(th) > 2 and len(steps) == 1:
      return f"{th[0]:g}:{steps.pop():g}:{th[-1]:g}"
    return ",".join(f"{t:g}" for t in th)


def _average(lo: float, step: float, hi: float) -> Average:
  count = int(round((hi - lo) / step)) + 1
  return Average(f"AVG({lo:g}:{hi:g})", tuple(round(lo + i * step, 10) for i in range(count)))


@dataclasses.dataclass(frozen=True)
class Protocol:
  """An evaluation protocol, as data.

  Attributes:
    name: registry name.
    title: who uses it, in a few words.
    ground_truth: the format it reads.
    test_set: which videos and instances it evaluates.
    units: 'seconds', or 'snippets' (x * 25 / 16; ground truth rounded half to even).
    matching: 'prediction_greedy' (each prediction in score order takes its best
      free ground truth) or 'ground_truth_greedy' (each instance in file order takes
      its best free detection).
    tiou_rule: '>=' or '>' (a match needs tIoU rule threshold).
    overlap: how tIoU is computed.
    ambiguous: what happens to detections on Ambiguous segments.
    ap_rule: 'interpolated' (VOC all-point) or 'non_interpolated'.
    score_ties: how equal scores are ordered.
    unknown_labels: 'error' or 'ignore' (a label that is not a class).
    reversed_segments: 'error' or 'flip'.
    class_mean: the classes mAP averages over.
    tiou_thresholds: literal thresholds reported by default.
    averages: the means of mAP it reports.
  """
  name: str
  title: str
  ground_truth: str
  test_set: str
  units: str
  matching: str
  tiou_rule: str
  overlap: str
  ambiguous: str
  ap_rule: str
  score_ties: str
  unknown_labels: str
  reversed_segments: str
  class_mean: str
  tiou_thresholds: Tuple[float, ...]
  averages: Tuple[Average, ...]

  def rules(self) -> str:
    """One line: the rules that tell this protocol from the others."""
    return (f"{self.units}; {self.matching.replace('_', ' ')} matching, tIoU "
            f"{self.tiou_rule} threshold; {self.ap_rule.replace('_', '-')} AP; "
            f"Ambiguous: {self.ambiguous}; score ties: {self.score_ties}; "
            f"mean over {self.class_mean}")


ACTIVITYNET = Protocol(
    name="activitynet",
    title="ActivityNet-style (SAL / BaS-Net / UM authors; salx's default)",
    ground_truth="ActivityNet JSON gt.json {'database': {video: {subset, annotations}}}",
    test_set="the videos of the subset in gt.json (THUMOS14: 210 test videos, 3311 "
             "instances; 0000270, 0001496 and 0001292 left out)",
    units="seconds",
    matching="prediction_greedy",
    tiou_rule=">=",
    overlap="intersection / (length + length - intersection); reversed: error",
    ambiguous="not used (optionally dropped before, --ambiguous)",
    ap_rule="interpolated",
    score_ties="numpy argsort()[::-1] per class",
    unknown_labels="error",
    reversed_segments="error",
    class_mean="the ground truth's classes",
    tiou_thresholds=_THUMOS_TIOU,
    averages=(_average(0.1, 0.1, 0.5), _average(0.3, 0.1, 0.7), _average(0.1, 0.1, 0.7),
              _average(0.5, 0.05, 0.95)))

THUMOS14_OFFICIAL = Protocol(
    name="thumos14_official",
    title="the official THUMOS'14 kit (TH14evalDet.m, 2015)",
    ground_truth="the official per-class folder: detclasslist.txt, <Class>_test.txt, "
                 "Ambiguous_test.txt",
    test_set="every video of the per-class files (213 test videos, 3358 instances, "
             "99 Ambiguous)",
    units="seconds",
    matching="ground_truth_greedy",
    tiou_rule=">",
    overlap="both flipped to [min, max]; intersection / span, 0 unless intersection > 0",
    ambiguous="an unmatched detection touching one (any positive overlap) is dropped",
    ap_rule="non_interpolated",
    score_ties="by video name, then input order",
    unknown_labels="error",
    reversed_segments="flip",
    class_mean="the 20 classes of detclasslist.txt",
    tiou_thresholds=_THUMOS_TIOU,
    averages=(_average(0.1, 0.1, 0.5), _average(0.3, 0.1, 0.7), _average(0.1, 0.1, 0.7),
              _average(0.5, 0.05, 0.95)))

WTALC = Protocol(
    name="wtalc",
    title="W-TALC's evaluator (CO2-Net, DELU)",
    ground_truth="the W-TALC annotations (<Prefix>-Annotations/*.npy: videoname, "
                 "subset, segments, labels, classlist)",
    test_set="the test videos with a segment (212 videos, 3358 instances; 0000270 "
             "and 0001496 kept, 0001292 left out)",
    units="snippets",
    matching="prediction_greedy",
    tiou_rule=">=",
    overlap="on snippets (ground truth round(x * 25 / 16) half to even), continuous "
            "lengths",
    ambiguous="filtered from the predictions before (CO2-Net, DELU pipelines)",
    ap_rule="interpolated",
    score_ties="numpy argsort()[::-1] per class, and per prediction over its ground truth",
    unknown_labels="ignore",
    reversed_segments="error",
    class_mean="all the classes of classlist.npy",
    tiou_thresholds=(0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9),
    averages=(_average(0.1, 0.1, 0.5), _average(0.1, 0.1, 0.7), _average(0.1, 0.1, 0.9)))

PROTOCOLS: Dict[str, Protocol] = {p.name: p for p in (ACTIVITYNET, THUMOS14_OFFICIAL, WTALC)}


def get_protocol(name: Union[str, Protocol]) -> Protocol:
  """The registered protocol `name` (a Protocol is returned as is)."""
  if isinstance(name, Protocol):
    return name
  if name not in PROTOCOLS:
    raise ValueError(f"unknown evaluation protocol {name!r}; expected one of "
                     f"{', '.join(sorted(PROTOCOLS))}")
  return PROTOCOLS[name]


# ---------------------------------------------------------------------------
# Results.


@dataclasses.dataclass(frozen=True)
class ProtocolResult:
  """AP under one protocol.

  Attributes:
    protocol: the protocol's name.
    description: lines naming the protocol, ground truth, thresholds, predictions.
    tiou_thresholds: the K thresholds.
    class_names: the C classes mAP averages over.
    ap: [C, K] per-class AP.
    mAP: [K].
    averages: name -> mean of mAP over its thresholds (those lying on the K).
    average_ranges: name -> 'lo:step:hi'.
    num_videos, num_instances: of the ground truth's test set.
    num_predictions: detections given.
    num_outside: of those, on videos outside the ground truth.
    num_ignored: of those, ignored (a label that is not a class).
    num_dropped_ambiguous: [K] or None: dropped as Ambiguous at each threshold.
  """
  protocol: str
  description: Tuple[str, ...]
  tiou_thresholds: Tuple[float, ...]
  class_names: Tuple[str, ...]
  ap: np.ndarray
  mAP: np.ndarray
  averages: Dict[str, float]
  average_ranges: Dict[str, str]
  num_videos: int
  num_instances: int
  num_predictions: int
  num_outside: int
  num_ignored: int = 0
  num_dropped_ambiguous: Optional[Tuple[int, ...]] = None

  @property
  def per_class_ap(self) -> Dict[str, np.ndarray]:
    return {c: self.ap[i] for i, c in enumerate(self.class_names)}

  @property
  def average_mAP(self) -> float:
    return float(np.mean(self.mAP))

  def to_json(self) -> dict:
    return {
        "protocol": self.protocol,
        "description": list(self.description),
        "num_videos": self.num_videos,
        "num_instances": self.num_instances,
        "tiou_thresholds": list(self.tiou_thresholds),
        "mAP": self.mAP.tolist(),
        "average_mAP": self.average_mAP,
        "averages": dict(self.averages),
        "average_ranges": dict(self.average_ranges),
        "per_class_AP": {c: self.ap[i].tolist() for i, c in enumerate(self.class_names)},
        "num_predictions": self.num_predictions,
        "num_outside_ground_truth": self.num_outside,
        "num_ignored": self.num_ignored,
        "num_dropped_ambiguous": (None if self.num_dropped_ambiguous is None
                                  else list(self.num_dropped_ambiguous)),
    }


def averages(protocol: Protocol, tiou_thresholds: Sequence[float],
             mean_ap: np.ndarray) -> Tuple[Dict[str, float], Dict[str, str]]:
  """(name -> mean, name -> range) of the protocol's averages lying on the
  thresholds, and of the full range."""
  th = np.asarray(tiou_thresholds, np.float64)
  values, ranges = {}, {}
  for average in protocol.averages:
    where = [np.flatnonzero(np.abs(th - t) < 1e-9) for t in average.thresholds]
    if all(w.size for w in where):
      values[average.name] = float(np.mean(mean_ap[[int(w[0]) for w in where]]))
      ranges[average.name] = average.range
  full = Average(f"AVG({th.min():g}:{th.max():g})", tuple(th.tolist()))
  if th.size > 1 and full.name not in values:
    values[full.name] = float(np.mean(mean_ap))
    ranges[full.name] = full.range
  return values, ranges


def _counts(gt: GroundTruth, detections: Detections) -> Tuple[int, int]:
  """(number of detections on videos outside `gt`, labels outside its classes)."""
  videos, classes = set(gt.video_ids), set(gt.class_names)
  outside = np.asarray([v not in videos for v in detections.video_names], bool)
  unknown = np.asarray([c not in classes for c in detections.class_names], bool)
  return (int(outside[detections.video].sum()) if outside.size else 0,
          int(unknown[detections.label].sum()) if unknown.size else 0)


def evaluate(protocol: Union[str, Protocol],
             ground_truth: Union[GroundTruth, thumos14_kit.OfficialGroundTruth],
             detections: Detections,
             tiou_thresholds: Optional[Sequence[float]] = None,
             ambiguous: Optional[AmbiguousSegments] = None) -> ProtocolResult:
  """Per-class AP, mAP and the protocol's averages.

  Args:
    protocol: a name of `PROTOCOLS` or a Protocol.
    ground_truth: in seconds; `OfficialGroundTruth` for thumos14_official (a
      plain GroundTruth there has no Ambiguous segments); for the others a
      GroundTruth (of an OfficialGroundTruth, its instances are used).
    detections: in seconds (`Detections.from_json`; for thumos14_official
      `thumos14_kit.read_detections_json` or `read_kit_text` keep reversed ones).
    tiou_thresholds: literal values; default: the protocol's.
    ambiguous: activitynet only: drop the detections overlapping these first.
  Raises:
    EvalInputError: a detection label the protocol rejects.
    ValueError: thresholds outside (0, 1], `ambiguous` given to another protocol.
  """
  protocol = get_protocol(protocol)
  th = tuple(float(t) for t in (protocol.tiou_thresholds if tiou_thresholds is None
                                else tiou_thresholds))
  if not th or any(not 0 < t <= 1 for t in th):
    raise ValueError(f"tIoU thresholds must lie in (0, 1], got {list(th)}")
  if ambiguous is not None and protocol.name != ACTIVITYNET.name:
    raise ValueError(f"protocol {protocol.name}: Ambiguous segments come with its ground "
                     "truth or its pipeline, not as an option")
  official = isinstance(ground_truth, thumos14_kit.OfficialGroundTruth)
  gt = ground_truth.instances if official else ground_truth
  lines = [f"protocol {protocol.name}: {protocol.title}", protocol.rules()]
  dropped = None
  ignored = 0
  if protocol.matching == "ground_truth_greedy":
    kit = thumos14_kit.average_precision(ground_truth, detections, th)
    ap, mean_ap = kit.ap, thumos14_kit.mean_ap(kit.ap)
    outside, dropped = kit.num_outside, tuple(int(d) for d in kit.num_dropped)
    truth = ground_truth.describe() if official else gt.describe() + " (no Ambiguous)"
    lines.append(f"{truth}; tIoU {', '.join(f'{t:g}' for t in th)}")
    lines.append(f"predictions {os.path.basename(detections.source)}: {len(detections)} "
                 f"({outside} on videos outside the ground truth, false positives; "
                 f"dropped as Ambiguous per tIoU: {', '.join(map(str, dropped))})")
  elif protocol.units == "snippets":
    ap = wtalc_eval.average_precision(gt, detections, th)
    mean_ap = ap.mean(axis=1)
    outside, ignored = _counts(gt, detections)
    lines.append(f"{gt.describe()}; tIoU {', '.join(f'{t:g}' for t in th)}")
    lines.append(f"predictions {os.path.basename(detections.source)}: {len(detections)} "
                 f"({outside} on videos outside the ground truth, false positives; "
                 f"{ignored} with a label that is not a class, ignored)")
  else:
    result = ap_lib.evaluate_detections(gt, detections, th, ambiguous)
    ap, mean_ap, outside = result.ap.T, result.mAP, result.num_outside
    lines.append(result.protocol)
  values, ranges = averages(protocol, th, mean_ap)
  return ProtocolResult(
      protocol=protocol.name, description=tuple(lines), tiou_thresholds=th,
      class_names=gt.class_names, ap=np.ascontiguousarray(np.asarray(ap).T),
      mAP=np.asarray(mean_ap), averages=values, average_ranges=ranges,
      num_videos=len(gt.video_ids), num_instances=gt.num_instances,
      num_predictions=len(detections), num_outside=outside, num_ignored=ignored,
      num_dropped_ambiguous=dropped)


def format_table(result: ProtocolResult, per_class: bool = True) -> str:
  """A readable table: the protocol, test set, mAP per tIoU, the averages with their
  ranges, per-class AP (%)."""
  th = result.tiou_thresholds
  name_w = max([len("mAP")] + [len(c) for c in result.class_names]) + 2
  col = max(7, max(len(f"{t:g}") for t in th) + 2)
  lines = list(result.description)
  lines.append(f"test set: {result.num_videos} videos, {result.num_instances} instances")
  lines.append("")
  header = "tIoU".ljust(name_w) + "".join(f"{t:g}".rjust(col) for t in th)
  lines += [header, "-" * len(header)]
  lines.append("mAP".ljust(name_w) + "".join(f"{100 * v:.2f}".rjust(col) for v in result.mAP))
  lines.append("")
  lines.append("  ".join(f"{name} [tIoU {result.average_ranges[name]}] {100 * v:.2f}"
                         for name, v in result.averages.items()))
  if per_class:
    lines += ["", "per-class AP (%)", header, "-" * len(header)]
    for c, row in zip(result.class_names, result.ap):
      lines.append(c.ljust(name_w) + "".join(f"{100 * v:.2f}".rjust(col) for v in row))
  return "\n".join(lines)
