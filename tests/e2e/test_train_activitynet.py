"""The ActivityNet configs train end to end on their layouts (SPEC section 4).

ActivityNet 1.2 in W-TALC's layout and 1.3 in ACM-Net's, each built from a few
real annotated videos with synthetic features, trained with the config's own
settings (T = 50, the ActivityNet code path) at tiny width, batch and step count,
and evaluated at tIoU 0.5:0.95.
"""

import pathlib

import numpy as np
import pytest

import configs.activitynet12
import configs.activitynet13

from salx.app import trainer
from salx.datasets import synthetic
from tests.conftest import data_file

ROOT = pathlib.Path(__file__).resolve().parents[2]
CASES = {
    "activitynet12": dict(layout="wtalc", annotations="activitynet12/gt_from_wtalc.json",
                          splits=("activitynet12/split_train.txt",
                                  "activitynet12/split_test.txt"),
                          class_list=None),
    "activitynet13": dict(layout="acmnet", annotations="activitynet13/gt_from_bsn.json",
                          splits=("activitynet13/acmnet_split_train.txt",
                                  "activitynet13/acmnet_split_test.txt"),
                          class_list="activitynet13/action_name.csv"),
}


def _config(name):
  return {"activitynet12": configs.activitynet12,
          "activitynet13": configs.activitynet13}[name].get_config()


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(CASES))
def test_activitynet_config_trains_and_evaluates_at_050_095(name, tmp_path):
  case = CASES[name]
  data_dir = synthetic.make_synthetic_dataset(
      tmp_path / "data", synthetic.SyntheticSpec(feature_dim=64), case["layout"],
      annotations=data_file(case["annotations"]), dataset=name,
      split_files={"train": data_file(case["splits"][0]),
                   "test": data_file(case["splits"][1])},
      class_list=data_file(case["class_list"]) if case["class_list"] else None,
      max_videos=8, max_snippets=70)
  config = _config(name)
  assert (config.sal.num_segments, config.batch_size, config.preset) == (50, 32,
                                                                       "activitynet")
  config.update(data_dir=str(data_dir), feature_dim=64, batch_size=4,
                eval_batch_size=4, num_steps=4, eval_every=2, checkpoint_every=2,
                log_every=2)
  config.sal.hidden_dim = 16
  result = trainer.train_and_evaluate(config, str(tmp_path / "work"))

  assert result.status == "completed" and result.step == 4
  record = result.metrics["last"]
  np.testing.assert_allclose(record["tiou_thresholds"], np.linspace(0.5, 0.95, 10))
  assert "AVG(0.5:0.95)" in record["averages"]
  assert record["num_videos"] == 8
  assert "0.95" in result.table
