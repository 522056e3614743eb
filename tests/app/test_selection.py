"""The selection of each member's step: its records, its best params (saved as the
best checkpoint) and the predictions of its last and best steps."""

import json

import jax.numpy as jnp
import numpy as np
import pytest

from salx.app import checkpoints
from salx.app import evaluation
from salx.app import report
from salx.postprocess import protocols
from salx.postprocess.detections import Detections

THUMOS_TIOU = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7)


def _record(step, level):
  mean_ap = np.full(7, level)
  averages, ranges = protocols.averages(protocols.ACTIVITYNET, THUMOS_TIOU, mean_ap)
  result = protocols.ProtocolResult(
      protocol="activitynet", description=("protocol activitynet",), tiou_thresholds=THUMOS_TIOU,
      class_names=("a",), ap=mean_ap[None], mAP=mean_ap, averages=averages,
      average_ranges=ranges, num_videos=2, num_instances=3, num_predictions=1, num_outside=0)
  return report.EvalRecord.of_result(result, 0.5, step, num_videos=2)


def _evaluation(step, levels, params):
  detections = Detections(("v",), ("a",), np.zeros(1, np.int64), np.zeros(1, np.int64),
                          np.array([step / 100]), np.zeros(1), np.ones(1))
  return evaluation.Evaluation(
      step, [evaluation.MemberEvaluation(_record(step, level), detections)
             for level in levels], params)


def test_each_member_keeps_its_own_best_params_records_and_predictions(tmp_path):
  members = [report.MemberRecords(seed=s, overrides={}) for s in (0, 1)]
  with checkpoints.RunCheckpoints(tmp_path) as ckpts:
    selection = evaluation.Selection(members, ckpts, str(tmp_path), num_steps=20)
    selection.apply(_evaluation(10, (0.2, 0.5), {"w": jnp.array([[1.0], [2.0]])}))
    selection.apply(_evaluation(20, (0.3, 0.4), {"w": jnp.array([[3.0], [4.0]])}))
    # Member 0 improved at step 20, member 1 did not.
    np.testing.assert_array_equal(selection.best_params["w"], [[3.0], [2.0]])
    assert [m.best.step for m in selection.members] == [20, 10]
    assert [m.last.step for m in selection.members] == [20, 20]
    assert selection.latest_best_step() == 20
    assert selection.mean_of("best").mean == pytest.approx(0.4)
    assert selection.scalars("last")["test/member1/accuracy"] == 50.0
    template = {"w": jnp.zeros((2, 1))}
    params, record, step = ckpts.restore_best(template)
  np.testing.assert_array_equal(params["w"], [[3.0], [2.0]])
  assert step == 20 and record["average_mAP"] == pytest.approx(0.4)
  assert [r["step"] for r in record["members"]] == [20, 10]
  best = {m: json.loads((tmp_path / f"predictions_best_member{m}.json").read_text())
          for m in (0, 1)}
  assert best[0]["results"]["v"][0]["score"] == pytest.approx(0.2)   # Step 20's.
  assert best[1]["results"]["v"][0]["score"] == pytest.approx(0.1)   # Step 10's.
  assert (tmp_path / "predictions_last_member1.json").is_file()      # The last step's.

  # The progress record a checkpoint carries gives the same records back.
  progress = json.loads(json.dumps(selection.progress_json({"seed": 0})))
  assert evaluation.Selection.members_of_progress(progress) == selection.members


def test_a_single_member_writes_plain_file_names_and_its_own_record(tmp_path):
  with checkpoints.RunCheckpoints(tmp_path) as ckpts:
    selection = evaluation.Selection([report.MemberRecords(seed=0, overrides={})], ckpts,
                                     str(tmp_path), num_steps=5)
    selection.apply(_evaluation(5, (0.3,), {"w": jnp.ones((1, 2))}))
    assert selection.best_record() == _record(5, 0.3).to_json()
  assert sorted(p.name for p in tmp_path.glob("predictions_*")) == [
      "predictions_best.json", "predictions_last.json"]
