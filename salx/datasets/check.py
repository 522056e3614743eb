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

Manifests (`salx.datasets.manifest`), instead of the checks above:

    python -m salx.datasets.check --dataset thumos14 --data_dir DIR --write_manifest M.json
    python -m salx.datasets.check --dataset thumos14 --data_dir DIR --manifest M.json

--write_manifest records every file's sha256, size, and for .npy files shape and
dtype, with the annotation counts (videos and instances per split and per class);
--manifest compares the folder with one and lists every difference, one line each
naming the file, then a summary. Exit status: 0 written, or no difference; 1
differences listed; 2 a folder that cannot be opened or an unreadable manifest.
"""

from __future__ import annotations

import sys
from typing import Optional, Sequence

from absl import flags

from salx import cli
from salx.core.bounded_repr import short_text
from salx.datasets import layouts
from salx.datasets import npy
from salx.datasets import validate

PROG = "python -m salx.datasets.check"
EXIT_BAD_INPUT = 2
EXIT_INTERNAL_ERROR = 1
EXIT_INTERRUPTED = 130
_FLAG_NAMES = ("dataset", "data_dir", "layout", "duration_tolerance", "help",
               "write_manifest", "manifest")


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
  flags.DEFINE_string("write_manifest", None, "Write the folder's manifest (every "
                      "file's sha256, size, .npy shape and dtype, the annotation "
                      "counts) to this JSON file instead of checking.",
                      flag_values=flag_values)
  flags.DEFINE_string("manifest", None, "Compare the folder with this manifest instead "
                      "of checking: every difference, one line each.",
                      flag_values=flag_values)


def _usage_error(message: str) -> int:
  return cli.command_error(PROG, f"{message} (see --help)")


def _manifest_command(values: flags.FlagValues) -> int:
  """--write_manifest or --manifest: the exit status (module docstring)."""
  from salx.datasets import manifest  # pylint: disable=g-import-not-at-top
  from salx.datasets.errors import DataError  # pylint: disable=g-import-not-at-top
  if values.write_manifest:
    try:
      written = manifest.make_manifest(values.data_dir, values.dataset, values.layout,
                                       skip=values.write_manifest)
      manifest.write_manifest(values.write_manifest, written)
    except (DataError, OSError) as e:
      return cli.command_error(PROG, e)
    annotations = written["annotations"]
    print(f"wrote {values.write_manifest}: {len(written['files'])} files, "
          f"{annotations['videos']['train']} train / {annotations['videos']['test']} "
          f"test videos of {values.dataset} in the {annotations['layout']} layout at "
          f"{values.data_dir}", flush=True)
    return validate.EXIT_CLEAN
  try:
    expected = manifest.read_manifest(values.manifest)
  except DataError as e:
    return cli.command_error(PROG, e)
  count = 0
  for difference in manifest.compare(values.data_dir, expected, values.dataset,
                                     values.layout, skip=values.manifest):
    print(difference, flush=True)
    count += 1
  if count:
    print(f"{count} difference{'s' if count > 1 else ''} between {values.data_dir} "
          f"and the manifest {values.manifest}", flush=True)
    return validate.EXIT_PROBLEMS
  print(f"{values.data_dir} matches the manifest {values.manifest} "
        f"({len(expected['files'])} files)", flush=True)
  return validate.EXIT_CLEAN


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Runs the command on `argv` (the flags, without the program name)."""
  values, status = cli.parse_command(PROG, __doc__, _define_flags,
                                     sys.argv[1:] if argv is None else argv)
  if values is None:
    return status
  for name in ("dataset", "data_dir"):
    if values[name].value is None:
      return _usage_error(f"--{name} is required")
  if values.write_manifest and values.manifest:
    return _usage_error("give --write_manifest or --manifest, not both")
  try:
    if values.write_manifest or values.manifest:
      return _manifest_command(values)
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
