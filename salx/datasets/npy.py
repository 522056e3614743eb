""".npy files: headers, plain arrays, and object arrays through a restricted unpickler.

A .npy file is a header (shape, dtype) followed by the data. Every read checks the
header against the file: a plain array needs shape x itemsize bytes after the header,
an object array (a pickle) at least one byte per element. A damaged or crafted header
is refused before anything is allocated.

Object arrays (W-TALC's files) are rebuilt by `_RestrictedUnpickler`. It resolves only
the globals of `ALLOWED_GLOBALS`, the ones numpy's own pickles of arrays, dtypes and
scalars name (and `bytes()` / `_codecs.encode(text, 'latin1')`, which Python 3 writes
for bytes under protocol 2), each replaced by a checked version:
  - `_reconstruct` / array `__setstate__`: an array's data must fit in the file (plain:
    shape x itemsize bytes; object: one byte per element), its element list must be
    as long as its shape says, and everything the pickle builds, in all, may not
    exceed `BUILD_FACTOR` times the file's size (so that one array in the file cannot
    be copied over and over through pickle references);
  - `numpy.dtype` and `scalar`: charged like arrays (a dtype by its fields);
  - `numpy.ndarray` can only be passed to `_reconstruct`, never called;
  - `_codecs.encode` only encodes text as latin-1; `bytes` only makes `b''`.
No other code can run: anything else a pickle names is refused with a DataError that
names the file and the global.

The unpickler is `salx.core.torch_format.BoundedUnpickler`: besides the bytes above,
it counts the objects a pickle builds and the references it takes again (a shared
container is charged its whole tree), so that a 1 kB file of a list shared ten times
ten levels deep is refused at once instead of expanding to 10^10 objects. Every
refusal of the unpickler is an `UnsafeFileError`: a crafted or damaged file whose
reading would be unsafe, which the dataset validator refuses outright (exit 2).
Untrusted values appear in messages through `short_repr` only.
"""

from __future__ import annotations

import codecs
import math
import os
from typing import Sequence, Tuple

import numpy as np

from salx.core.bounded_repr import short_repr, short_text
from salx.core.torch_format import BoundedUnpickler
from salx.datasets.errors import DataError, PathLike

# Everything a pickle builds, in all, is at most this many times the bytes of its
# file. An honest pickle holds the data of its arrays, and builds each at most twice
# (the bytes object of protocol 2, then the array made from it).
BUILD_FACTOR = 4

_MULTIARRAY_MODULES = ("numpy.core.multiarray", "numpy._core.multiarray")

# The (module, name) globals a feature or annotation pickle may name.
ALLOWED_GLOBALS = frozenset(
    [(m, "_reconstruct") for m in _MULTIARRAY_MODULES]
    + [(m, "scalar") for m in _MULTIARRAY_MODULES]
    + [("numpy", "ndarray"), ("numpy", "dtype"), ("_codecs", "encode"),
       ("builtins", "bytes"), ("__builtin__", "bytes")])

_RECONSTRUCT = np.empty(0).__reduce__()[0]


class UnsafeFileError(DataError):
  """A file refused as unsafe to read: a pickle naming a global outside the allow
  list or building more than its size allows, or a video name that would leave the
  data folder. The message is one line naming the file."""

_SCALAR = np.float64(0).__reduce__()[0]


def _name(dtype: np.dtype) -> str:
  """A short name of `dtype` for messages ('float32'; '|V8' for a structured one)."""
  return dtype.str if dtype.names else str(dtype)


class _NdarrayToken:
  """What a pickle's `numpy.ndarray` global resolves to: a name for `_reconstruct`."""

  def __repr__(self):
    return "numpy.ndarray"


_NDARRAY = _NdarrayToken()


def _open(path: str):
  try:
    return open(path, "rb")
  except FileNotFoundError:
    raise DataError(f"{path}: file not found", path) from None
  except OSError as e:
    raise DataError(f"{path}: cannot open ({e})", path) from e


def _read_header(f, path: str) -> Tuple[Tuple[int, ...], np.dtype, int]:
  """(shape, dtype, bytes after the header) of the open .npy file `f`.

  Leaves `f` positioned after the header.

  Raises:
    DataError: not a .npy file, or a header describing more data than the file holds.
  """
  readers = {(1, 0): np.lib.format.read_array_header_1_0,
             (2, 0): np.lib.format.read_array_header_2_0}
  try:
    version = np.lib.format.read_magic(f)
    if version in readers:
      shape, _, dtype = readers[version](f)
  except (ValueError, EOFError, OSError) as e:
    raise DataError(f"{path}: not a readable .npy file ({e})", path) from e
  if version not in readers:
    raise DataError(f"{path}: unsupported .npy format version {version}", path)
  shape = tuple(int(n) for n in shape)
  left = os.fstat(f.fileno()).st_size - f.tell()
  count = math.prod(shape)
  if dtype.hasobject and count > left:
    raise DataError(
        f"{path}: damaged or crafted .npy file: its header declares an object array "
        f"of {count} elements, but only {left} bytes follow the header", path)
  if not dtype.hasobject and count * dtype.itemsize > left:
    raise DataError(
        f"{path}: truncated or damaged .npy file: its header declares a "
        f"{_name(dtype)} array of shape {shape} ({count * dtype.itemsize} bytes), but "
        f"only {left} bytes follow the header", path)
  return shape, dtype, left


def read_npy_shape(path: PathLike) -> Tuple[int, ...]:
  """The shape of the array in a .npy file, reading only its header."""
  path = os.fspath(path)
  with _open(path) as f:
    shape, _, _ = _read_header(f, path)
  return shape


def read_npy(path: PathLike, mmap: bool = False) -> np.ndarray:
  """The array in a .npy file.

  Plain arrays are read with `np.load` (memory-mapped when `mmap`); object arrays
  (W-TALC's pickles) go through the restricted unpickler.

  Raises:
    DataError: the file is missing, unreadable, larger than its data, or holds
      anything but numpy arrays and plain data; the message names the file.
  """
  path = os.fspath(path)
  with _open(path) as f:
    shape, dtype, left = _read_header(f, path)
    if dtype.hasobject:
      return _unpickle_object_array(f, path, shape, left)
  try:
    return np.load(path, mmap_mode="r" if mmap else None, allow_pickle=False)
  except (ValueError, EOFError, OSError) as e:
    raise DataError(f"{path}: unreadable .npy file ({e})", path) from e


def save_npy(path: PathLike, array: np.ndarray) -> None:
  """Writes `array` to a .npy file (pickled when it holds objects)."""
  np.save(path, array, allow_pickle=bool(array.dtype.hasobject))


def object_array(items: Sequence) -> np.ndarray:
  """[N] object array holding `items` as they are (never stacked into more dims)."""
  array = np.empty(len(items), dtype=object)
  for i, item in enumerate(items):
    array[i] = item
  return array


def _unpickle_object_array(f, path: str, shape: Tuple[int, ...],
                           left: int) -> np.ndarray:
  try:
    array = _RestrictedUnpickler(f, path, left).load()
  except DataError:
    raise
  except Exception as e:  # pylint: disable=broad-except
    raise DataError(f"{path}: unreadable pickled array ({type(e).__name__}: "
                    f"{short_text(e)})", path) from None
  if not isinstance(array, np.ndarray) or tuple(array.shape) != shape:
    raise DataError(f"{path}: the pickle does not hold the array of shape {shape} its "
                    "header announces", path)
  return array


class _RestrictedUnpickler(BoundedUnpickler):
  """Rebuilds numpy arrays, dtypes, scalars and plain data, within a size budget.

  The pure-Python unpickler, so that BUILD (an array's `__setstate__`) can be
  checked before numpy allocates; bounded in objects by `BoundedUnpickler`.
  """

  dispatch = dict(BoundedUnpickler.dispatch)

  def __init__(self, file, path: str, data_bytes: int):
    super().__init__(file, data_bytes, encoding="latin1")
    self._path = path
    self._data_bytes = data_bytes
    self._built = 0
    self._globals = {
        **{(m, "_reconstruct"): self._reconstruct for m in _MULTIARRAY_MODULES},
        **{(m, "scalar"): self._scalar for m in _MULTIARRAY_MODULES},
        ("numpy", "ndarray"): _NDARRAY,
        ("numpy", "dtype"): self._dtype,
        ("_codecs", "encode"): self._latin1_encode,
        ("builtins", "bytes"): self._empty_bytes,
        ("__builtin__", "bytes"): self._empty_bytes,
    }
    assert set(self._globals) == ALLOWED_GLOBALS

  def find_class(self, module: str, name: str):
    try:
      return self._globals[(module, name)]
    except KeyError:
      raise self._refuse(f"refusing to unpickle {short_text(f'{module}.{name}', 120)}; "
                         "only numpy arrays, "
                         "dtypes and plain lists, strings and numbers may appear in a "
                         "feature or annotation file") from None

  def _refuse(self, message: str) -> DataError:
    return UnsafeFileError(f"{self._path}: {message}", self._path)

  def _charge(self, nbytes: int, what: str) -> None:
    """Counts `nbytes` about to be built; a DataError when the file cannot hold them."""
    if nbytes > self._data_bytes:
      raise self._refuse(
          f"damaged or crafted pickle: refusing to build {what} of {nbytes} bytes, "
          f"more than the {self._data_bytes} bytes of data the file holds")
    self._built += nbytes
    if self._built > BUILD_FACTOR * self._data_bytes:
      raise self._refuse(
          f"damaged or crafted pickle: refusing to build {what}: the pickle would "
          f"build {self._built} bytes in all, more than {BUILD_FACTOR} times the "
          f"{self._data_bytes} bytes of data the file holds")

  def _array_bytes(self, shape, dtype) -> Tuple[Tuple[int, ...], np.dtype, int]:
    """(shape, dtype, bytes charged) of an array about to be built."""
    if not isinstance(shape, tuple) or not all(
        isinstance(n, int) and not isinstance(n, bool) and n >= 0 for n in shape):
      raise self._refuse(f"damaged or crafted pickle: array shape {short_repr(shape)}")
    dtype = np.dtype(dtype)
    count = math.prod(shape)
    # An object element takes at least one byte of the pickle.
    return shape, dtype, count if dtype.hasobject else count * dtype.itemsize

  def _reconstruct(self, cls, shape, dtype):
    if cls is not _NDARRAY:
      raise self._refuse(f"damaged or crafted pickle: _reconstruct of a "
                         f"{type(cls).__name__}, not numpy.ndarray")
    shape, dtype, nbytes = self._array_bytes(shape, dtype)
    self._charge(nbytes, f"a {_name(dtype)} array of shape {shape}")
    return _RECONSTRUCT(np.ndarray, shape, dtype)

  def _dtype(self, *args):
    # The arguments are charged already (a call's, by BoundedUnpickler).
    try:
      dtype = np.dtype(*args)
    except (TypeError, ValueError) as e:
      raise self._refuse(f"damaged or crafted pickle: numpy.dtype{short_repr(args)} "
                         f"({short_text(e, 120)})") from None
    # A structured dtype holds an entry per field (which may come from one list the
    # pickle references over and over).
    self._charge(len(dtype.names or ()) + 1, f"a dtype of {len(dtype.names or ())} "
                 "fields")
    return dtype

  def _scalar(self, dtype, *data):
    if isinstance(dtype, np.dtype):
      self._charge(dtype.itemsize, f"a {_name(dtype)} scalar")
    return _SCALAR(dtype, *data)

  def _latin1_encode(self, text, encoding="utf-8"):
    if not isinstance(text, str) or encoding not in ("latin1", "latin-1"):
      raise self._refuse(f"damaged or crafted pickle: _codecs.encode of "
                         f"{type(text).__name__} as {short_repr(encoding)}")
    self._charge(len(text), "a bytes object")
    return codecs.encode(text, "latin1")

  def _empty_bytes(self, *args):
    if args:
      raise self._refuse(f"damaged or crafted pickle: bytes{short_repr(args)}")
    return b""

  def _check_build(self, inst, state) -> None:
    """BUILD: only arrays and dtypes take a state; an array's is checked first."""
    if isinstance(inst, np.ndarray):
      self._check_array_state(state)
    elif not isinstance(inst, np.dtype):
      raise self._refuse(f"damaged or crafted pickle: a state for a "
                         f"{type(inst).__name__}")

  def _check_array_state(self, state) -> None:
    """An array state (version?, shape, dtype, fortran, data) numpy may safely take."""
    if not isinstance(state, tuple) or len(state) not in (4, 5):
      raise self._refuse(f"damaged or crafted pickle: array state {short_repr(state)}")
    shape, dtype, data = state[-4], state[-3], state[-1]
    if not isinstance(dtype, np.dtype):
      raise self._refuse(f"damaged or crafted pickle: array dtype {short_repr(dtype)}")
    shape, dtype, nbytes = self._array_bytes(shape, dtype)
    what = f"a {_name(dtype)} array of shape {shape}"
    self._charge(nbytes, what)
    expected = math.prod(shape) if dtype.hasobject else nbytes
    kind = list if dtype.hasobject else (bytes, str)
    if not isinstance(data, kind) or len(data) != expected:
      raise self._refuse(f"damaged or crafted pickle: {what} comes with "
                         f"{type(data).__name__} data of length "
                         f"{len(data) if hasattr(data, '__len__') else '?'}, "
                         f"not {expected}")
