"""experiments/bench_protocol.py times the trainer itself and reports its figures."""

import json
import pathlib
import sys

import pytest

import configs.thumos

ROOT = pathlib.Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT / "experiments"))
import bench_protocol  # noqa: E402  pylint: disable=wrong-import-position

TINY = ["--annotations=", "--num_train=12", "--num_test=6", "--feature_dim=64",
        "--hidden_dim=16", "--num_segments=32"]
KEYS = ("steps", "evals", "members", "fraction", "devices", "backend", "dtype",
        "eval_workers", "data_s", "setup_s", "step_s", "eval_s", "saves_s", "wall_s",
        "full_evals", "extrapolated_full_s", "last_avg_map", "best_avg_map")


@pytest.mark.slow
def test_a_part_of_the_protocol_through_the_trainer_prints_its_line(tmp_path, capsys):
  workdir = tmp_path / "run"
  assert bench_protocol.main(TINY + ["--fraction=0.002", "--num_seeds=2",
                                     f"--data_dir={tmp_path / 'data'}",
                                     f"--workdir={workdir}"]) == 0
  out = capsys.readouterr().out
  line = out.strip().splitlines()[-1]
  assert line.startswith("protocol ")
  fields = dict(f.split("=", 1) for f in line.split()[1:])
  assert tuple(fields) == KEYS
  # 20 steps, one epoch of 6 steps: the untrained members, steps 10 and 20.
  assert (fields["steps"], fields["evals"], fields["members"]) == ("20", "3", "2")
  assert fields["full_evals"] == "1001"
  assert float(fields["extrapolated_full_s"]) > float(fields["wall_s"]) > 0
  assert float(fields["step_s"]) > 0 and float(fields["eval_s"]) > 0
  # The figures are the trainer's: its report and metrics in the kept workdir.
  metrics = json.loads((workdir / "metrics.json").read_text())
  assert len(metrics["members"]) == 2
  assert [m["last"]["step"] for m in metrics["members"]] == [20, 20]
  for key in ("last", "best"):
    mean = metrics["summary"][key]["average_mAP"]["mean"]
    assert float(fields[f"{key}_avg_map"]) == pytest.approx(mean, abs=1e-4)
  # The printed table heads report.txt (which adds the members' table per tIoU).
  printed, per_tiou = (workdir / "report.txt").read_text().strip().split("\n\n", 1)
  assert printed in out and "last step: std (n=2)" in per_tiou


def test_the_full_schedule_counts_the_trainers_evaluations():
  config = configs.thumos.get_config()
  # Untrained, then every 10 steps from step 100 to step 10,000.
  assert bench_protocol.evaluation_steps(config, 10_000) == 1 + 991
  assert bench_protocol.evaluation_steps(config, 105) == 1 + 1 + 1
  assert bench_protocol.checkpoint_steps(config, 10_000) == 20
  assert bench_protocol.checkpoint_steps(config, 20) == 1


@pytest.mark.parametrize("flag,message", [
    ("--fraction=0.0001", "--fraction=0.0001 gives 1 steps"),
    ("--annotations=/nowhere/gt.json", "--annotations: /nowhere/gt.json not found"),
    ("--num_seeds=0", "--num_seeds must be positive"),
])
def test_bad_flags_name_themselves_and_exit_2(flag, message, capsys):
  with pytest.raises(SystemExit) as exit_info:
    bench_protocol.main(TINY + [flag])
  assert exit_info.value.code == 2
  assert message in capsys.readouterr().err
