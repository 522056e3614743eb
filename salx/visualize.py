r"""Pictures of a trained run: detection timelines, training curves, per-class AP.

    python -m salx.visualize --workdir=/tmp/salx-demo
    python -m salx.visualize --workdir=W --split=train --video=NAME --top_per_class=5

Restores the run's config (W/metrics.json) and its best checkpoint (else the
latest), runs the model on the split's videos and writes into W/plots (or --out):
videos/<video>.png (one timeline per video: ground truth, detections marked true or
false positive at tIoU 0.5, class activation, actionness; for the training split
also the pseudo label and adaptive mask), losses.png, map.png, ap_bars.png and
index.html, a static page linking them all (open it in a browser, no server; each
thumbnail opens its picture at full size). On a terminal, stderr says what runs and
a progress bar counts the timelines drawn.

Exit status: 0 done, 2 no run in the workdir, a bad flag, config or data folder
(one line on stderr).
"""

from __future__ import annotations

import os
import sys

from salx import cli

cli.require_extra("salx.visualize", "train", cli.TRAIN_MODULES)

from absl import flags
from absl import logging

from salx.core import progress_bar

PROG = "python -m salx.visualize"


def _define_flags(values: flags.FlagValues) -> None:
  """The command's flags, on its own FlagValues (importing defines nothing)."""
  flags.DEFINE_string("workdir", None, "Folder of a trained run "
                      "(python -m salx.main --workdir). Required.", flag_values=values)
  flags.DEFINE_string("out", None, "Folder of the pictures (default: WORKDIR/plots).",
                      flag_values=values)
  flags.DEFINE_enum("split", "test", ["train", "test"], "Split whose videos are drawn; "
                    "train adds the pseudo labels and the adaptive mask.",
                    flag_values=values)
  flags.DEFINE_string("video", None, "Draw only this video of the split (default: "
                      "every video).", flag_values=values)
  flags.DEFINE_integer("top_per_class", 10, "Detections shown per class in a timeline, "
                       "the best by score.", lower_bound=1, flag_values=values)
  flags.DEFINE_float("score_threshold", None, "Show every detection scoring at least "
                     "this instead of the top per class.", flag_values=values)


def run(workdir: str, out: str, split: str, video, top_per_class: int,
        score_threshold) -> int:
  """Draws the run's pictures; returns the exit status (errors printed, not raised)."""
  what = f"video {video}" if video else f"the {split} split"
  progress_bar.note(f"{PROG}: restoring the run in {workdir} and running its model "
                    f"on {what}...")
  # The run's record is read first, bounded, before the libraries a drawing needs.
  from salx.postprocess import json_limits  # pylint: disable=g-import-not-at-top
  if os.path.isfile(os.path.join(workdir, "metrics.json")):
    try:
      json_limits.load_json(os.path.join(workdir, "metrics.json"))
    except (OSError, ValueError) as e:
      return cli.command_error(PROG, e)
  # Imported here so that --help answers at once.
  cli.import_quietly("tensorflow")   # The data feed's; muted start-up lines.
  from salx.app import pictures  # pylint: disable=g-import-not-at-top
  from salx.app.runtime import ConfigError  # pylint: disable=g-import-not-at-top
  from salx.datasets.errors import DataError  # pylint: disable=g-import-not-at-top
  try:
    files = pictures.draw_pictures(workdir, out, split, video, top_per_class,
                                  score_threshold)
  except (pictures.NoRunError, ConfigError, DataError, ValueError) as e:
    return cli.command_error(PROG, e)
  print(f"{len(files)} files in {out}; open {files[-1]}", flush=True)
  return 0


def main(argv=None) -> int:
  """Runs the command on `argv` (without the program name); returns the exit status."""
  values, status = cli.parse_command(PROG, __doc__, _define_flags,
                                     sys.argv[1:] if argv is None else argv)
  if values is None:
    return status
  if not values.workdir:
    return cli.command_error(PROG, "--workdir is required (see --help)")
  logging.set_verbosity(logging.WARNING)   # Not the checkpoint library's chatter.
  workdir = os.path.abspath(os.path.expanduser(values.workdir))
  out = values.out or os.path.join(workdir, "plots")
  return run(workdir, out, values.split, values.video, values.top_per_class,
             values.score_threshold)


if __name__ == "__main__":
  sys.exit(main())
