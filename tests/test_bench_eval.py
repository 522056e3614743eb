"""experiments/bench_eval.py runs on synthetic videos and on an outputs file."""

import importlib.util
import json
import pathlib

import numpy as np

ROOT = pathlib.Path(__file__).resolve().parents[1]


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
