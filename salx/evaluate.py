"""Evaluate ActivityNet-format detections against a ground truth (SPEC 5).

  python -m salx.evaluate --ground_truth GT.json --predictions PRED.json \
      [--subset test] [--tiou 0.1:0.7:0.1] [--ambiguous Ambiguous_test.txt] \
      [--json OUT.json]

Prints the protocol, mAP per tIoU, the quoted averages and the per-class AP.
Bad input (unreadable or malformed JSON, a prediction label that is not a
ground-truth class, end < start, a NaN score, an empty subset) gives one line
naming the file and the problem on stderr, and exit code 2.
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import List, Optional, Sequence

from salx.postprocess import ap
from salx.postprocess import ground_truth as ground_truth_lib
from salx.postprocess.detections import Detections
from salx.postprocess.inputs import EvalInputError

_PROG = "python -m salx.evaluate"


def parse_tiou(text: str) -> List[float]:
  """'start:stop:step' (stop included), 'a,b,c' or a single value -> thresholds."""
  try:
    if ":" in text:
      parts = [float(p) for p in text.split(":")]
      if len(parts) != 3 or parts[2] <= 0 or parts[1] < parts[0]:
        raise ValueError
      start, stop, step = parts
      count = int((stop - start) / step + 1e-9) + 1
      values = [round(start + i * step, 10) for i in range(count)]
    else:
      values = [float(p) for p in text.split(",")]
  except ValueError:
    raise argparse.ArgumentTypeError(
        f"invalid tIoU thresholds {text!r}: use start:stop:step (e.g. 0.1:0.7:0.1) "
        "or a comma list") from None
  if not values or any(not 0 < v <= 1 for v in values):
    raise argparse.ArgumentTypeError(f"tIoU thresholds must lie in (0, 1]: {text!r}")
  return values


def build_parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog=_PROG, description="ActivityNet-protocol detection mAP (SPEC 5).")
  parser.add_argument("--ground_truth", required=True,
                      help="ground truth JSON {'database': {video: {subset, annotations}}}")
  parser.add_argument("--predictions", required=True,
                      help="detections JSON {'results': {video: [{label, score, segment}]}}")
  parser.add_argument("--subset", default="test", help="ground-truth subset (default: test)")
  parser.add_argument("--tiou", type=parse_tiou, default=parse_tiou("0.1:0.7:0.1"),
                      help="tIoU thresholds, start:stop:step or a comma list "
                           "(default 0.1:0.7:0.1, THUMOS14; ActivityNet: 0.5:0.95:0.05)")
  parser.add_argument("--ambiguous", default=None,
                      help="drop predictions overlapping these segments "
                           "(official Ambiguous_test.txt)")
  parser.add_argument("--json", default=None, help="also write the result as JSON here")
  parser.add_argument("--no_per_class", action="store_true",
                      help="leave the per-class AP table out")
  return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = build_parser().parse_args(argv)
  try:
    ground_truth = ground_truth_lib.load_ground_truth(args.ground_truth, args.subset)
    detections = Detections.from_json(args.predictions)
    ambiguous = (ground_truth_lib.load_ambiguous(args.ambiguous)
                 if args.ambiguous else None)
    result = ap.evaluate_detections(ground_truth, detections, args.tiou, ambiguous)
  except EvalInputError as e:
    print(f"{_PROG}: error: {e}", file=sys.stderr)
    return 2
  print(ap.format_table(result, per_class=not args.no_per_class))
  if args.json:
    try:
      with open(args.json, "w") as f:
        json.dump(result.to_json(), f, indent=1)
    except OSError as e:
      print(f"{_PROG}: error: {args.json}: cannot write: {e.strerror or e}",
            file=sys.stderr)
      return 2
  return 0


if __name__ == "__main__":
  sys.exit(main())
