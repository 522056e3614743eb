"""Time localization plus evaluation over every video of an outputs file.

  python experiments/bench_eval.py --outputs OUT.npz --ground_truth GT.json [--subset test]
  python experiments/bench_eval.py --synthetic 210 [--repeats 5]

OUT.npz holds, per video, `<video>/cas` [T, C], `<video>/action_flow` [T],
`<video>/action_rgb` [T], `<video>/sc` [C] and `<video>/num_snippets` (the
fixture layout); the videos are padded into one batch. `--synthetic N` makes N
THUMOS14-shaped videos (T = 750, C = 20) and their ground truth. Prints one line

  eval_pass videos=N detections=M localization_s=X evaluation_s=Y total_s=Z

with the median of `--repeats` timed runs (after one untimed warm-up run).
Localization goes from the batched arrays to the Detections of every video;
evaluation from those to AP (no JSON round trip unless --json, which adds
writing the ActivityNet JSON dict to localization and reading it to evaluation).
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from typing import Dict, List, Tuple

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

from salx.core import variants  # noqa: E402
from salx.postprocess import ap  # noqa: E402
from salx.postprocess import arrays  # noqa: E402
from salx.postprocess import ground_truth as ground_truth_lib  # noqa: E402
from salx.postprocess import localization  # noqa: E402
from salx.postprocess.detections import Detections  # noqa: E402

_FIELDS = ("cas", "action_flow", "action_rgb", "sc", "num_snippets")

Batch = Dict[str, object]


def load_outputs(path: str) -> Batch:
  """The videos of an npz with `<video>/<field>` keys as one padded batch.

  Returns:
    {'cas' [B, T, C], 'action_flow', 'action_rgb' [B, T], 'video_logits' [B, C],
    'valid_lengths', 'num_snippets' [B], 'video_names' [B]}: `localize`'s arguments.
  """
  per_video: Dict[str, Dict[str, np.ndarray]] = {}
  with np.load(path) as data:
    for key in data.files:
      video, _, field = key.rpartition("/")
      if field in _FIELDS:
        per_video.setdefault(video, {})[field] = data[key]
  for video, fields in per_video.items():
    missing = [f for f in _FIELDS if f not in fields]
    if missing:
      raise SystemExit(f"{path}: video {video} lacks {', '.join(missing)}")
  if not per_video:
    raise SystemExit(f"{path}: no video outputs (keys <video>/{'|'.join(_FIELDS)})")
  videos = list(per_video.values())
  cas, lengths = arrays.pad_stack([v["cas"] for v in videos])
  return {"cas": cas,
          "action_flow": arrays.pad_stack([v["action_flow"] for v in videos])[0],
          "action_rgb": arrays.pad_stack([v["action_rgb"] for v in videos])[0],
          "video_logits": np.stack([v["sc"] for v in videos]),
          "valid_lengths": lengths,
          "num_snippets": np.asarray([int(v["num_snippets"]) for v in videos]),
          "video_names": list(per_video)}


def _smooth_noise(rng: np.random.Generator, shape, width: int) -> np.ndarray:
  """Gaussian noise smoothed along axis 0 by a box filter of `width`, unit std."""
  noise = rng.standard_normal((shape[0] + width - 1,) + tuple(shape[1:]))
  kernel_sum = np.cumsum(noise, axis=0)
  kernel_sum = np.concatenate([np.zeros((1,) + noise.shape[1:]), kernel_sum])
  smooth = (kernel_sum[width:] - kernel_sum[:-width]) / np.sqrt(width)
  return smooth[:shape[0]]


def synthetic(num_videos: int, seed: int = 0, num_classes: int = 20,
              num_segments: int = 750) -> Tuple[Batch, dict, List[str]]:
  """THUMOS14-shaped model outputs with ground truth to match.

  Each video has L snippets (log-uniform 150 .. 8000), one class (a second one
  for 15% of the videos) with about 15 instances of 1.5 .. 12 s; cas and
  actionness follow the instances plus smoothed noise.

  Returns:
    (the batch as `load_outputs` gives it, ground truth JSON dict, class names).
  """
  rng = np.random.default_rng(seed)
  names = [f"class_{c:02d}" for c in range(num_classes)]
  outputs, database = [], {}
  for v in range(num_videos):
    video = f"video_synthetic_{v:05d}"
    length = int(np.exp(rng.uniform(np.log(150), np.log(8000))))
    duration = length * 16 / 25
    classes = rng.choice(num_classes, size=1 + int(rng.random() < 0.15), replace=False)
    snippet_time = np.floor(np.arange(num_segments) * length / num_segments) * 16 / 25
    annotations = []
    indicator = np.zeros((num_segments, num_classes))
    for c in classes:
      count = 1 + rng.poisson(13)
      starts = np.sort(rng.uniform(0, duration * 0.95, count))
      for s in starts:
        e = min(duration, s + rng.uniform(1.5, 12.0))
        annotations.append({"label": names[c], "segment": [f"{s:.1f}", f"{e:.1f}"]})
        indicator[(snippet_time >= s) & (snippet_time < e), c] = 1.0
    action = indicator.max(axis=1)
    cas = 1.5 * _smooth_noise(rng, (num_segments, num_classes), 8) - 1.0
    cas += 4.0 * indicator
    flow = 1 / (1 + np.exp(-(5.0 * (action - 0.5) + 1.5 * _smooth_noise(rng, (num_segments,), 8))))
    rgb = 1 / (1 + np.exp(-(5.0 * (action - 0.5) + 1.5 * _smooth_noise(rng, (num_segments,), 8))))
    sc = rng.standard_normal(num_classes)
    sc[classes] += 5.0
    outputs.append((cas, flow, rgb, sc, length))
    database[video] = {"subset": "test", "annotations": annotations}
  cas, flow, rgb, sc, length = (np.asarray(x) for x in zip(*outputs))
  batch = {"cas": cas, "action_flow": flow, "action_rgb": rgb, "video_logits": sc,
           "valid_lengths": np.full(num_videos, num_segments), "num_snippets": length,
           "video_names": list(database)}
  return batch, {"database": database}, names


def run_once(batch: Batch, ground_truth: ground_truth_lib.GroundTruth, variant,
             class_names, tiou, use_json: bool):
  """One localization + evaluation pass; returns (times, detections, result)."""
  t0 = time.perf_counter()
  detections = localization.localize(**batch, variant=variant,
                                     class_names=class_names).detections
  if use_json:
    results = detections.to_json()
  t1 = time.perf_counter()
  if use_json:
    detections = Detections.from_json(results)
  result = ap.evaluate_detections(ground_truth, detections, tiou)
  t2 = time.perf_counter()
  return (t1 - t0, t2 - t1), len(detections), result


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--outputs", help="npz of per-video model outputs")
  parser.add_argument("--ground_truth", help="ActivityNet-format ground truth JSON")
  parser.add_argument("--subset", default="test")
  parser.add_argument("--synthetic", type=int, default=0,
                      help="make N THUMOS14-shaped videos instead of --outputs")
  parser.add_argument("--variant", default="thumos14", choices=sorted(variants.VARIANTS))
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--json", action="store_true",
                      help="include writing and reading the ActivityNet JSON")
  parser.add_argument("--class_names", default=None,
                      help="text file, one class name per line in the model's order "
                           "(default: the ground truth's classes sorted, THUMOS14's order)")
  parser.add_argument("--show", action="store_true", help="print the mAP table")
  args = parser.parse_args(argv)
  variant = variants.get_variant(args.variant)
  if args.synthetic:
    batch, gt_json, class_names = synthetic(args.synthetic, args.seed)
    ground_truth = ground_truth_lib.load_ground_truth(gt_json, "test")
  else:
    if not (args.outputs and args.ground_truth):
      parser.error("give --outputs and --ground_truth, or --synthetic N")
    batch = load_outputs(args.outputs)
    ground_truth = ground_truth_lib.load_ground_truth(args.ground_truth, args.subset)
    if args.class_names:
      with open(args.class_names) as f:
        class_names = [line.strip() for line in f if line.strip()]
    else:  # THUMOS14 convention: the model's classes are the ground truth's, sorted.
      class_names = sorted(ground_truth.class_names)
    if len(class_names) != batch["cas"].shape[-1]:
      parser.error(f"{len(class_names)} class names for cas with "
                   f"{batch['cas'].shape[-1]} classes; give --class_names")
  tiou = variant.tiou_thresholds
  run_once(batch, ground_truth, variant, class_names, tiou, args.json)  # warm-up
  loc_times, eval_times, totals = [], [], []
  for _ in range(max(1, args.repeats)):
    (t_loc, t_eval), detections, result = run_once(
        batch, ground_truth, variant, class_names, tiou, args.json)
    loc_times.append(t_loc)
    eval_times.append(t_eval)
    totals.append(t_loc + t_eval)
  if args.show:
    print(ap.format_table(result, per_class=False))
  print(f"eval_pass videos={len(batch['video_names'])} detections={detections} "
        f"localization_s={statistics.median(loc_times):.3f} "
        f"evaluation_s={statistics.median(eval_times):.3f} "
        f"total_s={statistics.median(totals):.3f}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
