"""Untrusted values in messages, bounded: a short repr built without the whole one.

`short_repr(value)` shows a bounded prefix of any value, descending into
containers only as far as it needs (`{value!r:.80}` would build the whole repr
first: a crafted 1 kB file can expand to gigabytes); `short_text(error)` is an
exception's message on one line; `tree_size` counts a nested value's entries up
to a cap. The unpicklers of `salx.core.torch_format` and `salx.datasets.npy`
and every reader that names an untrusted value use them.
"""

from __future__ import annotations

import numpy as np

# How deep short_repr descends.
_REPR_DEPTH = 12
_CONTAINERS = (list, tuple, dict, set, frozenset)


def is_container(value) -> bool:
  return isinstance(value, _CONTAINERS) or (
      isinstance(value, np.ndarray) and value.dtype.hasobject)


def container_length(container) -> int:
  return container.size if isinstance(container, np.ndarray) else len(container)


def tree_size(value, limit: int) -> int:
  """Objects in `value` counted as a tree (a shared one once per reference).

  Stops counting past `limit` (returns a number above it): a list shared ten times
  ten levels deep costs about `limit` steps, not 10^10; a cycle is infinite.
  """
  count, stack = 0, [value]
  while stack:
    item = stack.pop()
    count += 1
    if count + len(stack) > limit:
      return limit + 1
    if isinstance(item, dict):
      if count + len(stack) + 2 * len(item) > limit:
        return limit + 1
      stack.extend(item.keys())
      stack.extend(item.values())
    elif is_container(item):
      if count + len(stack) + container_length(item) > limit:
        return limit + 1
      stack.extend(item.flat if isinstance(item, np.ndarray) else item)
  return count


def _text_repr(value, limit: int) -> str:
  if isinstance(value, str):
    return repr(str(value[:limit])) + ("..." if len(value) > limit else "")
  return repr(bytes(value[:limit])) + ("..." if len(value) > limit else "")


def _leaf_repr(value, limit: int) -> str:
  """The repr of a non-container, bounded (a huge int or array is described)."""
  if isinstance(value, (str, bytes, bytearray)):
    return _text_repr(value, limit)
  if isinstance(value, int) and not isinstance(value, bool):
    bits = value.bit_length()
    return repr(value) if bits <= 256 else f"<int of {bits} bits>"
  if isinstance(value, np.ndarray):
    if value.size <= 8 and not value.dtype.hasobject and value.ndim <= 2:
      return repr(value)
    return f"<{value.dtype.str} array of shape {tuple(value.shape)}>"
  if isinstance(value, np.dtype):
    return repr(value) if not value.names or len(value.names) <= 4 else (
        f"<dtype of {len(value.names)} fields>")
  if isinstance(value, (float, complex, bool, type(None), np.number, np.bool_)):
    return repr(value)
  if isinstance(value, (np.str_, np.bytes_)):
    return _text_repr(value, limit)
  return f"<{type(value).__name__.lstrip('_')}>"   # An unpickler's stand-in: its kind.


def _repr_pieces(value, limit: int, depth: int):
  """The repr of `value` piece by piece, each piece non-empty and bounded."""
  if not is_container(value):
    yield _leaf_repr(value, limit)
    return
  if isinstance(value, np.ndarray):
    opening, closing, items = "array([", "], dtype=object)", value.flat
  elif isinstance(value, dict):
    name = "" if type(value) is dict else type(value).__name__  # pylint: disable=unidiomatic-typecheck
    opening, closing, items = name + ("({" if name else "{"), "})" if name else "}", value
  elif isinstance(value, list):
    opening, closing, items = "[", "]", value
  elif isinstance(value, tuple):
    opening, closing, items = "(", ",)" if len(value) == 1 else ")", value
  else:
    opening, closing, items = type(value).__name__ + "({", "})", value
  if depth <= 0:
    yield opening + "..." + closing
    return
  yield opening
  for i, item in enumerate(items):
    if i:
      yield ", "
    if isinstance(value, dict):
      yield from _repr_pieces(item, limit, depth - 1)
      yield ": "
      item = dict.__getitem__(value, item)
    yield from _repr_pieces(item, limit, depth - 1)
  yield closing


def short_repr(value, limit: int = 80) -> str:
  """The repr of an untrusted `value`, cut to `limit` characters ('...' when cut).

  Builds no more than about `limit` characters: `f"{value!r:.80}"` builds the whole
  repr first, which for a 500-byte pickle of shared lists is 10^10 characters.
  Strings and bytes are cut, huge ints and arrays described, other objects named
  by their type.
  """
  pieces, size = [], 0
  for piece in _repr_pieces(value, limit, _REPR_DEPTH):
    pieces.append(piece)
    size += len(piece)
    if size > limit:
      break
  text = "".join(pieces)
  return text if len(text) <= limit else text[:max(limit - 3, 0)] + "..."


def short_text(text, limit: int = 300) -> str:
  """`text` (or an exception's message) on one line, cut to `limit` characters.

  An exception whose arguments are not plain strings and small ints (a KeyError
  of an untrusted key) is shown through `short_repr`, never `str(error)`.
  """
  if isinstance(text, BaseException):
    args = text.args
    if all(isinstance(a, str) or (isinstance(a, int) and abs(a).bit_length() <= 64)
           for a in args):
      text = str(text)
    else:
      text = ", ".join(a if isinstance(a, str) else short_repr(a, limit) for a in args)
  text = " ".join(str(text)[:4 * limit].split())
  return text if len(text) <= limit else text[:limit - 3] + "..."
