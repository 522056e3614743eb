"""One rule for every way a run can fail: the exit code and the one line shown.

0 success; 1 a run that diverged (NaN loss) or an internal error; 2 bad input,
config or environment (a data folder, a checkpoint, a busy or unwritable workdir),
always as one line naming the file or field.
"""

from __future__ import annotations

import errno
from typing import Tuple

from salx.app.run_config import ConfigError
from salx.datasets.errors import DataError

EXIT_DIVERGED = 1
EXIT_BAD_INPUT = 2


class NonFiniteLossError(RuntimeError):
  """The training loss became NaN or infinite; the run stopped."""


def _one_line(text: str) -> str:
  return " ".join(str(text).split()) if "\n" not in str(text) else str(text).strip()


def bad_input_types() -> Tuple[type, ...]:
  """The exception types that mean bad input, config or environment (exit 2)."""
  from salx.app import checkpoint  # pylint: disable=g-import-not-at-top
  from salx.app import workdir_lock  # pylint: disable=g-import-not-at-top
  from salx.core import torch_format  # pylint: disable=g-import-not-at-top
  return (ConfigError, DataError, FileNotFoundError, torch_format.CheckpointFormatError,
          checkpoint.CheckpointError, workdir_lock.WorkdirError)


def is_known(error: BaseException) -> bool:
  return isinstance(error, bad_input_types() + (NonFiniteLossError, OSError))


def describe(error: BaseException) -> Tuple[int, str]:
  """(exit code, the line to print) of an exception that ended a run."""
  if isinstance(error, NonFiniteLossError):
    return EXIT_DIVERGED, f"training stopped: {_one_line(error)}"
  if isinstance(error, DataError):
    return EXIT_BAD_INPUT, f"data error: {_one_line(error)}"
  if isinstance(error, bad_input_types()):
    return EXIT_BAD_INPUT, _one_line(error)
  if isinstance(error, OSError):
    where = f" {error.filename}" if getattr(error, "filename", None) else ""
    reason = error.strerror or errno.errorcode.get(error.errno or 0, "") or str(error)
    return EXIT_BAD_INPUT, f"cannot write or read{where}: {reason}"
  return EXIT_DIVERGED, f"internal error: {type(error).__name__}: {_one_line(error)}"
