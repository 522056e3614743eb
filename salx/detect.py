r"""Detect actions in your own videos' I3D features with a trained run or an authors'
checkpoint.

    python -m salx.detect --workdir W --features feats/ --out detections.json
    python -m salx.detect --workdir W --member 2 --which latest \
        --features a.npy --features b.npy --out d.json --plots plots/
    python -m salx.detect --checkpoint CAS_Only.pkl --config configs/thumos.py \
        --features BaS-Net/THUMOS14/features/test --out d.json

Weights: --workdir, a salx run (its best params, else its latest; --member, --which),
or --checkpoint, an authors' file of the --config's method (`--config.x=y`
overrides its fields: the widths, feature_dim and T must fit the file).
Features: --features (repeatable): [L, 2048] .npy files (RGB then flow halves;
config.feature_dim wide), folders of them, or a folder holding rgb/ and flow/ of
[L, 1024] files (the BaS-Net layout's features/<split>); a video is named by its
file name. salx does not extract features: use the I3D features of the BaS-Net/UM,
W-TALC or ACM-Net releases, or extract them the same way (16-frame snippets, 25 fps).

Each video goes through the method's test-time handling (resampled to T snippets, or
whole), in padded, masked batches. Writes --out, the detections as ActivityNet JSON
({"results": {video: [{"label", "score", "segment": [start_s, end_s]}]}}), and with
--plots a timeline picture per video and index.html (as python -m salx.visualize
draws them). --fps / --frames_per_snippet (default 25 / 16) set the seconds;
--top_per_class and --score_threshold filter the detections. A progress bar counts
the videos on stderr when it is a terminal.

A file that cannot be used (missing, not .npy, unreadable, the wrong width, empty,
NaN or infinite values, RGB and flow of different lengths) is one line on stderr and
is skipped; the others go on. Exit status: 0 detections written; 2 no video could be
processed, or a bad flag, config, run or checkpoint (one line naming it); 1 an
internal error; 130 interrupted.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from salx import cli

cli.require_extra("salx.detect", "train", cli.TRAIN_MODULES)

from absl import flags
from absl import logging
from ml_collections import config_flags

from salx.core import progress_bar

PROG = "python -m salx.detect"
EXIT_INTERNAL_ERROR = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130


def _define_flags(values: flags.FlagValues, argv: Sequence[str] = ()) -> None:
  """The command's flags, on their own FlagValues (importing defines nothing);
  `argv` names the --config.field overrides to define."""
  flags.DEFINE_string("workdir", None, "A trained salx run (python -m salx.main "
                      "--workdir) whose params detect.", flag_values=values)
  flags.DEFINE_integer("member", 0, "With --workdir: the member whose params detect.",
                       lower_bound=0, flag_values=values)
  flags.DEFINE_enum("which", None, ["best", "latest"], "With --workdir: the best "
                    "params or the last saved ones (default: best, else latest).",
                    flag_values=values)
  flags.DEFINE_string("checkpoint", None, "An authors' checkpoint file (e.g. SAL's "
                      "CAS_Only.pkl) of the --config's method.", flag_values=values)
  config_flags.DEFINE_config_file(
      "config", None, "With --checkpoint: the config file (configs/*.py) describing "
      "the model; --config.field=value overrides a field.", flag_values=values,
      sys_argv=[PROG] + list(argv))
  flags.DEFINE_multi_string("features", None, "A [L, D] .npy file, a folder of them, "
                            "or a folder holding rgb/ and flow/ of [L, D/2] files. "
                            "Repeatable. Required.", flag_values=values)
  flags.DEFINE_string("out", None, "The detections' JSON file (ActivityNet format). "
                      "Required.", flag_values=values)
  flags.DEFINE_string("plots", None, "A folder for a timeline picture per video and "
                      "index.html (default: none).", flag_values=values)
  flags.DEFINE_float("fps", None, "Frames per second of the videos the features were "
                     "extracted from (default: the method's, 25).", flag_values=values)
  flags.DEFINE_integer("frames_per_snippet", None, "Frames per feature snippet "
                       "(default: the method's, 16).", lower_bound=1,
                       flag_values=values)
  flags.DEFINE_integer("top_per_class", None, "Keep at most this many detections per "
                       "video and class, the best by score (default: all).",
                       lower_bound=1, flag_values=values)
  flags.DEFINE_float("score_threshold", None, "Keep only detections scoring at least "
                     "this (default: all).", flag_values=values)
  flags.DEFINE_integer("batch_size", None, "Videos per forward (default: the config's "
                       "eval_batch_size).", lower_bound=1, flag_values=values)
  flags.DEFINE_string("class_names", None, "A classlist.txt (one class per line, the "
                      "model's class order) when the run's data folder is gone or the "
                      "dataset has no default order.", flag_values=values)


def _usage_error(message: str) -> int:
  return cli.command_error(PROG, f"{message} (see --help)")


def run(values: flags.FlagValues) -> int:
  """Detects with the parsed flags; returns the exit status (errors printed)."""
  progress_bar.note(f"{PROG}: loading the weights...")
  cli.import_quietly("tensorflow")   # Imported by the app's data feed; muted start-up.
  # Imported here so that --help answers at once.
  from salx.app import own_videos  # pylint: disable=g-import-not-at-top
  from salx.app import runtime  # pylint: disable=g-import-not-at-top

  def skipped(item) -> None:
    print(f"{PROG}: skipped {item}", file=sys.stderr, flush=True)

  try:
    if values.workdir:
      weights = own_videos.weights_of_run(values.workdir, values.member, values.which,
                                          values.class_names)
    else:
      weights = own_videos.weights_of_checkpoint(values.checkpoint, values.config,
                                                 values.class_names)
    videos, bad = own_videos.find_videos(values.features, weights.config.feature_dim)
    for item in bad:
      skipped(item)
    if not videos:
      return cli.command_error(PROG, f"no video could be processed ({len(bad)} files "
                               "skipped)")
    result = own_videos.detect(
        weights, videos, fps=values.fps, frames_per_snippet=values.frames_per_snippet,
        batch_size=values.batch_size, top_per_class=values.top_per_class,
        score_threshold=values.score_threshold, timelines=bool(values.plots),
        on_skip=skipped)
    if result.detections is None:
      return cli.command_error(PROG, f"no video could be processed "
                               f"({len(bad) + len(result.skipped)} files skipped)")
    files = own_videos.write_outputs(result, values.out, values.plots,
                                     values.top_per_class, values.score_threshold)
  except KeyboardInterrupt:
    print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED
  except Exception as e:  # pylint: disable=broad-except
    if isinstance(e, runtime.bad_input_types() + (OSError,)):
      code, line = runtime.describe(e)
      return cli.command_error(PROG, line, code)
    if isinstance(e, ValueError):
      return cli.command_error(PROG, e)
    return cli.command_error(PROG, f"internal error: {type(e).__name__}: {e}",
                             EXIT_INTERNAL_ERROR)
  detections = result.detections
  count = len(bad) + len(result.skipped)
  print(f"{len(detections)} detections in {len(detections.video_names)} videos"
        + (f" ({count} files skipped)" if count else "")
        + f" written to {files[0]}; {result.description.splitlines()[0]}", flush=True)
  if values.plots:
    print(f"pictures: open {files[-1]}", flush=True)
  return 0


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Runs the command on `argv` (without the program name); returns the exit status."""
  argv = list(sys.argv[1:] if argv is None else argv)
  values, status = cli.parse_command(PROG, __doc__,
                                     lambda v: _define_flags(v, argv), argv)
  if values is None:
    return status
  if bool(values.workdir) == bool(values.checkpoint):
    return _usage_error("give the weights: --workdir W, or --checkpoint FILE with "
                        "--config CONFIG")
  try:
    config = values.config
    if config is not None:
      config.keys()   # A config that failed to load raises here.
  except Exception as e:  # pylint: disable=broad-except
    # A config file that does not load: missing, its syntax or its get_config().
    return _usage_error(f"--config: {type(e).__name__}: {' '.join(str(e).split())}")
  if values.checkpoint and config is None:
    return _usage_error("--checkpoint needs --config, the config file of its model")
  if values.workdir and config is not None:
    return _usage_error("--config goes with --checkpoint; a --workdir run has its own")
  if not values.features:
    return _usage_error("--features is required")
  if not values.out:
    return _usage_error("--out is required")
  logging.set_verbosity(logging.WARNING)   # Not the checkpoint library's chatter.
  return run(values)


if __name__ == "__main__":
  sys.exit(main())
