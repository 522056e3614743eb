r"""Pictures of a trained run: detection timelines, training curves, per-class AP.

    python -m salx.visualize --workdir=/tmp/salx-demo
    python -m salx.visualize --workdir=W --split=train --video=NAME --top_per_class=5

Restores the run's config (W/metrics.json) and its best checkpoint (else the
latest), runs the model on the split's videos and writes into W/plots (or --out):
videos/<video>.png (one timeline per video: ground truth, detections marked true or
false positive at tIoU 0.5, class activation, actionness; for the training split
also the pseudo label and adaptive mask), losses.png, map.png, ap_bars.png and
index.html, a static page linking them all (open it in a browser, no server).

Exit status: 0 done, 2 no run in the workdir, a bad flag, config or data folder
(one line on stderr).
"""

from __future__ import annotations

import os
import sys

from absl import flags
from absl import logging

from salx import cli

_WORKDIR = flags.DEFINE_string("workdir", None, "Folder of a trained run "
                               "(python -m salx.main --workdir). Required.")
_OUT = flags.DEFINE_string("out", None, "Folder of the pictures (default: "
                           "WORKDIR/plots).")
_SPLIT = flags.DEFINE_enum("split", "test", ["train", "test"],
                           "Split whose videos are drawn; train adds the pseudo "
                           "labels and the adaptive mask.")
_VIDEO = flags.DEFINE_string("video", None, "Draw only this video of the split "
                             "(default: every video).")
_TOP = flags.DEFINE_integer("top_per_class", 10, "Detections shown per class in a "
                            "timeline, the best by score.", lower_bound=1)
_THRESHOLD = flags.DEFINE_float("score_threshold", None, "Show every detection "
                                "scoring at least this instead of the top per class.")
flags.mark_flags_as_required(["workdir"])


def run(workdir: str, out: str, split: str, video, top_per_class: int,
        score_threshold) -> int:
  """Draws the run's pictures; returns the exit status (errors printed, not raised)."""
  # Imported here so that --help answers at once.
  cli.import_quietly("tensorflow")   # The data feed's; muted start-up lines.
  from salx.app import pictures  # pylint: disable=g-import-not-at-top
  from salx.app.run_config import ConfigError  # pylint: disable=g-import-not-at-top
  from salx.datasets.errors import DataError  # pylint: disable=g-import-not-at-top
  from salx.app import drawing  # pylint: disable=g-import-not-at-top
  try:
    files = drawing.draw_pictures(workdir, out, split, video, top_per_class,
                                  score_threshold)
  except (pictures.NoRunError, ConfigError, DataError, ValueError) as e:
    return cli.fail(" ".join(str(e).split()))
  print(f"{len(files)} files in {out}; open {files[-1]}", flush=True)
  return 0


def main(argv):
  if len(argv) > 1:
    sys.exit(cli.fail(f"unexpected arguments: {argv[1:]}"))
  logging.set_verbosity(logging.WARNING)   # Not the checkpoint library's chatter.
  workdir = os.path.abspath(os.path.expanduser(_WORKDIR.value))
  out = _OUT.value or os.path.join(workdir, "plots")
  sys.exit(run(workdir, out, _SPLIT.value, _VIDEO.value, _TOP.value, _THRESHOLD.value))


if __name__ == "__main__":
  cli.run(main)
