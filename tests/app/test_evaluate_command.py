"""The `python -m salx.evaluate` command: its flags, table, JSON output and exit codes.

The numbers themselves are pinned by tests/parity/test_parity_sal_evaluation.py (the same
functions); here, small files check what each flag does.
"""

import json
import os
import pathlib
import subprocess
import sys

import numpy as np
import pytest

from salx import evaluate

from tests.conftest import fixture_file

ROOT = pathlib.Path(__file__).resolve().parents[2]

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


def _module(*argv):
  return subprocess.run([sys.executable, "-m", "salx.evaluate", *argv],
                        capture_output=True, text=True, cwd=ROOT,
                        env=dict(os.environ, PYTHONPATH=str(ROOT)))


def test_prints_table_and_writes_json(tmp_path, capsys):
  gt, pred = _write(tmp_path, "gt.json", GT), _write(tmp_path, "pred.json", PRED)
  out_json = str(tmp_path / "out.json")
  code, out, err = _run(capsys, "--ground_truth", gt, "--predictions", pred,
                        "--tiou", "0.5,0.7", f"--json={out_json}")
  assert code == 0 and err == ""
  assert "ground truth gt.json, subset 'test': 1 videos" in out
  assert "predictions pred.json: 2" in out and "per-class AP" in out
  assert "mAP" in out and "50.00" in out  # A: AP 1, B: AP 0
  result = json.loads(pathlib.Path(out_json).read_text())
  assert result["mAP"] == [0.5, 0.5] and result["tiou_thresholds"] == [0.5, 0.7]
  assert result["per_class_AP"] == {"A": [1.0, 1.0], "B": [0.0, 0.0]}


def test_default_tiou_subset_ambiguous_and_no_per_class(tmp_path, capsys):
  data = json.loads(json.dumps(GT))
  data["database"]["v1"]["subset"] = "validation"
  gt, pred = _write(tmp_path, "gt.json", data), _write(tmp_path, "pred.json", PRED)
  amb = _write(tmp_path, "amb.txt", "v1 45 46\n")
  code, out, _ = _run(capsys, f"--ground_truth={gt}", f"--predictions={pred}",
                      "--subset=validation", f"--ambiguous={amb}", "--no_per_class")
  assert code == 0
  assert "subset 'validation'" in out
  assert "tIoU 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7;" in out
  assert "ambiguous segments (amb.txt): 1 overlapping predictions dropped" in out
  assert "per-class" not in out


def test_tiou_range_parsing():
  assert evaluate.parse_tiou("0.1:0.7:0.1") == [0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7]
  assert evaluate.parse_tiou("0.5:0.95:0.05")[-1] == 0.95
  assert len(evaluate.parse_tiou("0.5:0.95:0.05")) == 10
  for bad in ("0.7:0.1:0.1", "abc", "0.5,1.5"):
    with pytest.raises(ValueError, match="tIoU"):
      evaluate.parse_tiou(bad)


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


@pytest.mark.parametrize("argv, field", [
    (["--predictions=p.json"], "--ground_truth"),
    (["--ground_truth=g.json", "--predictions=p.json", "--tiou=0.9:0.1:0.1"], "--tiou"),
    (["--ground_truth=g.json", "--predictions=p.json", "--bogus=1"], "bogus"),
    (["--ground_truth=g.json", "--predictions=p.json", "extra.json"], "extra.json"),
])
def test_bad_flags_one_line_naming_the_flag_exit_2(capsys, argv, field):
  code, out, err = _run(capsys, *argv)
  assert code == 2 and out == ""
  assert len(err.strip().splitlines()) == 1 and field in err, err


def test_module_entry_point_help_and_exit_code(tmp_path):
  proc = _module("--help")
  assert proc.returncode == 0, proc.stderr
  for flag in ("--ground_truth", "--predictions", "--subset", "--tiou", "--ambiguous",
               "--json", "--no_per_class", "--protocol", "--write_kit_text"):
    assert flag in proc.stdout, flag
  gt = _write(tmp_path, "gt.json", GT)
  pred = _write(tmp_path, "pred.json", "not json")
  proc = _module("--ground_truth", gt, "--predictions", pred)
  assert proc.returncode == 2
  assert proc.stderr.startswith("python -m salx.evaluate: error: ")
  assert pred in proc.stderr and "malformed JSON" in proc.stderr
  assert "Traceback" not in proc.stderr


@pytest.mark.slow
def test_postprocess_imports_no_framework_and_the_command_no_jax():
  code = ("import sys, salx.postprocess.localization, salx.postprocess.ap, "
          "salx.postprocess.classification; "
          "before = {m.split('.')[0] for m in sys.modules}; import salx.evaluate; "
          "after = {m.split('.')[0] for m in sys.modules}; "
          "frameworks = {'tensorflow', 'tensorflow_datasets', 'clu', 'jax', 'flax'}; "
          "print(sorted(before & (frameworks | {'absl'})), sorted(after & frameworks))")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        env=dict(os.environ, PYTHONPATH=str(ROOT)), cwd=ROOT)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.strip() == "[] []"


# ---------------------------------------------------------------------------
# Protocols (salx.postprocess.protocols): the numbers are pinned by
# tests/parity/test_parity_protocols.py; here, what the command does with them.


def _official(name):
  return str(fixture_file(f"thumos14_official/{name}"))


def _mAP_row(out):
  return [float(x) for x in next(line for line in out.splitlines()
                                 if line.startswith("mAP ")).split()[1:]]


@pytest.mark.slow
def test_official_protocol_prints_the_kits_numbers(tmp_path):
  expected = json.loads(pathlib.Path(_official("expected.json")).read_text())
  th = expected["tiou_thresholds"]
  case = expected["sets"]["a_realistic"]
  out_json = tmp_path / "out.json"
  proc = _module("--protocol=thumos14_official", f"--ground_truth={_official('gt')}",
                 f"--predictions={_official(case['predictions_json'])}",
                 "--tiou=" + ",".join(map(str, th)), f"--json={out_json}")
  assert proc.returncode == 0 and proc.stderr == "", proc.stderr
  out = proc.stdout
  assert "protocol thumos14_official: the official THUMOS'14 kit" in out
  assert "test set: 213 videos, 3358 instances" in out
  assert _mAP_row(out) == [round(100 * v, 2) for v in case["mAP"]]
  assert "AVG(0.1:0.7) [tIoU 0.1:0.1:0.7] " + f"{100 * case['average_mAP']['0.1:0.1:0.7']:.2f}" in out
  result = json.loads(out_json.read_text())
  assert result["protocol"] == "thumos14_official"
  assert (result["num_videos"], result["num_instances"]) == (213, 3358)
  np.testing.assert_allclose(result["mAP"], case["mAP"], rtol=0, atol=1e-12)
  for cls, values in case["per_class_AP"].items():
    np.testing.assert_allclose(result["per_class_AP"][cls], values, rtol=0, atol=1e-12)


def test_write_kit_text_round_trip(tmp_path, capsys):
  text = tmp_path / "kit.txt"
  common = ["--protocol=thumos14_official", f"--ground_truth={_official('gt')}",
            "--no_per_class"]
  code, out, err = _run(capsys, *common, f"--predictions={_official('b_edge.json')}",
                        f"--write_kit_text={text}", f"--json={tmp_path / 'a.json'}")
  assert code == 0 and err == "", err
  assert f"lines written to {text}" in out
  # The fixture's text was written the same way from the same JSON (repr numbers,
  # reversed segments as given).
  assert text.read_text() == pathlib.Path(_official("b_edge.txt")).read_text()
  code, out2, err = _run(capsys, *common, f"--predictions={text}",
                         f"--json={tmp_path / 'b.json'}")
  assert code == 0 and err == "", err
  a, b = (json.loads((tmp_path / f).read_text()) for f in ("a.json", "b.json"))
  assert a["mAP"] == b["mAP"] and a["per_class_AP"] == b["per_class_AP"]
  assert _mAP_row(out) == _mAP_row(out2)


def test_activitynet_default_names_protocol_and_test_set(tmp_path, capsys):
  gt, pred = _write(tmp_path, "gt.json", GT), _write(tmp_path, "pred.json", PRED)
  code, out, _ = _run(capsys, "--ground_truth", gt, "--predictions", pred)
  assert code == 0
  assert out.startswith("protocol activitynet: ActivityNet-style")
  assert "test set: 1 videos, 2 instances" in out
  assert "AVG(0.1:0.7) [tIoU 0.1:0.1:0.7] 50.00" in out


def test_wtalc_protocol_from_the_fixture_ground_truth(tmp_path, capsys):
  expected = json.loads(fixture_file("co2net_delu/wtalc_eval_expected.json").read_text())
  rows = json.loads(fixture_file("co2net_delu/wtalc_eval_predictions.json").read_text())
  results = {}
  for video, start, end, label, score in rows["rows"]:
    results.setdefault(video, []).append({
        "label": expected["class_names"][int(label)], "score": score,
        "segment": [start * 16 / 25, end * 16 / 25]})
  pred = _write(tmp_path, "pred.json", {"results": results})
  out_json = tmp_path / "out.json"
  code, out, err = _run(capsys, "--protocol=wtalc", "--ground_truth",
                        str(fixture_file("co2net_delu/wtalc_eval_expected.json")),
                        "--predictions", pred, f"--json={out_json}")
  assert code == 0 and err == "", err
  assert "test set: 212 videos, 3358 instances" in out
  assert "AVG(0.1:0.9) [tIoU 0.1:0.1:0.9]" in out
  result = json.loads(out_json.read_text())
  np.testing.assert_allclose(result["mAP"], expected["raw"]["mAP"], rtol=0, atol=1e-12)
  assert abs(result["averages"]["AVG(0.1:0.7)"] - expected["raw"]["avg_0.1_0.7"]) < 1e-12


@pytest.mark.parametrize("case", ["protocol", "official_file", "official_missing",
                                  "wtalc_missing", "ambiguous_flag", "kit_text_class",
                                  "kit_label"])
def test_protocol_bad_input_one_line_exit_2(tmp_path, capsys, case):
  gt = _write(tmp_path, "gt.json", GT)
  pred = _write(tmp_path, "pred.json", PRED)
  argv, field = {
      "protocol": (["--protocol=kit", f"--ground_truth={gt}", f"--predictions={pred}"],
                   "--protocol"),
      "official_file": (["--protocol=thumos14_official", f"--ground_truth={gt}",
                         f"--predictions={pred}"], gt),
      "official_missing": (["--protocol=thumos14_official",
                            f"--ground_truth={tmp_path / 'nowhere'}",
                            f"--predictions={pred}"], str(tmp_path / "nowhere")),
      "wtalc_missing": (["--protocol=wtalc", f"--ground_truth={tmp_path / 'absent.json'}",
                         f"--predictions={pred}"], str(tmp_path / "absent.json")),
      "ambiguous_flag": (["--protocol=wtalc", f"--ground_truth={gt}",
                          f"--predictions={pred}", f"--ambiguous={gt}"], "--ambiguous"),
      "kit_text_class": (["--protocol=thumos14_official", f"--ground_truth={_official('gt')}",
                          "--predictions=" + _write(
                              tmp_path, "p.txt", "video_test_0000028 1 2 1 0.9\n"
                              "video_test_0000028 1 2 33 0.9\n")], "p.txt: line 1"),
      "kit_label": (["--protocol=thumos14_official", f"--ground_truth={_official('gt')}",
                     f"--predictions={pred}"], "'A' is not among the 20 class names"),
  }[case]
  code, out, err = _run(capsys, *argv)
  assert code == 2 and out == "", out
  lines = err.strip().splitlines()
  assert len(lines) == 1 and field in lines[0], err
