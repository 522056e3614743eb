"""experiments/bench_eval.py runs on synthetic videos and on an outputs file."""

import importlib.util
import json
import pathlib

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1]


def _bench_module():
  spec = importlib.util.spec_from_file_location(
      "bench_eval", ROOT / "experiments" / "bench_eval.py")
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


@pytest.mark.slow
def test_bench_eval_synthetic_and_outputs_file(tmp_path, capsys):
  bench = _bench_module()
  assert bench.main(["--synthetic", "4", "--repeats", "1"]) == 0
  line = capsys.readouterr().out.strip().splitlines()[-1]
  fields = dict(f.split("=") for f in line.split()[1:])
  assert line.startswith("eval_pass ") and fields["videos"] == "4"
  assert set(fields) == {"videos", "detections", "localization_s", "evaluation_s", "total_s"}
  assert int(fields["detections"]) > 0
  # The same videos through an outputs file (per-video arrays of different T)
  # and a ground-truth file, with the JSON round trip.
  batch, gt_json, names = bench.synthetic(3, seed=1)
  arrays = {}
  for i, video in enumerate(batch["video_names"]):
    t = 750 - 100 * i
    arrays.update({f"{video}/cas": batch["cas"][i, :t],
                   f"{video}/action_flow": batch["action_flow"][i, :t],
                   f"{video}/action_rgb": batch["action_rgb"][i, :t],
                   f"{video}/sc": batch["video_logits"][i],
                   f"{video}/num_snippets": batch["num_snippets"][i]})
  np.savez(tmp_path / "out.npz", **arrays)
  loaded = bench.load_outputs(str(tmp_path / "out.npz"))
  assert loaded["valid_lengths"].tolist() == [750, 650, 550]
  assert loaded["video_names"] == batch["video_names"]
  (tmp_path / "classes.txt").write_text("\n".join(names))
  (tmp_path / "gt.json").write_text(json.dumps(gt_json))
  assert bench.main(["--outputs", str(tmp_path / "out.npz"), "--ground_truth",
                     str(tmp_path / "gt.json"), "--repeats", "1", "--json",
                     "--class_names", str(tmp_path / "classes.txt")]) == 0
  assert "videos=3" in capsys.readouterr().out


@pytest.mark.slow
def test_bench_eval_wtalc_methods_on_saved_outputs(tmp_path, capsys):
  from salx.datasets import protocol_ground_truth  # pylint: disable=import-outside-toplevel
  bench = _bench_module()
  gt = protocol_ground_truth.load_ground_truth("wtalc", bench.WTALC_FIXTURE_GT)
  assert len(gt.video_ids) == 212 and len(gt.class_names) == 20
  lengths = {v: 200 - 20 * i for i, v in enumerate(gt.video_ids[:4])}
  arrays = bench.synthetic_wtalc_outputs(lengths, gt)
  assert arrays[f"{gt.video_ids[1]}/cas"].shape == (180, 21)
  np.savez(tmp_path / "out.npz", **arrays)
  loaded = bench.load_wtalc_outputs(str(tmp_path / "out.npz"))
  assert loaded["valid_lengths"].tolist() == [200, 180, 160, 140]
  for method in ("delu", "co2net"):
    assert bench.main(["--method", method, "--outputs", str(tmp_path / "out.npz"),
                       "--repeats", "1"]) == 0
    line = capsys.readouterr().out.strip().splitlines()[-1]
    fields = dict(f.split("=") for f in line.split()[1:])
    assert line.startswith("eval_pass ") and fields["method"] == method
    assert fields["videos"] == "4" and int(fields["detections"]) > 0
    # 4 of the 212 ground-truth videos: a small but positive mAP.
    assert 0 < float(fields["average_mAP"]) < 0.2
    assert {"total_s", "localization_s", "evaluation_s", "avg_0_1_0_7"} <= set(fields)


@pytest.mark.slow
def test_bench_eval_wtalc_synthetic_outputs_of_the_test_videos(capsys):
  from tests.conftest import data_file  # pylint: disable=import-outside-toplevel
  data_file("thumos14/wtalc_thumos14reduced_videos.csv")
  bench = _bench_module()
  assert bench.main(["--method", "delu", "--videos", "3", "--repeats", "1",
                     "--ambiguous", ""]) == 0
  first, line = capsys.readouterr().out.strip().splitlines()[-2:]
  assert "no --outputs: synthetic cas/attn of the 3 W-TALC THUMOS14 test videos" in first
  assert line.startswith("eval_pass method=delu videos=3 ")
