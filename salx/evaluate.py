r"""Evaluate ActivityNet-format detections against a ground truth (SPEC 5).

  python -m salx.evaluate --ground_truth=GT.json --predictions=PRED.json \
      [--subset=test] [--tiou=0.1:0.7:0.1] [--ambiguous=Ambiguous_test.txt] \
      [--json=OUT.json] [--no_per_class]

Prints the protocol, mAP per tIoU, the quoted averages and the per-class AP.
The trainer scores its own detections through the same functions
(`salx.postprocess.ap.evaluate_detections`).

Exit status: 0 done; 2 bad input (a missing or bad flag, unreadable or
malformed JSON, a prediction label that is not a ground-truth class, end <
start, a NaN score, an empty subset), as one line on stderr naming the file or
the flag; 1 an internal error.
"""

from __future__ import annotations

import json
import sys
from typing import List, Optional, Sequence

from absl import flags

from salx import cli
from salx.postprocess import ap
from salx.postprocess import ground_truth as ground_truth_lib
from salx.postprocess.detections import Detections
from salx.postprocess.inputs import EvalInputError

_PROG = "python -m salx.evaluate"
EXIT_BAD_INPUT = 2


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
    raise ValueError(f"invalid tIoU thresholds {text!r}: use start:stop:step "
                     "(e.g. 0.1:0.7:0.1) or a comma list") from None
  if not values or any(not 0 < v <= 1 for v in values):
    raise ValueError(f"tIoU thresholds must lie in (0, 1]: {text!r}")
  return values


class _TiouParser(flags.ArgumentParser):
  """--tiou values: start:stop:step (stop included) or a comma list."""

  def parse(self, argument):
    return list(argument) if isinstance(argument, (list, tuple)) else parse_tiou(argument)

  def flag_type(self):
    return "tIoU thresholds"


def _define_flags(values: flags.FlagValues) -> None:
  """The command's flags, on `values` (listed under this module in --help)."""
  own = {"flag_values": values, "module_name": __spec__.name if __spec__ else __name__}
  flags.DEFINE_string("ground_truth", None, "Ground truth JSON {'database': {video: "
                      "{subset, annotations}}}. Required.", **own)
  flags.DEFINE_string("predictions", None, "Detections JSON {'results': {video: "
                      "[{label, score, segment}]}}. Required.", **own)
  flags.DEFINE_string("subset", "test", "Ground-truth subset to evaluate.", **own)
  flags.DEFINE(_TiouParser(), "tiou", "0.1:0.7:0.1",
               "tIoU thresholds, start:stop:step or a comma list (THUMOS14: "
               "0.1:0.7:0.1; ActivityNet: 0.5:0.95:0.05).",
               serializer=flags.ListSerializer(","), **own)
  flags.DEFINE_string("ambiguous", None, "Drop the predictions overlapping these "
                      "segments (the official Ambiguous_test.txt).", **own)
  flags.DEFINE_string("json", None, "Also write the result as JSON to this file.", **own)
  flags.DEFINE_boolean("no_per_class", False, "Leave the per-class AP table out.", **own)
  flags.mark_flags_as_required(["ground_truth", "predictions"], flag_values=values)


def _error(message, code: int = EXIT_BAD_INPUT) -> int:
  return cli.command_error(_PROG, message, code)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Runs the command on `argv` (the arguments, without the program name)."""
  values, status = cli.parse_command(_PROG, __doc__, _define_flags,
                                     sys.argv[1:] if argv is None else argv)
  if values is None:
    return status
  try:
    ground_truth = ground_truth_lib.load_ground_truth(values.ground_truth, values.subset)
    detections = Detections.from_json(values.predictions)
    ambiguous = (ground_truth_lib.load_ambiguous(values.ambiguous)
                 if values.ambiguous else None)
    result = ap.evaluate_detections(ground_truth, detections, values.tiou, ambiguous)
  except EvalInputError as e:
    return _error(e)
  print(ap.format_table(result, per_class=not values.no_per_class))
  if values.json:
    try:
      with open(values.json, "w") as f:
        json.dump(result.to_json(), f, indent=1)
    except OSError as e:
      return _error(f"{values.json}: cannot write: {e.strerror or e}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
