r"""Evaluate detections under a named protocol (SPEC 5; salx.postprocess.protocols).

  python -m salx.evaluate [--protocol=activitynet] --ground_truth=PATH \
      --predictions=PRED.json [--subset=test] [--tiou=0.1:0.7:0.1] \
      [--ambiguous=Ambiguous_test.txt] [--json=OUT.json] [--no_per_class] \
      [--write_kit_text=PRED.txt]

Protocols and their ground truth (--ground_truth):
  activitynet        ActivityNet-style, salx's default: an ActivityNet JSON (gt.json)
  thumos14_official  the official THUMOS'14 kit: the per-class folder
                     (detclasslist.txt, <Class>_test.txt, Ambiguous_test.txt)
  wtalc              W-TALC's evaluator (CO2-Net, DELU): a W-TALC annotations folder
                     (Thumos14reduced-Annotations/*.npy)
Predictions: ActivityNet JSON (seconds), or the kit's text `<video> <t1> <t2>
<class id> <score>` (.txt). --write_kit_text writes the predictions in the kit's
text (class ids from detclasslist.txt) for running the MATLAB kit.

Prints the protocol, the test set (videos, instances), mAP per tIoU, the
protocol's averages with their tIoU ranges and the per-class AP. The trainer
scores its own detections through the same functions.

Exit status: 0 done; 2 bad input (a missing or bad flag, unreadable or
malformed JSON, a prediction label that is not a ground-truth class, end <
start, a NaN score, an empty subset), as one line on stderr naming the file or
the flag; 1 an internal error.
"""

from __future__ import annotations

import json
import sys
import warnings
from typing import List, Optional, Sequence

from absl import flags

from salx import cli
from salx.datasets import protocol_ground_truth
from salx.postprocess import ground_truth as ground_truth_lib
from salx.postprocess import protocols
from salx.postprocess import thumos14_kit
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
  flags.DEFINE_enum("protocol", protocols.ACTIVITYNET.name, sorted(protocols.PROTOCOLS),
                    "Evaluation protocol (see above).", **own)
  flags.DEFINE_string("ground_truth", None, "The protocol's ground truth: ActivityNet "
                      "JSON {'database': {video: {subset, annotations}}} (activitynet), "
                      "the official per-class folder (thumos14_official) or a W-TALC "
                      "annotations folder (wtalc). Required.", **own)
  flags.DEFINE_string("predictions", None, "Detections JSON {'results': {video: "
                      "[{label, score, segment}]}} in seconds, or the kit's text "
                      "(.txt). Required.", **own)
  flags.DEFINE_string("subset", "test", "Ground-truth subset to evaluate.", **own)
  flags.DEFINE(_TiouParser(), "tiou", None,
               "tIoU thresholds, start:stop:step or a comma list (default: the "
               "protocol's; THUMOS14: 0.1:0.7:0.1; ActivityNet: 0.5:0.95:0.05).",
               serializer=flags.ListSerializer(","), **own)
  flags.DEFINE_string("ambiguous", None, "activitynet only: drop the predictions "
                      "overlapping these segments (the official Ambiguous_test.txt).",
                      **own)
  flags.DEFINE_string("json", None, "Also write the result as JSON to this file.", **own)
  flags.DEFINE_boolean("no_per_class", False, "Leave the per-class AP table out.", **own)
  flags.DEFINE_string("write_kit_text", None, "Also write the predictions in the "
                      "official kit's input text `<video> <t1> <t2> <class id> "
                      "<score>` to this file.", **own)
  flags.mark_flags_as_required(["ground_truth", "predictions"], flag_values=values)


def _error(message, code: int = EXIT_BAD_INPUT) -> int:
  return cli.command_error(_PROG, message, code)


def _class_ids(ground_truth):
  """(class names, ids) of detclasslist.txt, or THUMOS'14's when the ground truth
  has none."""
  if isinstance(ground_truth, thumos14_kit.OfficialGroundTruth) and ground_truth.class_ids:
    return ground_truth.instances.class_names, ground_truth.class_ids
  return tuple(thumos14_kit.THUMOS14_CLASS_IDS), tuple(thumos14_kit.THUMOS14_CLASS_IDS.values())


def _read_predictions(protocol: protocols.Protocol, path: str, ground_truth) -> Detections:
  """The predictions file: kit text (.txt) or ActivityNet JSON; the kit's protocol
  keeps reversed segments (it flips them)."""
  official = isinstance(ground_truth, thumos14_kit.OfficialGroundTruth)
  if path.endswith(".txt"):
    with warnings.catch_warnings(record=True) as caught:
      warnings.simplefilter("always")
      detections = thumos14_kit.read_kit_text(path, *_class_ids(ground_truth))
    for warning in caught:
      print(f"{_PROG}: warning: {warning.message}", file=sys.stderr, flush=True)
    return detections
  if protocol.reversed_segments == "flip":
    return thumos14_kit.read_detections_json(
        path, ground_truth.instances.class_names if official else None)
  return Detections.from_json(path)


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Runs the command on `argv` (the arguments, without the program name)."""
  values, status = cli.parse_command(_PROG, __doc__, _define_flags,
                                     sys.argv[1:] if argv is None else argv)
  if values is None:
    return status
  protocol = protocols.get_protocol(values.protocol)
  if values.ambiguous and protocol is not protocols.ACTIVITYNET:
    return _error(f"--ambiguous applies to --protocol=activitynet; {protocol.name} "
                  f"reads Ambiguous segments from {protocol.ground_truth}"
                  if protocol is protocols.THUMOS14_OFFICIAL else
                  f"--ambiguous applies to --protocol=activitynet; {protocol.name}: "
                  f"{protocol.ambiguous}")
  try:
    ground_truth = protocol_ground_truth.load_ground_truth(
        protocol, values.ground_truth, values.subset)
    detections = _read_predictions(protocol, values.predictions, ground_truth)
    ambiguous = (ground_truth_lib.load_ambiguous(values.ambiguous)
                 if values.ambiguous else None)
    result = protocols.evaluate(protocol, ground_truth, detections, values.tiou, ambiguous)
  except EvalInputError as e:
    return _error(e)
  print(protocols.format_table(result, per_class=not values.no_per_class))
  if values.json:
    try:
      with open(values.json, "w") as f:
        json.dump(result.to_json(), f, indent=1)
    except OSError as e:
      return _error(f"{values.json}: cannot write: {e.strerror or e}")
  if values.write_kit_text:
    try:
      count = thumos14_kit.write_kit_text(values.write_kit_text, detections,
                                          *_class_ids(ground_truth))
    except EvalInputError as e:
      return _error(e)
    print(f"\nkit input text: {count} lines written to {values.write_kit_text}")
  return 0

if __name__ == "__main__":
  sys.exit(main())
