"""Reading evaluation inputs: JSON files and segments, with errors that name the file."""

from __future__ import annotations

import math
import os
from typing import Mapping, Tuple, Union

PathOrData = Union[str, os.PathLike, Mapping]


class EvalInputError(ValueError):
  """Bad evaluation input; the one-line message names the file and the problem."""


def read_json(path: Union[str, os.PathLike]) -> object:
  """The parsed content of a JSON file, within `json_limits`' size and depth caps."""
  from salx.postprocess import json_limits  # pylint: disable=g-import-not-at-top
  try:
    return json_limits.load_json(path)
  except OSError as e:
    raise EvalInputError(f"{path}: cannot read: {e.strerror or e}") from None
  except json_limits.JsonInputError as e:
    raise EvalInputError(str(e)) from None


def source_and_data(path_or_data: PathOrData) -> Tuple[str, object]:
  """(name for messages, parsed content) of a JSON file or of data already parsed."""
  if isinstance(path_or_data, Mapping):
    return "<dict>", path_or_data
  return os.fspath(path_or_data), read_json(path_or_data)


def segment(value, where: str, source: str) -> Tuple[float, float]:
  """A [start, end] pair of finite numbers (strings allowed) with start <= end."""
  try:
    start, end = (float(v) for v in value)
  except (TypeError, ValueError):
    raise EvalInputError(
        f"{source}: {where}: segment must be two numbers, got {value!r}") from None
  if not (math.isfinite(start) and math.isfinite(end)):
    raise EvalInputError(f"{source}: {where}: segment {value!r} is not finite")
  if end < start:
    raise EvalInputError(f"{source}: {where}: segment end {end} < start {start}")
  return start, end
