"""The run report: evaluation records and their JSON form, mean ± std, the
untrained/last/best table, metrics.json."""

import json
import os

import numpy as np
import pytest

from salx.postprocess import protocols
from salx.app import report

THUMOS_TIOU = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def _result(mean_ap, tiou=THUMOS_TIOU):
  mean_ap = np.asarray(mean_ap, np.float64)
  averages, ranges = protocols.averages(protocols.ACTIVITYNET, tiou, mean_ap)
  return protocols.ProtocolResult(
      protocol="activitynet", description=("protocol activitynet: ...", "gt"),
      tiou_thresholds=tiou, class_names=("a", "b"), ap=np.stack([mean_ap, mean_ap]),
      mAP=mean_ap, averages=averages, average_ranges=ranges, num_videos=30,
      num_instances=40, num_predictions=10, num_outside=0)


def _record(step, level):
  return report.EvalRecord.of_result(_result([level] * 7), 0.5, step, num_videos=30)


def test_record_has_one_json_form_and_names_the_thumos_averages():
  record = _record(100, 0.25)
  data = json.loads(json.dumps(record.to_json()))
  assert report.EvalRecord.from_json(data) == record
  assert data["step"] == 100 and data["num_videos"] == 30
  assert list(data["averages"]) == ["AVG(0.1:0.5)", "AVG(0.3:0.7)", "AVG(0.1:0.7)"]
  assert record.average_mAP == pytest.approx(0.25)
  assert data["per_class_AP"]["a"] == pytest.approx([0.25] * 7)


def test_history_entries_of_earlier_runs_still_read():
  """The short history entries earlier checkpoints hold (no per-class AP, no
  protocol) read as records with those fields empty."""
  old = {"step": 50, "average_mAP": 0.3, "averages": {"AVG(0.1:0.7)": 0.3},
         "accuracy": 0.5, "mAP": [0.3] * 7, "tiou_thresholds": list(THUMOS_TIOU)}
  record = report.EvalRecord.from_json(old)
  assert record.step == 50 and record.per_class_AP == {} and record.protocol == ""
  member = report.MemberRecords.from_json({"seed": 3, "overrides": {}, "untrained": None,
                                           "last": old, "best": old, "holdout_best": None,
                                           "holdout": None, "history": [old],
                                           "train_history": [{"step": 50, "loss": 1.0}]})
  assert member.best == record and member.history == [record]
  assert report.MemberRecords.from_json(member.to_json()) == member


def test_member_records_keep_the_best_and_the_holdout_selected_step():
  member = report.MemberRecords(seed=0, overrides={})
  assert member.record(_record(10, 0.2), holdout_record=_record(10, 0.5))
  assert not member.record(_record(20, 0.2), holdout_record=_record(20, 0.6))   # A tie.
  assert member.record(_record(30, 0.3), holdout_record=_record(30, 0.4))
  assert (member.last.step, member.best.step, member.holdout.step) == (30, 30, 20)
  assert [h.step for h in member.history] == [10, 20, 30]
  assert all(h.per_class_AP == {} for h in member.history)


def test_mean_std_is_the_sample_std_and_names_n():
  stats = report.mean_std([0.60, 0.62, 0.70])
  assert stats.mean == pytest.approx(0.64)
  assert stats.std == pytest.approx(np.std([0.60, 0.62, 0.70], ddof=1))
  assert stats.to_json() == {"mean": stats.mean, "std": stats.std, "n": 3}
  assert report.mean_std([0.5]) == report.MeanStd(0.5, 0.0, 1)
  assert report.mean_std([]).n == 0
  assert report.mean_std([0.5]).text(unit="%") == "50.00%"
  assert stats.text() == f"64.00 ± {100 * stats.std:.2f}"


def test_activitynet_record_has_its_average():
  tiou = tuple(0.5 + 0.05 * i for i in range(10))
  record = report.EvalRecord.of_result(_result(np.linspace(0.5, 0.05, 10), tiou), 0.9,
                                       7, 4)
  assert list(record.averages) == ["AVG(0.5:0.95)"]
  assert "test/mAP@0.75" in record.scalars()


def test_scalars_cover_every_threshold_average_and_accuracy():
  scalars = _record(10, 0.5).scalars()
  assert {f"test/mAP@{t:g}" for t in THUMOS_TIOU} <= set(scalars)
  assert scalars["test/AVG(0.1:0.7)"] == pytest.approx(50.0)   # Percent, as printed.
  assert scalars["test/accuracy"] == 50.0


def test_better_needs_a_strictly_higher_average():
  assert _record(10, 0.2).beats(None)
  assert _record(20, 0.3).beats(_record(10, 0.2))
  assert not _record(20, 0.2).beats(_record(10, 0.2))


def _member(seed=0, **records):
  return report.MemberRecords(seed=seed, overrides={}, **records)


def test_final_report_shows_untrained_last_and_best_selected_on_test():
  members = [_member(
      untrained=_record(0, 0.001), last=_record(300, 0.61), best=_record(250, 0.65),
      history=[_record(250, 0.65).summary()])]
  final = report.final_report(members, title="SAL on synthetic", eval_every=50,
                              eval_start_step=50)
  table, metrics = final.table, final.metrics
  lines = table.splitlines()
  assert lines[0] == "SAL on synthetic"
  assert "AVG(0.1:0.5)" in table and "AVG(0.3:0.7)" in table and "AVG(0.1:0.7)" in table
  untrained = next(l for l in lines if l.startswith("untrained"))
  last = next(l for l in lines if l.startswith("last step"))
  best = next(l for l in lines if l.startswith("best"))
  assert " 0 " in untrained and "0.10" in untrained
  assert "300" in last and "61.00" in last
  assert "250" in best and "65.00" in best
  assert report.SELECTED_ON_TEST in table and "every 50 steps" in table
  assert metrics["best"]["selection"] == report.SELECTED_ON_TEST
  assert metrics["last"]["step"] == 300 and metrics["untrained"]["step"] == 0
  assert metrics["history"][0]["average_mAP"] == pytest.approx(0.65)


def test_final_report_without_untrained_evaluation():
  members = [_member(last=_record(30, 0.4), best=_record(30, 0.4))]
  final = report.final_report(members, title="t", eval_every=10, eval_start_step=0)
  table, metrics = final.table, final.metrics
  assert metrics["untrained"] is None
  assert next(l for l in table.splitlines() if l.startswith("untrained")).split()[1] == "-"


def test_final_report_of_members_gives_each_and_mean_std():
  members = [
      _member(0, untrained=_record(0, 0.01), last=_record(300, 0.60), best=_record(250, 0.64),
              holdout=_record(200, 0.62).summary()),
      _member(1, untrained=_record(0, 0.03), last=_record(300, 0.62), best=_record(300, 0.62),
              holdout=_record(300, 0.62).summary())]
  final = report.final_report(members, title="t", eval_every=50, eval_start_step=50,
                              holdout_fraction=0.1)
  table, metrics, detailed = final.table, final.metrics, final.detailed
  # The console's table: a row per member and one mean ± std row per record.
  lines = table.splitlines()
  for label in ("untrained m0 seed 0", "last step m1 seed 1",
                "last step: mean ± std (n=2)", "best (selected on test)*: mean ± std",
                "holdout-selected** m0 seed 0", "best - last: mean ± std (n=2)"):
    assert any(l.startswith(label) for l in lines), label
  assert max(len(l) for l in lines if not l.startswith(("*", "evaluation"))) <= 110
  mean = next(l for l in lines if l.startswith("last step: mean"))
  assert f"61.00 ± {100 * np.std([0.60, 0.62], ddof=1):.2f}" in mean
  # The full table per tIoU, for report.txt.
  lines = detailed.splitlines()
  for label in ("last step: mean", "last step: std (n=2)", "best - last: std (n=2)"):
    assert any(l.startswith(label) for l in lines), label
  std = next(l for l in lines if l.startswith("last step: std"))
  assert f"{100 * np.std([0.60, 0.62], ddof=1):.2f}" in std
  summary = metrics["summary"]
  assert summary["last"]["average_mAP"]["n"] == 2
  assert summary["last"]["average_mAP"]["mean"] == pytest.approx(0.61)
  assert summary["best_minus_last"]["average_mAP"]["mean"] == pytest.approx(0.02)
  assert summary["holdout"]["average_mAP"]["mean"] == pytest.approx(0.62)
  assert [m["seed"] for m in metrics["members"]] == [0, 1]
  assert metrics["last"]["average_mAP"] == pytest.approx(0.60)   # Member 0 at the top.
  assert report.SELECTED_ON_HOLDOUT in table


def test_write_json_replaces_atomically(tmp_path):
  path = os.path.join(tmp_path, "sub", "metrics.json")
  report.write_json(path, {"a": 1})
  report.write_json(path, {"a": 2})
  with open(path) as f:
    assert json.load(f) == {"a": 2}
  assert os.listdir(os.path.dirname(path)) == ["metrics.json"]
