"""W-TALC's one-pickle feature file, read and written one video at a time.

    for index, features in iter_object_array("Thumos14reduced-I3D-JOINTFeatures.npy"):
      ...                                      # [L, 2048], entry `index`, in file order
    write_object_array("out.npy", count=V, items=(features of each video ...))

The file is a .npy object array: a pickle whose state list holds one pickled
ndarray per video. `npy.read_npy` (and the layout's reader) rebuilds all of it at
once; here an entry is handed over as soon as the pickle has built it, and the
unpickler forgets it (its stack slot and memo entries), so memory holds a couple
of videos whatever the file's size. The unpickler is `npy`'s restricted one: the
same globals, the same bounds, the same refusals (`npy.UnsafeFileError`).

The writer pickles the outer array by hand around items pickled one by one
(pickle protocol 3, no memo): `np.load(allow_pickle=True)` and every salx reader
read the file as the array `npy.object_array(items)`.
"""

from __future__ import annotations

import os
import pickle
import queue
import threading
from typing import Any, Iterable, Iterator, Tuple

import numpy as np

from salx.core.bounded_repr import short_text
from salx.datasets import npy
from salx.datasets.errors import DataError, PathLike

# Memo entries at least this large (bytes, text) are forgotten once their video has
# been handed over.
_HEAVY_BYTES = 1024
_RECONSTRUCT = np.empty(0).__reduce__()[0]


class _Taken:
  """What stays in the pickle's list in place of an entry handed over."""
  __slots__ = ("index",)

  def __init__(self, index: int):
    self.index = index

  def __reduce__(self):   # Never pickled; refuse loudly if it ever were.
    raise TypeError("a handed-over W-TALC entry cannot be pickled")


class _Cancelled(Exception):
  """The reader's consumer stopped; the unpickler stops too."""


def _heavy(value: Any, depth: int = 2) -> bool:
  """Whether a memo entry holds a video's data (an array, its bytes or a state
  tuple around them)."""
  if isinstance(value, np.ndarray):
    return True
  if isinstance(value, (bytes, bytearray, str)):
    return len(value) >= _HEAVY_BYTES
  if depth and isinstance(value, (tuple, list)):
    return any(_heavy(v, depth - 1) for v in value)
  return False


class _Memo(dict):
  """The unpickler's memo, remembering which entries hold a video's data."""

  def __init__(self):
    super().__init__()
    self.heavy = []

  def __setitem__(self, key, value):
    super().__setitem__(key, value)
    if _heavy(value):
      self.heavy.append(key)

  def forget_heavy(self) -> None:
    for key in self.heavy:
      if key in self:
        dict.__setitem__(self, key, None)
    self.heavy.clear()


class _StreamingUnpickler(npy._RestrictedUnpickler):  # pylint: disable=protected-access
  """`npy`'s restricted unpickler that hands over every numeric array it builds."""

  dispatch = dict(npy._RestrictedUnpickler.dispatch)  # pylint: disable=protected-access
  _build = dispatch[pickle.BUILD[0]]

  def __init__(self, file, path: str, data_bytes: int, hand_over):
    super().__init__(file, path, data_bytes)
    self.memo = _Memo()
    self._hand_over = hand_over
    self._count = 0

  def _load_build_and_hand_over(self):
    inst = self.stack[-2]
    type(self)._build(self)
    if isinstance(inst, np.ndarray) and not inst.dtype.hasobject:
      self.stack[-1] = _Taken(self._count)
      self.memo.forget_heavy()
      self._hand_over(self._count, inst)
      self._count += 1

  dispatch[pickle.BUILD[0]] = _load_build_and_hand_over


def _check_outer(array: Any, path: str, shape: Tuple[int, ...], count: int) -> None:
  """The pickle held an object array of `shape` whose entries were all handed over,
  in order."""
  ok = (isinstance(array, np.ndarray) and array.dtype.hasobject
        and tuple(array.shape) == shape and array.ndim == 1 and count == array.size
        and all(isinstance(v, _Taken) and v.index == i for i, v in enumerate(array)))
  if not ok:
    raise DataError(f"{path}: not a W-TALC feature file: expected a 1-D object array "
                    f"of {shape[0] if shape else '?'} numeric arrays, one per video",
                    path)


def iter_object_array(path: PathLike) -> Iterator[Tuple[int, np.ndarray]]:
  """(index, array) of every entry of a .npy object array of numeric arrays, in order.

  The pickle is read in a worker thread that waits while an entry is being used,
  so at most about two entries are in memory. The last item comes only once the
  whole file has been checked.

  Raises:
    DataError: not a readable .npy object array of numeric arrays, or a damaged
      pickle (also after some entries were yielded); UnsafeFileError for a crafted
      one (`npy`).
  """
  path = os.fspath(path)
  handoff: "queue.Queue[Tuple[str, Any]]" = queue.Queue(maxsize=1)
  cancelled = threading.Event()

  def put(item) -> None:
    while True:
      if cancelled.is_set():
        raise _Cancelled()
      try:
        handoff.put(item, timeout=0.1)
        return
      except queue.Full:
        continue

  def work() -> None:
    try:
      with npy._open(path) as f:  # pylint: disable=protected-access
        shape, dtype, left = npy._read_header(f, path)  # pylint: disable=protected-access
        if not dtype.hasobject or len(shape) != 1:
          raise DataError(f"{path}: holds a {dtype} array of shape {shape}, not "
                          "W-TALC's 1-D object array of per-video features", path)
        unpickler = _StreamingUnpickler(f, path, left,
                                        lambda i, a: put(("item", (i, a))))
        try:
          array = unpickler.load()
        except (DataError, _Cancelled):
          raise
        except Exception as e:  # pylint: disable=broad-except
          raise DataError(f"{path}: unreadable pickled array ({type(e).__name__}: "
                          f"{short_text(e)})", path) from None
        _check_outer(array, path, shape, unpickler._count)  # pylint: disable=protected-access
      put(("done", None))
    except _Cancelled:
      pass
    except BaseException as e:  # pylint: disable=broad-except
      try:
        put(("error", e))
      except _Cancelled:
        pass

  worker = threading.Thread(target=work, name="wtalc-reader", daemon=True)
  worker.start()
  try:
    while True:
      kind, value = handoff.get()
      if kind == "item":
        yield value
        value = None
      elif kind == "error":
        raise value
      else:
        return
  finally:
    cancelled.set()
    while worker.is_alive():
      try:
        handoff.get(timeout=0.1)
      except queue.Empty:
        pass
    worker.join()


# ------------------------------------------------------------------------- writing


class _OuterArray:
  """Stands for the object array of `count` entries while its pickle is written."""

  def __init__(self, count: int, items: Iterable[np.ndarray]):
    self.count, self.items = count, items
    self.state_list: list = []


class _StreamingPickler(pickle._Pickler):  # pylint: disable=protected-access
  """Pickles an `_OuterArray` as numpy pickles an object array, its entries taken
  from an iterable one at a time (no memo: nothing is kept)."""

  dispatch = dict(pickle._Pickler.dispatch)  # pylint: disable=protected-access

  def __init__(self, file, outer: _OuterArray):
    super().__init__(file, protocol=3)
    self.fast = True
    self._outer = outer
    self.written = 0

  def reducer_override(self, obj):
    if obj is self._outer:
      return (_RECONSTRUCT, (np.ndarray, (0,), b"b"),
              (1, (obj.count,), np.dtype(object), False, obj.state_list))
    return NotImplemented

  def _save_list(self, obj):
    if obj is not self._outer.state_list:
      pickle._Pickler.save_list(self, obj)  # pylint: disable=protected-access
      return
    self.write(pickle.EMPTY_LIST)
    for item in self._outer.items:
      if self.written >= self._outer.count:
        raise DataError(f"more than the {self._outer.count} entries announced")
      self.save(np.asarray(item))
      self.write(pickle.APPEND)
      self.written += 1
    if self.written != self._outer.count:
      raise DataError(f"{self.written} entries written, {self._outer.count} announced")

  dispatch[list] = _save_list


def write_object_array(path: PathLike, count: int, items: Iterable[np.ndarray]) -> None:
  """Writes `items` (exactly `count` arrays) as the .npy object array of them,
  one at a time: memory holds one item.

  Raises:
    DataError: `items` gives more or fewer than `count` arrays (the file is then
      incomplete: write it into a folder that is discarded on error).
  """
  outer = _OuterArray(int(count), items)
  with open(os.fspath(path), "wb") as f:
    np.lib.format.write_array_header_1_0(
        f, {"descr": "|O", "fortran_order": False, "shape": (outer.count,)})
    _StreamingPickler(f, outer).dump(outer)
