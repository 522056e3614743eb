"""JSON from untrusted files, read within a size cap and a nesting-depth cap.

`json.load` of a 200 kB file of nested brackets raises RecursionError (a traceback
wherever it is not caught), and the size of a file bounds nothing by itself. Here a
file is read only up to `MAX_JSON_BYTES`, its nesting depth is measured on the text
(strings skipped, without recursion) before it is parsed, and every failure is a
`JsonInputError` (`JsonLimitError` past a cap) whose message is one line naming
the file:

    data = json_limits.load_json("gt.json")                     # JsonInputError
    source, data = json_limits.source_and_data(path_or_data)    # EvalInputError

Errors opening the file (FileNotFoundError, PermissionError, ...) are left to the
caller, which words them for its own kind of file.
"""

from __future__ import annotations

import json
import os
import re
from typing import Any, Callable, Optional, Tuple, Union

import numpy as np

from salx.postprocess import inputs

# A predictions file of ActivityNet (4926 videos, 100 detections each) is ~50 MB.
MAX_JSON_BYTES = 512 << 20
# The evaluation formats nest 5 levels deep; metrics.json a few more.
MAX_JSON_DEPTH = 64

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.S)
_NOT_BRACKET = re.compile(r"[^\[\]{}]+")
_CHUNK = 1 << 22

PathLike = Union[str, os.PathLike]


class JsonInputError(ValueError):
  """A JSON file that is malformed (or past a cap); the message is one line naming it."""


class JsonLimitError(JsonInputError):
  """A JSON file larger than the size cap or nested deeper than the depth cap."""


def nesting_depth(text: str) -> int:
  """How deep the arrays and objects of the JSON `text` nest ('[]': 1, '5': 0).

  Brackets inside strings do not count; linear time, no recursion, memory a
  fraction of the text's. Malformed text gets a number too (json rejects it later).
  """
  brackets = _NOT_BRACKET.sub("", _STRING.sub("", text))
  codes = np.frombuffer(brackets.encode("ascii"), np.uint8)
  depth = deepest = 0
  for start in range(0, codes.size, _CHUNK):
    chunk = codes[start:start + _CHUNK]
    opens = (chunk == ord("[")) | (chunk == ord("{"))
    running = depth + np.cumsum(np.where(opens, 1, -1), dtype=np.int64)
    deepest = max(deepest, int(running.max()))
    depth = int(running[-1])
  return deepest


def _read_capped(path: str, max_bytes: int) -> bytes:
  with open(path, "rb") as f:
    data = f.read(max_bytes + 1)
  if len(data) > max_bytes:
    raise JsonLimitError(f"{path}: JSON file larger than the {max_bytes}-byte limit "
                         "(not read)")
  return data


def loads_json(data: Union[bytes, str], name: str, *,
               max_depth: int = MAX_JSON_DEPTH,
               object_pairs_hook: Optional[Callable[[list], Any]] = None) -> Any:
  """The parsed JSON `data` (bytes in UTF-8/16/32, or text) of the file `name`.

  Raises:
    JsonInputError: malformed; JsonLimitError: nested deeper than `max_depth`.
  """
  try:
    text = data if isinstance(data, str) else data.decode(json.detect_encoding(data))
  except UnicodeDecodeError as e:
    raise JsonInputError(f"{name}: malformed JSON: {e}") from None
  depth = nesting_depth(text)
  if depth > max_depth:
    raise JsonLimitError(f"{name}: JSON nested {depth} levels deep, more than the "
                         f"limit of {max_depth}")
  try:
    return json.loads(text, object_pairs_hook=object_pairs_hook)
  except json.JSONDecodeError as e:
    raise JsonInputError(f"{name}: malformed JSON: {e}") from None
  except RecursionError:   # Only if the depth scan above were wrong.
    raise JsonLimitError(f"{name}: JSON nested too deep to parse") from None


def load_json(path: PathLike, *, max_bytes: int = MAX_JSON_BYTES,
              max_depth: int = MAX_JSON_DEPTH,
              object_pairs_hook: Optional[Callable[[list], Any]] = None) -> Any:
  """The parsed content of the JSON file `path`, within the size and depth caps.

  Raises:
    OSError: the file cannot be opened or read (FileNotFoundError included).
    JsonLimitError: larger than `max_bytes` or nested deeper than `max_depth`.
    JsonInputError: malformed. Either message is one line naming the file.
  """
  path = os.fspath(path)
  return loads_json(_read_capped(path, max_bytes), path, max_depth=max_depth,
                    object_pairs_hook=object_pairs_hook)


def source_and_data(path_or_data: inputs.PathOrData) -> Tuple[str, object]:
  """`inputs.source_and_data` within the caps: (name for messages, parsed content).

  Raises:
    EvalInputError: unreadable, too large, too deep or malformed; one line naming
      the file.
  """
  if not isinstance(path_or_data, (str, os.PathLike)):
    return inputs.source_and_data(path_or_data)
  path = os.fspath(path_or_data)
  try:
    return path, load_json(path)
  except OSError as e:
    raise inputs.EvalInputError(f"{path}: cannot read: {e.strerror or e}") from None
  except JsonInputError as e:
    raise inputs.EvalInputError(str(e)) from None
