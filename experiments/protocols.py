"""One predictions file under the three THUMOS14 evaluation protocols, side by side.

  python experiments/protocols.py [--predictions PRED.json] [--gt_json GT.json]
      [--official DIR] [--wtalc DIR_OR_JSON] [--tiou 0.1:0.7:0.1]

Prints one row per protocol (salx.postprocess.protocols): mAP (%) at each tIoU,
AVG(0.1:0.7), the number of test videos and instances, and the ground truth read.
Predictions: ActivityNet JSON in seconds; reversed segments are kept as written
(the official kit flips them, ActivityNet-style and W-TALC score them as misses).

Ground truth defaults: activitynet ../shared/data/thumos14/gt.json (210 videos);
thumos14_official tests/fixtures/thumos14_official/gt (a copy of
../shared/data/thumos14/official_annotations/test); wtalc a W-TALC annotations
folder when given, else the 212-video ground truth W-TALC's code reads, as
tests/fixtures/co2net_delu/wtalc_eval_expected.json holds it (shared/data has
no W-TALC .npy folder). The wtalc row is W-TALC's evaluator alone: CO2-Net and
DELU filter Ambiguous rows from their predictions before it.
"""

from __future__ import annotations

import argparse
import os
import sys

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

from salx.datasets import protocol_ground_truth  # noqa: E402
from salx.postprocess import protocols  # noqa: E402
from salx.postprocess import thumos14_kit  # noqa: E402
from salx.postprocess.inputs import EvalInputError  # noqa: E402

_FIXTURES = os.path.join(ROOT, "tests", "fixtures")
_SHARED = os.path.join(os.path.dirname(ROOT), "shared", "data", "thumos14")


def _default_wtalc() -> str:
  folder = os.path.join(_SHARED, "Thumos14reduced-Annotations")
  if os.path.isdir(folder):
    return folder
  return os.path.join(_FIXTURES, "co2net_delu", "wtalc_eval_expected.json")


def _tiou(text: str):
  if ":" in text:
    lo, hi, step = (float(x) for x in text.split(":"))
    return [round(lo + i * step, 10) for i in range(int(round((hi - lo) / step)) + 1)]
  return [float(x) for x in text.split(",")]


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--predictions", default=os.path.join(
      _FIXTURES, "thumos14_official", "a_realistic.json"))
  parser.add_argument("--gt_json", default=os.path.join(_SHARED, "gt.json"),
                      help="activitynet: ActivityNet-format gt.json")
  parser.add_argument("--official", default=os.path.join(
      _FIXTURES, "thumos14_official", "gt"), help="thumos14_official: per-class folder")
  parser.add_argument("--wtalc", default=_default_wtalc(),
                      help="wtalc: W-TALC annotations folder (or the fixture JSON)")
  parser.add_argument("--tiou", default="0.1:0.7:0.1", help="start:stop:step or a,b,c")
  args = parser.parse_args(argv)
  th = _tiou(args.tiou)
  paths = {"activitynet": args.gt_json, "thumos14_official": args.official,
           "wtalc": args.wtalc}
  try:
    detections = thumos14_kit.read_detections_json(args.predictions)
  except EvalInputError as e:
    print(f"protocols.py: {e}", file=sys.stderr)
    return 2
  reversed_ = int(np.sum(detections.end < detections.start))
  print(f"predictions {os.path.relpath(args.predictions)}: {len(detections)} detections "
        f"on {len(detections.video_names)} videos ({reversed_} reversed segments)")
  head = (f"{'protocol':<18}" + "".join(f"{t:>7g}" for t in th)
          + f"{'AVG(0.1:0.7)':>14}{'videos':>8}{'instances':>10}  ground truth")
  print(head)
  print("-" * len(head))
  status = 0
  for name, path in paths.items():
    try:
      ground_truth = protocol_ground_truth.load_ground_truth(name, path)
      result = protocols.evaluate(name, ground_truth, detections, th)
    except (EvalInputError, ValueError) as e:
      print(f"{name:<18}error: {e}")
      status = 2
      continue
    avg = result.averages.get("AVG(0.1:0.7)")
    print(f"{name:<18}" + "".join(f"{100 * v:>7.2f}" for v in result.mAP)
          + (f"{100 * avg:>14.2f}" if avg is not None else f"{'-':>14}")
          + f"{result.num_videos:>8}{result.num_instances:>10}  {os.path.relpath(path)}")
  return status


if __name__ == "__main__":
  sys.exit(main())
