"""A run's progress record: every member's evaluations so far and its selected steps.

The record travels in every checkpoint (JSON), so a resumed run reports exactly
what an uninterrupted one does:

    {"config": {...}, "members": [{"seed", "overrides", "untrained", "last", "best",
      "holdout_best", "holdout", "history": [summaries], "train_history": [means]}]}

`best` is the evaluation with the highest test average mAP (the authors' protocol,
which selects on the test set); with a held-out part of the training videos,
`holdout_best` is the evaluation on it with the highest average mAP, and `holdout`
the test summary at that step.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional, Sequence

from salx.app import report

Record = Dict[str, Any]


def new_progress(config_dict: Dict[str, Any], members: Sequence[Any]) -> Record:
  return {"config": config_dict, "members": [
      {"seed": m.seed, "overrides": dict(m.overrides), "untrained": None, "last": None,
       "best": None, "holdout_best": None, "holdout": None, "history": [],
       "train_history": []} for m in members]}


def record_evaluation(member: Record, record: Record,
                      holdout_record: Optional[Record] = None) -> bool:
  """Adds one evaluation of a member; returns True when it is its new best on test."""
  member["last"] = record
  member["history"].append(report.summary(record))
  if holdout_record is not None and report.is_better(holdout_record,
                                                     member["holdout_best"]):
    member["holdout_best"] = report.summary(holdout_record)
    member["holdout"] = report.summary(record)
  if report.is_better(record, member["best"]):
    member["best"] = record
    return True
  return False


def best_checkpoint_record(members: Sequence[Record]) -> Record:
  """What workdir/best holds beside the members' best params: one member's best
  record, or with several the mean of their best average mAPs (which only rises,
  so the newest best checkpoint is kept) and each member's record."""
  bests = [m["best"] for m in members]
  if len(bests) == 1:
    return bests[0]
  return {"average_mAP": sum(b["average_mAP"] for b in bests) / len(bests),
          "step": max(b["step"] for b in bests), "members": list(bests)}


def best_steps(members: Sequence[Record]) -> List[int]:
  return [m["best"]["step"] for m in members]
