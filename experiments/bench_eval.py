"""Time localization plus evaluation over every video of an outputs file.

  python experiments/bench_eval.py --outputs OUT.npz --ground_truth GT.json [--subset test]
  python experiments/bench_eval.py --synthetic 210 [--repeats 5]
  python experiments/bench_eval.py --protocol thumos14_official [--repeats 5]

OUT.npz holds, per video, `<video>/cas` [T, C], `<video>/action_flow` [T],
`<video>/action_rgb` [T], `<video>/sc` [C] and `<video>/num_snippets` (the
fixture layout); the videos are padded into one batch. `--synthetic N` makes N
THUMOS14-shaped videos (T = 750, C = 20) and their ground truth. Prints one line

  eval_pass videos=N detections=M localization_s=X evaluation_s=Y total_s=Z

with the median of `--repeats` timed runs (after one untimed warm-up run).
Localization goes from the batched arrays to the Detections of every video;
evaluation from those to AP (no JSON round trip unless --json, which adds
writing the ActivityNet JSON dict to localization and reading it to evaluation).

`--protocol NAME` times `salx.postprocess.protocols.evaluate` alone on the
prediction sets of tests/fixtures/thumos14_official/ together (213 ground-truth
videos, about 10,000 detections) against that protocol's ground truth
(`--ground_truth`, default the official per-class folder there); one line

  eval_protocol protocol=NAME videos=V instances=I detections=M thresholds=K read_s=X total_s=Z

`--method delu|co2net [--outputs F.npz]` localizes and scores saved CO2-Net / DELU
test outputs: F.npz holds `<video>/cas` [T, C+1] logits (last column background)
and `<video>/attn` [T] (the fused attention) for each test video, keyed by its
name. Localization is the method's own (`salx.methods.registry`:
CO2NET_METHOD.localize / DELU_METHOD.localize, their THUMOS14 preset: thresholds,
OIC, soft-NMS, DELU's length filter), then the W-TALC pipeline's Ambiguous filter
(`--ambiguous`, default tests/fixtures/thumos14_official/gt/Ambiguous_test.txt;
'' for none), then the wtalc protocol (`salx.postprocess.protocols.evaluate`)
against `--ground_truth` (W-TALC annotations folder, a gt.json, or default the
212-video ground truth block of tests/fixtures/co2net_delu/wtalc_eval_expected.json).
Without --outputs, synthetic outputs shaped like THUMOS14's 212 W-TALC test videos
(T = int(duration * 25 / 16) from thumos14/wtalc_thumos14reduced_videos.csv under
$SALX_DATA_DIR or ../shared/data; attention and the true classes' cas high on the
ground truth's instances, plus smoothed noise) are made and written to a temporary
F.npz, and a line says so. One line (average_mAP over tIoU 0.1:0.9, the protocol's,
and avg_0_1_0_7 over 0.1:0.7, as fractions):

  eval_pass method=M videos=N detections=D localization_s=X evaluation_s=Y total_s=Z average_mAP=A avg_0_1_0_7=B
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

from salx.methods.sal import hparams as sal_hparams  # noqa: E402
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


def bench_protocol(name: str, ground_truth_path, repeats: int) -> int:
  """Times one protocol's evaluation of the official fixture sets; prints one line."""
  from salx.datasets import protocol_ground_truth  # pylint: disable=import-outside-toplevel
  from salx.postprocess import protocols, thumos14_kit  # pylint: disable=import-outside-toplevel
  folder = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))),
                        "tests", "fixtures", "thumos14_official")
  t0 = time.perf_counter()
  ground_truth = protocol_ground_truth.load_ground_truth(
      name, ground_truth_path or os.path.join(folder, "gt"))
  instances = getattr(ground_truth, "instances", ground_truth)
  sets = sorted(f for f in os.listdir(folder) if f.endswith(".json")
                and f not in ("expected.json", "cases.json", "verification.json"))
  detections = Detections.concatenate([
      thumos14_kit.read_detections_json(os.path.join(folder, f), instances.class_names)
      for f in sets])
  read_s = time.perf_counter() - t0
  protocols.evaluate(name, ground_truth, detections)  # warm-up
  totals = []
  for _ in range(max(1, repeats)):
    t0 = time.perf_counter()
    result = protocols.evaluate(name, ground_truth, detections)
    totals.append(time.perf_counter() - t0)
  print(f"eval_protocol protocol={name} videos={result.num_videos} "
        f"instances={result.num_instances} detections={len(detections)} "
        f"thresholds={len(result.tiou_thresholds)} read_s={read_s:.3f} "
        f"total_s={statistics.median(totals):.3f}")
  return 0


# ---------------------------------------------------------------------------
# --method=co2net|delu: saved cas / attn outputs, the W-TALC protocol.

_REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
WTALC_FIXTURE_GT = os.path.join(_REPO, "tests", "fixtures", "co2net_delu",
                                "wtalc_eval_expected.json")
AMBIGUOUS_FIXTURE = os.path.join(_REPO, "tests", "fixtures", "thumos14_official", "gt",
                                 "Ambiguous_test.txt")


def wtalc_videos_csv() -> str:
  """thumos14/wtalc_thumos14reduced_videos.csv under $SALX_DATA_DIR or
  ../shared/data beside the repository ('' when absent)."""
  root = os.environ.get("SALX_DATA_DIR") or os.path.join(os.path.dirname(_REPO), "shared",
                                                         "data")
  path = os.path.join(root, "thumos14", "wtalc_thumos14reduced_videos.csv")
  return path if os.path.isfile(path) else ""


def wtalc_test_lengths(csv_path: str) -> Dict[str, int]:
  """{video: T = int(duration * 25 / 16)} of the W-TALC test videos, file order."""
  import csv  # pylint: disable=import-outside-toplevel
  with open(csv_path, newline="", encoding="utf-8") as f:
    return {row["video"]: int(float(row["duration"]) * 25 / 16)
            for row in csv.DictReader(f) if row["subset"] == "test"}


def synthetic_wtalc_outputs(lengths: Dict[str, int], ground_truth, seed: int = 0
                            ) -> Dict[str, np.ndarray]:
  """{'<video>/cas' [T, C+1], '<video>/attn' [T]}: attention and the true classes'
  cas high on the ground truth's instances (snippets), smoothed noise elsewhere."""
  rng = np.random.default_rng(seed)
  num_classes = len(ground_truth.class_names)
  index = {v: i for i, v in enumerate(ground_truth.video_ids)}
  arrays_out = {}
  for video, length in lengths.items():
    length = max(1, length)
    action = np.zeros(length)
    label = np.zeros((length, num_classes + 1))
    if video in index:
      rows = np.flatnonzero(ground_truth.video == index[video])
      for r in rows:
        s = int(ground_truth.start[r] * 25 / 16)
        e = max(s + 1, int(np.ceil(ground_truth.end[r] * 25 / 16)))
        action[s:e] = 1.0
        label[s:e, ground_truth.label[r]] = 1.0
    logit = 5.0 * action - 2.5 + 1.5 * _smooth_noise(rng, (length,), 4)
    attn = 1 / (1 + np.exp(-logit))
    cas = 1.0 * _smooth_noise(rng, (length, num_classes + 1), 4) + 3.0 * label
    cas[:, -1] += 2.0 * (1 - action)
    arrays_out[f"{video}/cas"] = cas.astype(np.float32)
    arrays_out[f"{video}/attn"] = attn.astype(np.float32)
  return arrays_out


def load_wtalc_outputs(path: str) -> Batch:
  """The videos of an npz with `<video>/cas` and `<video>/attn` as one padded batch:
  {'cas' [B, T, C+1], 'attn' [B, T], 'valid_lengths' [B], 'video_names' [B]}."""
  per_video: Dict[str, Dict[str, np.ndarray]] = {}
  with np.load(path) as data:
    for key in data.files:
      video, _, field = key.rpartition("/")
      if field in ("cas", "attn"):
        per_video.setdefault(video, {})[field] = data[key]
  for video, fields in per_video.items():
    if set(fields) != {"cas", "attn"}:
      raise SystemExit(f"{path}: video {video} needs both cas and attn")
    if fields["cas"].ndim != 2 or fields["attn"].reshape(-1).shape[0] != len(fields["cas"]):
      raise SystemExit(f"{path}: video {video}: cas must be [T, C+1] and attn [T]")
  if not per_video:
    raise SystemExit(f"{path}: no video outputs (keys <video>/cas and <video>/attn)")
  videos = list(per_video.values())
  cas, lengths = arrays.pad_stack([v["cas"] for v in videos])
  attn = arrays.pad_stack([v["attn"].reshape(-1) for v in videos])[0]
  return {"cas": cas, "attn": attn, "valid_lengths": lengths,
          "video_names": list(per_video)}


def run_wtalc_once(method, hp, batch: Batch, ground_truth, ambiguous, class_names):
  """One localization + evaluation pass; returns (times, detections, result)."""
  from salx.postprocess import protocols  # pylint: disable=import-outside-toplevel
  from salx.postprocess import wtalc_eval  # pylint: disable=import-outside-toplevel
  from salx.postprocess import wtalc_filters  # pylint: disable=import-outside-toplevel
  t0 = time.perf_counter()
  detections = method.localize(
      {"cas": batch["cas"], "attn": batch["attn"]}, batch["valid_lengths"],
      batch["valid_lengths"], hp, video_names=batch["video_names"],
      class_names=class_names).detections
  if ambiguous is not None:   # The W-TALC pipeline's filter, on snippets (5.6).
    detections = detections.take(wtalc_filters.ambiguous_keep(
        detections.video_names, detections.video,
        wtalc_eval.seconds_to_snippets(detections.start),
        wtalc_eval.seconds_to_snippets(detections.end), ambiguous))
  t1 = time.perf_counter()
  result = protocols.evaluate("wtalc", ground_truth, detections, hp.tiou_thresholds)
  t2 = time.perf_counter()
  return (t1 - t0, t2 - t1), len(detections), result


def bench_wtalc_method(args) -> int:
  """--method=co2net|delu: times localization and the wtalc protocol; one line."""
  from salx.datasets import protocol_ground_truth  # pylint: disable=import-outside-toplevel
  from salx.methods import registry  # pylint: disable=import-outside-toplevel
  from salx.postprocess import wtalc_filters  # pylint: disable=import-outside-toplevel
  method = registry.get_method(args.method)
  hp = method.presets["thumos14"]
  ground_truth = protocol_ground_truth.load_ground_truth(
      "wtalc", args.ground_truth or WTALC_FIXTURE_GT, args.subset)
  class_names = list(ground_truth.class_names)
  ambiguous_path = AMBIGUOUS_FIXTURE if args.ambiguous is None else args.ambiguous
  ambiguous = wtalc_filters.read_ambiguous(ambiguous_path) if ambiguous_path else None
  outputs = args.outputs
  if not outputs:
    csv_path = wtalc_videos_csv()
    if not csv_path:
      raise SystemExit("bench_eval: no --outputs and no thumos14/"
                       "wtalc_thumos14reduced_videos.csv (set SALX_DATA_DIR) to shape "
                       "synthetic ones")
    lengths = wtalc_test_lengths(csv_path)
    if args.videos:
      lengths = dict(list(lengths.items())[:args.videos])
    import tempfile  # pylint: disable=import-outside-toplevel
    outputs = os.path.join(tempfile.mkdtemp(prefix="bench-eval-"), "outputs.npz")
    np.savez(outputs, **synthetic_wtalc_outputs(lengths, ground_truth, args.seed))
    print(f"bench_eval: no --outputs: synthetic cas/attn of the {len(lengths)} W-TALC "
          f"THUMOS14 test videos (T from {csv_path}) written to {outputs}", flush=True)
  batch = load_wtalc_outputs(outputs)
  if batch["cas"].shape[-1] != len(class_names) + 1:
    raise SystemExit(f"bench_eval: cas has {batch['cas'].shape[-1]} columns; the ground "
                     f"truth has {len(class_names)} classes (+1 background expected)")
  run_wtalc_once(method, hp, batch, ground_truth, ambiguous, class_names)  # warm-up
  loc_times, eval_times, totals = [], [], []
  for _ in range(max(1, args.repeats)):
    (t_loc, t_eval), detections, result = run_wtalc_once(
        method, hp, batch, ground_truth, ambiguous, class_names)
    loc_times.append(t_loc)
    eval_times.append(t_eval)
    totals.append(t_loc + t_eval)
  if args.show:
    print("mAP per tIoU: " + " ".join(f"{t:g}:{100 * v:.2f}" for t, v in
                                       zip(result.tiou_thresholds, result.mAP)))
  print(f"eval_pass method={args.method} videos={len(batch['video_names'])} "
        f"detections={detections} localization_s={statistics.median(loc_times):.3f} "
        f"evaluation_s={statistics.median(eval_times):.3f} "
        f"total_s={statistics.median(totals):.3f} "
        f"average_mAP={result.average_mAP:.4f} "
        f"avg_0_1_0_7={result.averages.get('AVG(0.1:0.7)', float('nan')):.4f}", flush=True)
  return 0


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--outputs", help="npz of per-video model outputs")
  parser.add_argument("--ground_truth", help="ActivityNet-format ground truth JSON")
  parser.add_argument("--subset", default="test")
  parser.add_argument("--synthetic", type=int, default=0,
                      help="make N THUMOS14-shaped videos instead of --outputs")
  parser.add_argument("--variant", default="thumos14", choices=sorted(sal_hparams.PRESETS))
  parser.add_argument("--repeats", type=int, default=5)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--json", action="store_true",
                      help="include writing and reading the ActivityNet JSON")
  parser.add_argument("--class_names", default=None,
                      help="text file, one class name per line in the model's order "
                           "(default: the ground truth's classes sorted, THUMOS14's order)")
  parser.add_argument("--show", action="store_true", help="print the mAP table")
  parser.add_argument("--protocol", default=None,
                      help="time this evaluation protocol on the official fixture sets")
  parser.add_argument("--method", default="sal", choices=["sal", "co2net", "delu"],
                      help="co2net/delu: localize and score saved cas/attn outputs "
                      "with the method's inference and the wtalc protocol")
  parser.add_argument("--ambiguous", default=None,
                      help="--method co2net/delu: Ambiguous_test.txt of the W-TALC "
                      "pipeline's filter (default the shipped fixture; '' for none)")
  parser.add_argument("--videos", type=int, default=0,
                      help="--method co2net/delu without --outputs: only the first N "
                      "test videos (0: all 212)")
  args = parser.parse_args(argv)
  if args.method != "sal":
    return bench_wtalc_method(args)
  if args.protocol:
    return bench_protocol(args.protocol, args.ground_truth, args.repeats)
  variant = sal_hparams.PRESETS[args.variant]
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
