"""What a run records and reports: evaluation records, each member's records, mean ±
std over members, the final table, metrics.json and the predictions files.

Every record is a dataclass with one JSON form (`to_json` / `from_json`), the
form the checkpoint's progress record and metrics.json hold, so that a resumed
run reports exactly what an uninterrupted one does. An evaluation record:

    {"step": 300, "tiou_thresholds": [0.1, ..., 0.7], "mAP": [K floats],
     "averages": {"AVG(0.1:0.5)": .., "AVG(0.3:0.7)": .., "AVG(0.1:0.7)": ..},
     "average_ranges": {..}, "average_mAP": .., "accuracy": ..,
     "per_class_AP": {class: [K floats]}, "num_videos": .., "protocol_name": ..,
     "ground_truth_videos": .., "ground_truth_instances": .., "protocol": ".."}

mAP values are fractions in [0, 1]; tables print them in percent. Means ± std over
members are `salx.postprocess.mean_std` (sample std, ddof 1).
"""

from __future__ import annotations

import dataclasses
import json
import os
import tempfile
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple, Union

from salx.postprocess.mean_std import MeanStd, mean_std

SELECTED_ON_TEST = "selected on the test set (authors' protocol)"
SELECTED_ON_HOLDOUT = "selected on held-out training videos"
METRICS_FILE, REPORT_FILE = "metrics.json", "report.txt"


# ----------------------------------------------------------------------------
# Records.


@dataclasses.dataclass(frozen=True)
class EvalRecord:
  """One evaluation of one member on a split.

  Attributes:
    step: the training step evaluated (0: the untrained model).
    tiou_thresholds: [N] tIoU thresholds.
    mAP: [N] mAP per threshold, in [0, 1].
    averages: {'AVG(a:b)': mAP averaged over a tIoU range}.
    average_mAP: the average the run selects on.
    accuracy: classification accuracy (exact multi-hot match), in [0, 1].
    num_videos: videos evaluated.
    average_ranges: {average name: its tIoU range, in words}.
    per_class_AP: {class: [N] AP}; empty in a run's history.
    protocol_name, protocol: the evaluation protocol's name and description.
    ground_truth_videos, ground_truth_instances: the ground truth scored against.
  """
  step: int
  tiou_thresholds: Tuple[float, ...]
  mAP: Tuple[float, ...]
  averages: Dict[str, float]
  average_mAP: float
  accuracy: float
  num_videos: int = 0
  average_ranges: Dict[str, str] = dataclasses.field(default_factory=dict)
  per_class_AP: Dict[str, Tuple[float, ...]] = dataclasses.field(default_factory=dict)
  protocol_name: str = ""
  ground_truth_videos: int = 0
  ground_truth_instances: int = 0
  protocol: str = ""

  @classmethod
  def of_result(cls, result, accuracy: float, step: int, num_videos: int) -> "EvalRecord":
    """The record of a `salx.postprocess.protocols.ProtocolResult`."""
    return cls(
        step=int(step), tiou_thresholds=tuple(float(t) for t in result.tiou_thresholds),
        mAP=tuple(float(v) for v in result.mAP),
        averages={k: float(v) for k, v in result.averages.items()},
        average_mAP=float(result.average_mAP), accuracy=float(accuracy),
        num_videos=int(num_videos), average_ranges=dict(result.average_ranges),
        per_class_AP={c: tuple(float(v) for v in row)
                      for c, row in zip(result.class_names, result.ap)},
        protocol_name=result.protocol, ground_truth_videos=int(result.num_videos),
        ground_truth_instances=int(result.num_instances),
        protocol="; ".join(result.description))

  def to_json(self) -> Dict[str, Any]:
    return {"step": self.step, "tiou_thresholds": list(self.tiou_thresholds),
            "mAP": list(self.mAP), "averages": dict(self.averages),
            "average_ranges": dict(self.average_ranges),
            "average_mAP": self.average_mAP, "accuracy": self.accuracy,
            "per_class_AP": {c: list(v) for c, v in self.per_class_AP.items()},
            "num_videos": self.num_videos, "protocol_name": self.protocol_name,
            "ground_truth_videos": self.ground_truth_videos,
            "ground_truth_instances": self.ground_truth_instances,
            "protocol": self.protocol}

  @classmethod
  def from_json(cls, data: Optional[Mapping[str, Any]]) -> Optional["EvalRecord"]:
    """The record of `to_json`'s dict (None for None); keys of other records
    (e.g. metrics.json's 'selection') are ignored, and the fields the history of
    earlier runs did not keep take their defaults."""
    if data is None:
      return None
    known = {f.name for f in dataclasses.fields(cls)}
    values = {k: v for k, v in data.items() if k in known}
    values["tiou_thresholds"] = tuple(values["tiou_thresholds"])
    values["mAP"] = tuple(values["mAP"])
    values["per_class_AP"] = {c: tuple(v) for c, v in
                              (values.get("per_class_AP") or {}).items()}
    return cls(**values)

  def summary(self) -> "EvalRecord":
    """The record without its per-class AP: what a run's history keeps."""
    return dataclasses.replace(self, per_class_AP={})

  def metrics(self) -> Dict[str, float]:
    """{name: value} of every number a table shows: 'mAP@<t>' per threshold, the
    named averages, 'average_mAP' and 'accuracy'."""
    out = {f"mAP@{t:g}": v for t, v in zip(self.tiou_thresholds, self.mAP)}
    out.update(self.averages)
    out["average_mAP"] = self.average_mAP
    out["accuracy"] = self.accuracy
    return out

  def scalars(self, prefix: str = "test") -> Dict[str, float]:
    """Scalars for a clu metric writer, in percent as the console prints them: mAP
    per tIoU, the averages, accuracy."""
    out = {f"{prefix}/mAP@{t:g}": 100 * v for t, v in zip(self.tiou_thresholds, self.mAP)}
    out.update({f"{prefix}/{name}": 100 * v for name, v in self.averages.items()})
    out[f"{prefix}/accuracy"] = 100 * self.accuracy
    return out

  def beats(self, best: Optional["EvalRecord"]) -> bool:
    """Whether this record beats `best` by average mAP (ties keep the earlier one)."""
    return best is None or self.average_mAP > best.average_mAP


def _records(items) -> List[EvalRecord]:
  return [EvalRecord.from_json(r) for r in items or []]


@dataclasses.dataclass
class MemberRecords:
  """One member's evaluations so far.

  Attributes:
    seed, overrides: the member (`salx.app.config.Member`).
    untrained: the evaluation before training (None: not evaluated).
    last: the latest evaluation.
    best: the evaluation with the highest test average mAP (the authors'
      protocol, which selects on the test set).
    holdout_best: with held-out training videos, the evaluation on them with the
      highest average mAP; `holdout` is the test evaluation of that step.
    history: every evaluation, summarized.
    train_history: the training losses' means, {'step', name: value}, per log.
  """
  seed: int
  overrides: Dict[str, Any]
  untrained: Optional[EvalRecord] = None
  last: Optional[EvalRecord] = None
  best: Optional[EvalRecord] = None
  holdout_best: Optional[EvalRecord] = None
  holdout: Optional[EvalRecord] = None
  history: List[EvalRecord] = dataclasses.field(default_factory=list)
  train_history: List[Dict[str, float]] = dataclasses.field(default_factory=list)

  def record(self, record: EvalRecord, holdout_record: Optional[EvalRecord] = None) -> bool:
    """Adds one evaluation; returns True when it is the member's new best on test."""
    self.last = record
    self.history.append(record.summary())
    if holdout_record is not None and holdout_record.beats(self.holdout_best):
      self.holdout_best, self.holdout = holdout_record.summary(), record.summary()
    if record.beats(self.best):
      self.best = record
      return True
    return False

  def to_json(self) -> Dict[str, Any]:
    out = {"seed": self.seed, "overrides": dict(self.overrides)}
    for key in ("untrained", "last", "best", "holdout_best", "holdout"):
      record = getattr(self, key)
      out[key] = None if record is None else record.to_json()
    out["history"] = [r.to_json() for r in self.history]
    out["train_history"] = [dict(h) for h in self.train_history]
    return out

  @classmethod
  def from_json(cls, data: Mapping[str, Any]) -> "MemberRecords":
    return cls(seed=int(data["seed"]), overrides=dict(data.get("overrides") or {}),
               **{key: EvalRecord.from_json(data.get(key))
                  for key in ("untrained", "last", "best", "holdout_best", "holdout")},
               history=_records(data.get("history")),
               train_history=[dict(h) for h in data.get("train_history") or []])


# ----------------------------------------------------------------------------
# Mean ± std over members.


def summarize(rows: Sequence[Optional[Mapping[str, float]]]) -> Optional[Dict[str, MeanStd]]:
  """{metric: mean ± std} over the rows present (records' `metrics()` or their
  differences); None when there is none."""
  rows = [r for r in rows if r is not None]
  if not rows:
    return None
  return {k: mean_std([r[k] for r in rows]) for k in rows[0]}


def difference(a: EvalRecord, b: EvalRecord) -> Dict[str, float]:
  """a - b of every metric of two records."""
  b_metrics = b.metrics()
  return {k: v - b_metrics[k] for k, v in a.metrics().items()}


# ----------------------------------------------------------------------------
# Tables.

# A table row's values: a record (its step is shown), metric values (a mean, a
# std or a difference), mean ± std per metric, or None (not evaluated).
Row = Union[EvalRecord, Mapping[str, float], Mapping[str, MeanStd], None]


def _columns(reference: EvalRecord, per_tiou: bool) -> List[Tuple[str, str]]:
  """(metric key, header) of a table's value columns."""
  columns = ([(f"mAP@{t:g}", f"{t:g}") for t in reference.tiou_thresholds]
             if per_tiou else [])
  return columns + [(name, name) for name in reference.averages] + [("accuracy", "acc")]


def _cells(row: Row, columns: Sequence[Tuple[str, str]]) -> List[str]:
  """The step and the value cells of one row."""
  if row is None:
    return ["-"] * (len(columns) + 1)
  if isinstance(row, EvalRecord):
    values = row.metrics()
    return [str(row.step)] + [f"{100 * values[k]:.2f}" for k, _ in columns]
  return ["-"] + [row[k].text() if isinstance(row[k], MeanStd) else f"{100 * row[k]:.2f}"
                  for k, _ in columns]


def format_table(rows: Sequence[Tuple[str, Row]], title: str = "", footnote: str = "",
                 per_tiou: bool = True) -> str:
  """A table of mAP (%) per tIoU (with `per_tiou`), its averages and classification
  accuracy (%), one line per (label, row); at least one row is a record."""
  reference = next(r for _, r in rows if isinstance(r, EvalRecord))
  columns = _columns(reference, per_tiou)
  header = ["model", "step"] + [h for _, h in columns]
  lines = [[label] + _cells(row, columns) for label, row in rows]
  caption = (f"mAP (%) per tIoU, its averages, and classification accuracy (%); "
             f"{reference.num_videos} test videos" if per_tiou else
             f"average mAP (%) over the tIoU ranges, classification accuracy (%); "
             f"{reference.num_videos} test videos; per tIoU in report.txt")
  widths = [max(len(line[i]) for line in [header] + lines) for i in range(len(header))]

  def render(cells):
    return "  ".join([cells[0].ljust(widths[0])]
                     + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])])

  out = ([title] if title else []) + [caption, render(header), "-" * len(render(header))]
  out += [render(line) for line in lines]
  if footnote:
    out.append(footnote)
  return "\n".join(out)


def protocol_lines(record: Optional[EvalRecord]) -> str:
  """The lines under a table naming the protocol and the averages' tIoU ranges."""
  if record is None:
    return ""
  tail = f"\nevaluation: {record.protocol}" if record.protocol else ""
  if record.average_ranges:
    tail += "\naverages over tIoU: " + "; ".join(
        f"{name} = {span}" for name, span in record.average_ranges.items())
  return tail


ROWS = (("untrained", "untrained"), ("last", "last step"),
        ("best", "best (selected on test)*"), ("holdout", "holdout-selected**"))


@dataclasses.dataclass(frozen=True)
class FinalReport:
  """The end of a run: `table` (the console's: per member and mean ± std of the
  averages with several members), `detailed` (per tIoU, for report.txt) and
  `metrics` (metrics.json: member 0's untrained / last / best / history at the
  top, every member under 'members', and 'summary': {row: {metric: {mean, std,
  n}}})."""
  table: str
  detailed: str
  metrics: Dict[str, Any]


def final_report(members: Sequence[MemberRecords], *, title: str, eval_every: int,
                 eval_start_step: int, holdout_fraction: float = 0.0) -> FinalReport:
  """The final tables and metrics.json of a run's members' records.

  One member: its untrained, last, best (and holdout-selected) rows and best - last.
  Several: those rows per member, then each row's mean and sample std over the
  members (n), and best - last the same way.
  """
  kinds = [(key, label) for key, label in ROWS if key != "holdout" or holdout_fraction > 0]
  diffs = [difference(m.best, m.last) for m in members
           if m.best is not None and m.last is not None]
  several = len(members) > 1
  detailed_rows, compact_rows = [], []
  for key, label in kinds:
    if not several:
      detailed_rows.append((label, getattr(members[0], key)))
      continue
    per_member = [(f"{label} m{i} seed {m.seed}", getattr(m, key))
                  for i, m in enumerate(members)]
    stats = summarize([None if r is None else r.metrics() for _, r in per_member])
    detailed_rows += per_member
    compact_rows += per_member
    if stats:
      n = next(iter(stats.values())).n
      detailed_rows += [(f"{label}: mean", {k: s.mean for k, s in stats.items()}),
                        (f"{label}: std (n={n})", {k: s.std for k, s in stats.items()})]
      compact_rows.append((f"{label}: mean ± std (n={n})", stats))
  if diffs:
    stats = summarize(diffs)
    detailed_rows.append(("best - last" + (": mean" if several else ""),
                          {k: s.mean for k, s in stats.items()}))
    if several:
      detailed_rows.append((f"best - last: std (n={len(diffs)})",
                            {k: s.std for k, s in stats.items()}))
      compact_rows.append((f"best - last: mean ± std (n={len(diffs)})", stats))
  footnote = (f"* {SELECTED_ON_TEST}: the test split evaluated every {eval_every} "
              f"steps from step {eval_start_step} and the best average mAP kept. "
              "This selects on the test set; quote the last step for a result "
              "without test-set selection.")
  if holdout_fraction > 0:
    footnote += (f"\n** {SELECTED_ON_HOLDOUT}: the step with the best average mAP on "
                 f"{100 * holdout_fraction:g}% of the training videos held out of "
                 "training, scored on the test set.")
  first = members[0]
  tail = protocol_lines(first.last or first.best or first.untrained)
  detailed = format_table(detailed_rows, title=title, footnote=footnote) + tail
  table = (format_table(compact_rows, title=title, footnote=footnote, per_tiou=False)
           + tail if several else detailed)

  def summary_json(rows):
    stats = summarize(rows)
    return None if stats is None else {k: s.to_json() for k, s in stats.items()}

  summary = {key: summary_json([None if getattr(m, key) is None else getattr(m, key).metrics()
                                for m in members]) for key, _ in kinds}
  summary["best_minus_last"] = summary_json(diffs)
  member_json = [m.to_json() for m in members]
  metrics = {
      "untrained": member_json[0]["untrained"],
      "last": member_json[0]["last"],
      "best": None if first.best is None else dict(member_json[0]["best"],
                                                   selection=SELECTED_ON_TEST),
      "history": member_json[0]["history"],
      "train_history": member_json[0]["train_history"],
      "members": [{k: m[k] for k in ("seed", "overrides", "untrained", "last", "best",
                                    "holdout", "history", "train_history")}
                  for m in member_json],
      "summary": summary,
  }
  return FinalReport(table, detailed, metrics)


# ----------------------------------------------------------------------------
# Files.


def write_json(path: str, data: Any) -> None:
  """Writes `data` as JSON to `path` atomically (a crash leaves the old file)."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fd, tmp = tempfile.mkstemp(prefix=f".{os.path.basename(path)}.", dir=folder)
  try:
    with os.fdopen(fd, "w", encoding="utf-8") as f:
      json.dump(data, f, indent=1)
    os.chmod(tmp, 0o644)   # mkstemp makes 0600; reports are for everyone to read.
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise


def predictions_name(which: str, m: int, num_members: int) -> str:
  """<which>, or <which>_member<m> with several members (predictions_<name>.json)."""
  return which if num_members == 1 else f"{which}_member{m}"


def write_predictions(workdir: str, which: str, step: int, detections) -> None:
  """workdir/predictions_<which>.json: `detections` as ActivityNet detection JSON."""
  write_json(os.path.join(workdir, f"predictions_{which}.json"),
             detections.to_json(details=f"salx step {step}"))
