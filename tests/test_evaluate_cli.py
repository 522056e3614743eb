"""The `python -m salx.evaluate` command: table, JSON output, exit code 2 on bad input."""

import importlib.util
import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from salx import evaluate

from tests.conftest import data_file, fixture_file

ROOT = pathlib.Path(__file__).resolve().parents[1]

GT = {"database": {
    "v1": {"subset": "test", "annotations": [{"label": "A", "segment": ["0", "10"]},
                                             {"label": "B", "segment": ["20", "30"]}]},
    "v2": {"subset": "train", "annotations": [{"label": "A", "segment": [0, 5]}]}}}
PRED = {"results": {"v1": [{"label": "A", "score": 0.9, "segment": [0, 10]},
                           {"label": "B", "score": 0.5, "segment": [40, 50]}]}}


def _write(tmp_path, name, content):
  path = tmp_path / name
  path.write_text(content if isinstance(content, str) else json.dumps(content))
  return str(path)


def _run(capsys, *argv):
  code = evaluate.main(list(argv))
  out, err = capsys.readouterr()
  return code, out, err


def test_prints_table_and_writes_json(tmp_path, capsys):
  gt, pred = _write(tmp_path, "gt.json", GT), _write(tmp_path, "pred.json", PRED)
  out_json = str(tmp_path / "out.json")
  code, out, err = _run(capsys, "--ground_truth", gt, "--predictions", pred,
                        "--tiou", "0.5,0.7", "--json", out_json)
  assert code == 0 and err == ""
  assert "ground truth gt.json, subset 'test': 1 videos" in out
  assert "mAP" in out and "50.00" in out  # A: AP 1, B: AP 0
  result = json.loads(pathlib.Path(out_json).read_text())
  assert result["mAP"] == [0.5, 0.5] and result["tiou_thresholds"] == [0.5, 0.7]
  assert result["per_class_AP"] == {"A": [1.0, 1.0], "B": [0.0, 0.0]}


def test_tiou_range_parsing():
  assert evaluate.parse_tiou("0.1:0.7:0.1") == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
  assert evaluate.parse_tiou("0.5:0.95:0.05")[-1] == 0.95
  assert len(evaluate.parse_tiou("0.5:0.95:0.05")) == 10


@pytest.mark.parametrize("case", ["missing", "malformed", "label", "order", "nan",
                                  "subset", "ambiguous"])
def test_bad_input_one_line_naming_the_file_exit_2(tmp_path, capsys, case):
  gt = _write(tmp_path, "gt.json", GT)
  pred_data = json.loads(json.dumps(PRED))
  extra, bad = [], None
  if case == "missing":
    bad = str(tmp_path / "absent.json")
    pred = bad
  elif case == "malformed":
    pred = bad = _write(tmp_path, "pred.json", '{"results": {"v1": [')
  else:
    det = pred_data["results"]["v1"][0]
    if case == "label":
      det["label"] = "Zebra"
    elif case == "order":
      det["segment"] = [12, 3]
    elif case == "nan":
      det["score"] = float("nan")  # json writes NaN
    pred = _write(tmp_path, "pred.json", pred_data)
    bad = pred
    if case == "subset":
      extra, bad = ["--subset", "validation"], gt
    elif case == "ambiguous":
      bad = _write(tmp_path, "amb.txt", "v1 1.0\n")
      extra = ["--ambiguous", bad]
  code, out, err = _run(capsys, "--ground_truth", gt, "--predictions", pred, *extra)
  assert code == 2
  assert out == ""
  lines = err.strip().splitlines()
  assert len(lines) == 1, err
  assert bad in lines[0]
  expected = {"missing": "cannot read", "malformed": "malformed JSON",
              "label": "'Zebra' is not a class", "order": "end 3.0 < start 12.0",
              "nan": "not a finite number", "subset": "subset 'validation' is empty",
              "ambiguous": "expected 'video start end'"}[case]
  assert expected in lines[0]


def test_module_entry_point_exit_code(tmp_path):
  gt = _write(tmp_path, "gt.json", GT)
  pred = _write(tmp_path, "pred.json", "not json")
  env = dict(os.environ, PYTHONPATH=str(ROOT))
  proc = subprocess.run([sys.executable, "-m", "salx.evaluate", "--ground_truth", gt,
                         "--predictions", pred], capture_output=True, text=True,
                        env=env, cwd=ROOT)
  assert proc.returncode == 2
  assert proc.stderr.startswith("python -m salx.evaluate: error: ")
  assert pred in proc.stderr and "malformed JSON" in proc.stderr


def test_cli_on_the_thumos14_fixture_with_ambiguous(tmp_path, capsys):
  expected = json.loads(fixture_file("thumos14_eval_expected.json").read_text())
  gt = str(data_file(expected.get("ground_truth", "thumos14/gt.json")))
  pred = str(fixture_file("thumos14_eval_predictions.json"))
  out_json = str(tmp_path / "r.json")
  code, out, _ = _run(capsys, "--ground_truth", gt, "--predictions", pred,
                      "--json", out_json)
  assert code == 0
  result = json.loads(pathlib.Path(out_json).read_text())
  assert max(abs(a - b) for a, b in zip(result["mAP"], expected["mAP"])) <= 1e-12
  ambiguous = str(data_file("thumos14/official_annotations/test/Ambiguous_test.txt"))
  code, out, _ = _run(capsys, "--ground_truth", gt, "--predictions", pred,
                      "--ambiguous", ambiguous, "--no_per_class")
  assert code == 0
  assert "ambiguous segments (Ambiguous_test.txt):" in out
  assert "per-class" not in out


def _bench_module():
  spec = importlib.util.spec_from_file_location(
      "bench_eval", ROOT / "experiments" / "bench_eval.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def test_bench_eval_synthetic_and_outputs_file(tmp_path, capsys):
  bench = _bench_module()
  assert bench.main(["--synthetic", "4", "--repeats", "1"]) == 0
  line = capsys.readouterr().out.strip().splitlines()[-1]
  fields = dict(f.split("=") for f in line.split()[1:])
  assert line.startswith("eval_pass ") and fields["videos"] == "4"
  assert set(fields) == {"videos", "detections", "localization_s", "evaluation_s", "total_s"}
  assert int(fields["detections"]) > 0
  # The same videos through an outputs file and a ground-truth file.
  outputs, gt_json, names = bench.synthetic(3, seed=1)
  names_path = _write(tmp_path, "classes.txt", "\n".join(names))
  arrays = {f"{v}/{k}": x for v, fields_ in outputs.items() for k, x in fields_.items()}
  np_path = tmp_path / "out.npz"
  np.savez(np_path, **arrays)
  gt_path = _write(tmp_path, "gt.json", gt_json)
  assert bench.main(["--outputs", str(np_path), "--ground_truth", gt_path, "--repeats", "1",
                     "--json", "--class_names", names_path]) == 0
  assert "videos=3" in capsys.readouterr().out


def test_localization_and_evaluation_import_no_framework():
  code = ("import sys, salx.postprocess.localization, salx.postprocess.evaluation, salx.evaluate; "
          "print(sorted({m.split('.')[0] for m in sys.modules} & "
          "{'tensorflow', 'tensorflow_datasets', 'absl', 'clu', 'jax', 'flax'}))")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.strip() == "[]"
