"""What a run reports: evaluation records, the final table, metrics.json, scalars.

An evaluation record is the JSON-ready dict of one test evaluation (it travels in
the checkpoint's progress record, so a resumed run reports exactly what an
uninterrupted one does):

    {"step": 300, "tiou_thresholds": [0.1, ..., 0.7], "mAP": [K floats],
     "averages": {"AVG(0.1:0.5)": .., "AVG(0.3:0.7)": .., "AVG(0.1:0.7)": ..},
     "average_mAP": .., "accuracy": .., "per_class_AP": {class: [K floats]},
     "num_videos": .., "protocol": "ActivityNet detection protocol; ground truth .."}

mAP values are fractions in [0, 1]; tables print them in percent.
"""

from __future__ import annotations

import json
import os
import tempfile
from typing import Any, Dict, List, Optional, Sequence, Tuple

import numpy as np

SELECTED_ON_TEST = "selected on the test set (authors' protocol)"
SELECTED_ON_HOLDOUT = "selected on held-out training videos"

Record = Dict[str, Any]


def evaluation_record(result, accuracy: float, step: int, num_videos: int) -> Record:
  """The record of one evaluation.

  Args:
    result: a `salx.postprocess.protocols.ProtocolResult`.
    accuracy: classification accuracy (exact multi-hot match), in [0, 1].
    step: the training step evaluated (0: the untrained model).
    num_videos: test videos evaluated.
  """
  return {
      "step": int(step),
      "tiou_thresholds": [float(t) for t in result.tiou_thresholds],
      "mAP": [float(v) for v in result.mAP],
      "averages": {k: float(v) for k, v in result.averages.items()},
      "average_ranges": dict(result.average_ranges),
      "average_mAP": float(result.average_mAP),
      "accuracy": float(accuracy),
      "per_class_AP": {c: [float(v) for v in row]
                       for c, row in zip(result.class_names, result.ap)},
      "num_videos": int(num_videos),
      "protocol_name": result.protocol,
      "ground_truth_videos": int(result.num_videos),
      "ground_truth_instances": int(result.num_instances),
      "protocol": "; ".join(result.description),
  }


def summary(record: Record) -> Record:
  """The short form of a record kept in the run's history (no per-class AP)."""
  return {"step": record["step"], "average_mAP": record["average_mAP"],
          "averages": dict(record["averages"]), "accuracy": record["accuracy"],
          "mAP": list(record["mAP"]), "tiou_thresholds": list(record["tiou_thresholds"])}


def scalars(record: Record, prefix: str = "test") -> Dict[str, float]:
  """Scalars for a clu metric writer, in percent as the console prints them: mAP
  per tIoU, the averages, accuracy."""
  out = {f"{prefix}/mAP@{t:g}": 100 * v
         for t, v in zip(record["tiou_thresholds"], record["mAP"])}
  out.update({f"{prefix}/{name}": 100 * v for name, v in record["averages"].items()})
  out[f"{prefix}/accuracy"] = 100 * record["accuracy"]
  return out


def is_better(record: Record, best: Optional[Record]) -> bool:
  """Whether `record` beats `best` by average mAP (ties keep the earlier one)."""
  return best is None or record["average_mAP"] > best["average_mAP"]


def _cells(record: Optional[Record], num_thresholds: int, num_averages: int):
  if record is None:
    return ["-"] * (num_thresholds + num_averages + 1)
  return ([f"{100 * v:.2f}" for v in record["mAP"]]
          + [f"{100 * v:.2f}" for v in record["averages"].values()]
          + [f"{100 * record['accuracy']:.2f}"])


def format_table(rows: Sequence[Tuple[str, Optional[Record]]],
                 title: str = "", footnote: str = "") -> str:
  """A table of mAP (%) per tIoU, its averages and classification accuracy (%).

  Args:
    rows: (label, record or None) per line; records share their thresholds.
    title: a first line.
    footnote: a last line.
  """
  reference = next(r for _, r in rows if r is not None)
  thresholds, averages = reference["tiou_thresholds"], list(reference["averages"])
  header = (["model", "step"] + [f"{t:g}" for t in thresholds] + averages
            + ["acc"])
  lines = [[label, "-" if r is None else str(r["step"])]
           + _cells(r, len(thresholds), len(averages)) for label, r in rows]
  return _aligned(header, lines, title, footnote,
                  f"mAP (%) per tIoU, its averages, and classification accuracy (%); "
                  f"{reference['num_videos']} test videos")


def _aligned(header: List[str], lines: List[List[str]], title: str, footnote: str,
             caption: str) -> str:
  """Title, caption, header and rows in aligned columns (the first left-aligned)."""
  widths = [max(len(line[i]) for line in [header] + lines) for i in range(len(header))]

  def render(cells):
    return "  ".join([cells[0].ljust(widths[0])]
                     + [c.rjust(w) for c, w in zip(cells[1:], widths[1:])])

  out = ([title] if title else []) + [caption, render(header), "-" * len(render(header))]
  out += [render(line) for line in lines]
  if footnote:
    out.append(footnote)
  return "\n".join(out)


def format_compact_table(rows: Sequence[Tuple[str, Any]], title: str = "",
                         footnote: str = "") -> str:
  """The members' table at a glance: the named averages and accuracy (%) only; a
  row is (label, record) or (label, (mean record, std record)) for 'mean ± std'."""
  reference = next(r if isinstance(r, dict) else r[0] for _, r in rows if r is not None)
  averages = list(reference["averages"])
  header = ["model", "step"] + averages + ["acc"]

  def cells(row):
    if row is None:
      return ["-"] * (len(averages) + 2)
    if isinstance(row, dict):
      return ([str(row["step"])] + [f"{100 * row['averages'][k]:.2f}" for k in averages]
              + [f"{100 * row['accuracy']:.2f}"])
    mean, std = row
    return (["-"] + [f"{100 * mean['averages'][k]:.2f} ± {100 * std['averages'][k]:.2f}"
                     for k in averages]
            + [f"{100 * mean['accuracy']:.2f} ± {100 * std['accuracy']:.2f}"])

  lines = [[label] + cells(row) for label, row in rows]
  return _aligned(header, lines, title, footnote,
                  f"average mAP (%) over the tIoU ranges, classification accuracy (%); "
                  f"{reference['num_videos']} test videos; per tIoU in report.txt")


def _statistic(records: Sequence[Record], fn) -> Record:
  """A record-like row of `fn` (mean, std) over members' records, for the table."""
  ref = records[0]
  return {"step": "-", "tiou_thresholds": ref["tiou_thresholds"],
          "num_videos": ref.get("num_videos", 0),
          "mAP": [fn([r["mAP"][i] for r in records]) for i in range(len(ref["mAP"]))],
          "averages": {k: fn([r["averages"][k] for r in records])
                       for k in ref["averages"]},
          "accuracy": fn([r["accuracy"] for r in records])}


def _difference(a: Record, b: Record) -> Record:
  """a - b of two records' mAPs, averages and accuracy."""
  return {"step": "-", "tiou_thresholds": a["tiou_thresholds"],
          "mAP": [x - y for x, y in zip(a["mAP"], b["mAP"])],
          "averages": {k: a["averages"][k] - b["averages"][k] for k in a["averages"]},
          "average_mAP": a["average_mAP"] - b["average_mAP"],
          "accuracy": a["accuracy"] - b["accuracy"]}


def _mean(values):
  return float(sum(values) / len(values))


def _std(values):
  return float(np.std(values, ddof=1)) if len(values) > 1 else 0.0


ROWS = (("untrained", "untrained"), ("last", "last step"),
        ("best", "best (selected on test)*"), ("holdout", "holdout-selected**"))


def final_report(progress: Record, *, title: str, eval_every: int,
                 eval_start_step: int, holdout_fraction: float = 0.0
                 ) -> Tuple[str, Record]:
  """The final table and the content of metrics.json from a run's progress record.

  One member: its untrained, last, best (and holdout-selected) rows and best - last.
  Several: those rows per member, then each row's mean and sample std over the
  members (n), and best - last the same way.

  Args:
    progress: the run's progress record (`salx.app.progress`).
    title: the table's first line (dataset, model).
    eval_every, eval_start_step: the evaluation schedule, to describe the selection.
    holdout_fraction: the held-out part of the training videos (0: none).

  Returns:
    (the console's table: per member and mean ± std of the averages with several
    members; metrics dict: member 0's untrained / last / best / history at the top,
    every member under 'members', and 'summary': {row: {metric: {mean, std, n}}};
    the full table per tIoU, for report.txt).
  """
  from salx.app import members as members_lib  # pylint: disable=g-import-not-at-top
  members = progress["members"]
  kinds = [(key, label) for key, label in ROWS
           if key != "holdout" or holdout_fraction > 0]
  diffs = [_difference(m["best"], m["last"]) for m in members
           if m["best"] is not None and m["last"] is not None]
  rows = []
  for key, label in kinds:
    records = [m[key] for m in members if m[key] is not None]
    if len(members) == 1:
      rows.append((label, members[0][key]))
      continue
    rows += [(f"{label} m{i} seed {m['seed']}", m[key]) for i, m in enumerate(members)]
    if records:
      rows += [(f"{label}: mean", _statistic(records, _mean)),
               (f"{label}: std (n={len(records)})", _statistic(records, _std))]
  if diffs:
    rows.append(("best - last" + (": mean" if len(members) > 1 else ""),
                 _statistic(diffs, _mean)))
    if len(members) > 1:
      rows.append((f"best - last: std (n={len(diffs)})", _statistic(diffs, _std)))
  footnote = (f"* {SELECTED_ON_TEST}: the test split evaluated every {eval_every} "
              f"steps from step {eval_start_step} and the best average mAP kept. "
              "This selects on the test set; quote the last step for a result "
              "without test-set selection.")
  if holdout_fraction > 0:
    footnote += (f"\n** {SELECTED_ON_HOLDOUT}: the step with the best average mAP on "
                 f"{100 * holdout_fraction:g}% of the training videos held out of "
                 "training, scored on the test set.")
  first = members[0]
  reference = first["last"] or first["best"] or first["untrained"] or {}
  table = format_table(rows, title=title, footnote=footnote)
  if len(members) > 1:   # At a glance on the console; per tIoU in report.txt.
    compact = []
    for key, label in kinds:
      records = [m[key] for m in members if m[key] is not None]
      compact += [(f"{label} m{i} seed {m['seed']}", m[key]) for i, m in enumerate(members)]
      if records:
        compact.append((f"{label}: mean ± std (n={len(records)})",
                        (_statistic(records, _mean), _statistic(records, _std))))
    if diffs:
      compact.append((f"best - last: mean ± std (n={len(diffs)})",
                      (_statistic(diffs, _mean), _statistic(diffs, _std))))
    table = format_compact_table(compact, title=title, footnote=footnote)
  tail = ""
  if reference.get("protocol"):
    tail += f"\nevaluation: {reference['protocol']}"
  if reference.get("average_ranges"):
    tail += "\naverages over tIoU: " + "; ".join(
        f"{name} = {span}" for name, span in reference["average_ranges"].items())
  table += tail
  detailed = format_table(rows, title=title, footnote=footnote) + tail
  summary = {key: members_lib.summary_of([m[key] for m in members])
             for key, _ in kinds}
  summary["best_minus_last"] = members_lib.summary_of(diffs) if diffs else None
  metrics = {
      "untrained": first["untrained"],
      "last": first["last"],
      "best": None if first["best"] is None else dict(first["best"],
                                                      selection=SELECTED_ON_TEST),
      "history": first["history"],
      "train_history": first["train_history"],
      "members": [{k: m[k] for k in ("seed", "overrides", "untrained", "last", "best",
                                    "holdout", "history", "train_history")}
                  for m in members],
      "summary": summary,
  }
  return table, metrics, detailed


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


def run_title(config, source, method, hp) -> str:
  """The report's first line: the method, the model size and the data."""
  return (f"{method.describe(hp)}, batch {config.batch_size} on {config.dataset} at "
          f"{source.data_dir}")


def write_predictions(workdir: str, which: str, step: int, detections) -> None:
  """workdir/predictions_<which>.json: `detections` as ActivityNet detection JSON."""
  write_json(os.path.join(workdir, f"predictions_{which}.json"),
             detections.to_json(details=f"salx step {step}"))
