r"""Converts a feature data folder between the BaS-Net/SAL, W-TALC and ACM-Net layouts.

    python -m salx.datasets.convert --dataset thumos14 --from sal --to wtalc \
        --data_dir BaS-Net/THUMOS14 --out W-TALC/THUMOS14 [--overwrite]

Every video of the train and test splits with its annotations (instances, durations,
split lists in order, class list) is read and written one video at a time, so memory
holds a couple of videos whatever the dataset's size; W-TALC's one feature pickle is
read and written entry by entry (`salx.datasets.layout_conversion`). The output is
staged in OUT.partial-<random> and renamed to OUT when complete: a killed conversion
leaves no folder named OUT (delete a leftover OUT.partial-* by hand). A progress bar
counts the videos on stderr when it is a terminal.

Layouts: 'sal' (gt.json, split_{train,test}.txt, features/{train,test}/{rgb,flow}/),
'wtalc' (<Prefix>-I3D-JOINTFeatures.npy and <Prefix>-Annotations/), 'acmnet'
(gt.json, split_{train,test}.txt, {train,test}/<video>.npy). Check the result with
python -m salx.datasets.check --dataset D --data_dir OUT.

Exit status: 0 converted; 2 bad flags, a data folder that cannot be read or holds
what the target layout cannot store, or an OUT that exists without --overwrite (one
line naming the flag or file on stderr); 1 an internal error; 130 interrupted
(nothing left named OUT).
"""

from __future__ import annotations

import signal
import sys
import threading
from typing import Optional, Sequence

from absl import flags

from salx import cli
from salx.core.constants import FEATURE_DIM
from salx.core.bounded_repr import short_text
from salx.datasets import layout_conversion
from salx.datasets import layouts
from salx.datasets.errors import DataError

PROG = "python -m salx.datasets.convert"
EXIT_INTERNAL_ERROR = 1
EXIT_INTERRUPTED = 130


def _define_flags(values: flags.FlagValues) -> None:
  """The command's flags, on their own FlagValues (importing defines nothing)."""
  flags.DEFINE_enum("dataset", None, layouts.DATASETS, "The benchmark (it names the "
                    "W-TALC files and subsets). Required.", flag_values=values)
  flags.DEFINE_enum("from", "auto", ("auto",) + layouts.LAYOUTS,
                    "The layout of --data_dir; 'auto' detects it.", flag_values=values)
  flags.DEFINE_enum("to", None, layouts.LAYOUTS, "The layout to write: sal "
                    "(BaS-Net/SAL/UM), wtalc (W-TALC/CO2-Net/DELU) or acmnet (ACM-Net). "
                    "Required.", flag_values=values)
  flags.DEFINE_string("data_dir", None, "The data folder to read. Required.",
                      flag_values=values)
  flags.DEFINE_string("out", None, "The folder to write (outside --data_dir). "
                      "Required.", flag_values=values)
  flags.DEFINE_bool("overwrite", False, "Replace --out when it exists (only once the "
                    "conversion is complete).", flag_values=values)
  flags.DEFINE_integer("feature_dim", FEATURE_DIM, "D, the width of a video's "
                       "features (RGB then flow halves).", lower_bound=2,
                       flag_values=values)


def _terminate(signum, frame) -> None:
  del signum, frame
  raise KeyboardInterrupt()


def main(argv: Optional[Sequence[str]] = None) -> int:
  """Runs the command on `argv` (without the program name); returns the exit status."""
  values, status = cli.parse_command(PROG, __doc__, _define_flags,
                                     sys.argv[1:] if argv is None else argv)
  if values is None:
    return status
  for name in ("dataset", "to", "data_dir", "out"):
    if values[name].value is None:
      return cli.command_error(PROG, f"--{name} is required (see --help)")
  main_thread = threading.current_thread() is threading.main_thread()
  if main_thread:
    previous = signal.signal(signal.SIGTERM, _terminate)   # Clean up as on Ctrl-C.
  try:
    summary = layout_conversion.convert_folder(
        values.data_dir, values.out, dataset=values.dataset,
        from_layout=values["from"].value, to_layout=values.to,
        feature_dim=values.feature_dim, overwrite=values.overwrite)
  except (DataError, ValueError) as e:
    return cli.command_error(PROG, e)
  except OSError as e:
    return cli.command_error(PROG, f"cannot read or write {e.filename or ''}: "
                             f"{e.strerror or e}")
  except KeyboardInterrupt:
    print(f"{PROG}: interrupted; nothing was written to {values.out}",
          file=sys.stderr, flush=True)
    return EXIT_INTERRUPTED
  except Exception as e:  # pylint: disable=broad-except
    print(f"{PROG}: internal error: {type(e).__name__}: {short_text(e)}",
          file=sys.stderr)
    return EXIT_INTERNAL_ERROR
  finally:
    if main_thread:
      signal.signal(signal.SIGTERM, previous)
  if summary.left_out:
    print(f"{PROG}: {summary.left_out} annotated videos are in neither split and were "
          "not converted", file=sys.stderr)
  print(f"wrote {summary.out_dir} ({summary.layout} layout, "
        f"{summary.videos['train']} train / {summary.videos['test']} test videos); "
        f"check it with python -m salx.datasets.check --dataset {values.dataset} "
        f"--data_dir {summary.out_dir}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
