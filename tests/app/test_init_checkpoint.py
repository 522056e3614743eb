"""--config.init_checkpoint: the authors' checkpoint files scored and fine-tuned in one command."""

import json

import numpy as np
import pytest

from salx import main
from salx.app import trainer
from tests.conftest import fixture_file
from tests.conftest import tiny_config



def _dims():
  """The THUMOS14 checkpoint fixture's dims (its meta); the data is made to match."""
  expected = np.load(fixture_file("checkpoints/official_checkpoints_expected.npz"))
  return json.loads(str(expected["meta"]))["thumos"]


def _config(data_dir, checkpoint, **overrides):
  dims = _dims()
  sal = dict(hidden_dim=dims["hidden_dim"], num_segments=dims["num_segments"])
  sal.update(overrides.pop("sal", {}))
  config = tiny_config(data_dir, sal=sal, **dict(dict(
      feature_dim=dims["feature_dim"], num_steps=10, eval_every=10,
      checkpoint_every=10, init_checkpoint=str(checkpoint)), **overrides))
  config.synthetic.update(num_classes=dims["num_classes"], num_train=20, num_test=6,
                          min_length=40, max_length=80)
  return config


@pytest.fixture(scope="module")
def thumos_file():
  return fixture_file("checkpoints/" + _dims()["file"])


@pytest.mark.slow
def test_official_checkpoint_is_scored_by_evaluate_mode(tmp_path, capsys, thumos_file):
  config = _config(tmp_path / "data", thumos_file)
  assert main.run(config, str(tmp_path / "w"), mode="evaluate") == 0
  out = capsys.readouterr().out
  assert "weights" in out and f"the official checkpoint {thumos_file}" in out
  record = json.loads((tmp_path / "w" / "metrics_eval_init.json").read_text())
  assert record["step"] == 0 and 0.0 <= record["average_mAP"] <= 1.0
  assert (tmp_path / "w" / "predictions_eval_init.json").is_file()

  # Fine-tuning starts from the same weights: the untrained row is their score.
  result = trainer.train_and_evaluate(config, str(tmp_path / "fine"))
  assert result.metrics["untrained"]["mAP"] == record["mAP"]
  assert result.metrics["last"]["step"] == 10


def test_official_checkpoint_of_other_dims_is_one_line(tmp_path, capsys, thumos_file):
  h = _dims()["hidden_dim"]
  config = _config(tmp_path / "data", thumos_file, sal={"hidden_dim": 2 * h})
  assert main.run(config, str(tmp_path / "w"), mode="evaluate") == main.EXIT_BAD_INPUT
  err = capsys.readouterr().err.strip()
  assert len(err.splitlines()) == 1 and "does not fit the config" in err
  assert f"fc1/kernel: checkpoint [{h * h}, {h}], config [{4 * h * h}, {2 * h}]" in err


def test_official_checkpoint_that_is_missing_is_one_line(tmp_path, capsys):
  config = _config(tmp_path / "data", tmp_path / "nowhere.pkl")
  assert main.run(config, str(tmp_path / "w"), mode="evaluate") == main.EXIT_BAD_INPUT
  assert "nowhere.pkl does not exist" in capsys.readouterr().err
