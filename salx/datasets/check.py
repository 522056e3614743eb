"""Check a feature data folder: every problem, one line each, with its file.

    python -m salx.datasets.check --dataset thumos14 --data_dir DIR [--layout auto]
        [--duration_tolerance 1.0]

Reads the folder one video at a time and lists missing or unreadable feature files,
wrong dims, NaN or infinite values, videos without annotations or labels, labels
outside the class list, repeated ids and segments outside their video (see
`salx.datasets.validate`), then a summary line.

Exit status: 0 no problems; 1 problems listed; 2 bad flags, a data folder that is
missing, not a directory, in none of the layouts or with a split of no video, or a
file unsafe to read (a crafted pickle, a video name leading outside the folder,
JSON past its size or depth cap): one line naming it on stderr; 130 interrupted.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from absl import flags

from salx import cli
from salx.core.torch_format import short_text
from salx.datasets import layouts
from salx.datasets import npy
from salx.datasets import validate

PROG = "python -m salx.datasets.check"
EXIT_BAD_INPUT = 2
EXIT_INTERNAL_ERROR = 1
EXIT_INTERRUPTED = 130
_FLAG_NAMES = ("dataset", "data_dir", "layout", "duration_tolerance", "help")


def _define_flags(flag_values: flags.FlagValues) -> None:
  """The command's flags, in their own FlagValues (so that calls do not share them)."""
  flags.DEFINE_enum("dataset", None, layouts.DATASETS, "The benchmark. Required.",
                    flag_values=flag_values)
  flags.DEFINE_string("data_dir", None, "The data folder to check. Required.",
                      flag_values=flag_values)
  flags.DEFINE_enum("layout", "auto", ("auto",) + layouts.LAYOUTS,
                    "The folder's layout; 'auto' detects it.", flag_values=flag_values)
  flags.DEFINE_float("duration_tolerance", validate.DEFAULT_DURATION_TOLERANCE,
                     "Seconds a segment may end after the video's duration.",
                     flag_values=flag_values)


def _usage_error(message: str) -> int:
  return cli.command_error(PROG, f"{message} (see --help)")


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Runs the command on `argv` (the flags, without the program name)."""
  values, status = cli.parse_command(PROG, __doc__, _define_flags,
                                     sys.argv[1:] if argv is None else argv)
  if values is None:
    return status
  for name in ("dataset", "data_dir"):
    if values[name].value is None:
      return _usage_error(f"--{name} is required")
  try:
    return validate.report(values.data_dir, values.dataset, values.layout,
                           values.duration_tolerance)
  except (validate.UnusableFolderError, npy.UnsafeFileError) as e:
    return cli.command_error(PROG, e)
  except KeyboardInterrupt:
    print(f"{PROG}: interrupted", file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED
  except Exception as e:  # pylint: disable=broad-except
    print(f"{PROG}: internal error: {type(e).__name__}: {short_text(e)}",
          file=sys.stderr)
    return EXIT_INTERNAL_ERROR


if __name__ == "__main__":
  sys.exit(main())
