"""PyTorch's checkpoint formats, read and written with numpy and the standard library.

`torch.save` pickles the object with each tensor's data replaced by a persistent id
('storage', <dtype>Storage, key, location, numel) and stores every storage's raw
bytes apart from the pickle, in one of two layouts:

- zip (torch >= 1.6): `<name>/data.pkl` (the pickle), `<name>/data/<key>` (raw
  bytes of each storage), `<name>/byteorder` ('little' or 'big'), `<name>/version`.
- legacy (torch < 1.6): five pickles in a row (magic number, protocol version, sys
  info, the object, the list of storage keys), then for each key in that list an
  8-byte element count and the storage's raw bytes.

Reading never runs code from the file: the unpickler resolves only the globals in
ALLOWED_GLOBALS (tensor rebuilding, typed storages, OrderedDict) to stand-ins of its
own and refuses every other one. Storage locations ('cuda:0') are ignored; sizes are
checked against the file before anything is allocated.

Reading is bounded by the file's size: `BoundedUnpickler` (shared with
`salx.datasets.npy`) counts what a pickle builds and every reference it takes again
(memo gets, DUP), charging a shared container its whole expanded size, and refuses a
pickle that would build or reference more than `OBJECTS_PER_BYTE` objects per byte
(a list shared ten times, ten levels deep, is 250 bytes and 10^10 objects once
copied), or that changes a container after sharing it (cycles included). Messages
show untrusted values through `short_repr`, which never builds a whole repr.

    state = read_torch_file("CAS_Only.pkl")     # {'encoder.0.weight': ndarray [H, D, 3], ...}

Writing is `salx.core.torch_writer`.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import itertools
import os
import pickle
import struct
import zipfile
from typing import Any, Callable, Dict, Tuple

import numpy as np

from salx.core.bounded_repr import (container_length, is_container, short_repr,
                                    short_text, tree_size)

_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
_PROTOCOL_VERSION = 1001
_CHUNK = 1 << 24

# torch storage class -> numpy dtype of its elements (bfloat16 is widened to float32).
STORAGE_DTYPES = {
    "DoubleStorage": "f8", "FloatStorage": "f4", "HalfStorage": "f2",
    "BFloat16Storage": "bfloat16", "LongStorage": "i8", "IntStorage": "i4",
    "ShortStorage": "i2", "CharStorage": "i1", "ByteStorage": "u1",
    "BoolStorage": "?", "ComplexDoubleStorage": "c16", "ComplexFloatStorage": "c8",
    "UntypedStorage": "u1",
}


# ---------------------------------------------------------------------------
# Bounded reading of untrusted pickles, shared with salx.datasets.npy.

# What a pickle may build or reference again, in objects: this many per byte of its
# file, plus OBJECTS_SLACK. An honest pickle builds at most one object per opcode
# (at least one byte) and takes again only leaves (strings, dtypes, tensors).
OBJECTS_PER_BYTE = 16
OBJECTS_SLACK = 1 << 16

class _CappedFile:
  """A file whose reads may not go past `size` bytes from where it stands.

  A pickle opcode declaring more bytes than the file holds is refused before
  anything is allocated for them.
  """

  def __init__(self, file, size: int):
    self._file, self._left = file, size

  def _take(self, n: int) -> int:
    if n < 0 or n > self._left:
      raise pickle.UnpicklingError(f"the pickle declares {n} bytes, but only "
                                   f"{self._left} remain in the file")
    return n

  def read(self, n: int = -1) -> bytes:
    data = self._file.read(self._left if n is None or n < 0 else self._take(n))
    self._left -= len(data)
    return data

  def readline(self) -> bytes:
    line = self._file.readline(self._left)
    self._left -= len(line)
    return line


class BoundedUnpickler(pickle._Unpickler):  # pylint: disable=protected-access
  """The pure-Python unpickler, bounded by the size of what it reads.

  Counts each object a pickle builds (one per opcode, and what a call or a BUILD
  may copy out of its arguments) and each reference it takes again (memo gets and
  DUP: a container is charged its whole tree); refuses past `OBJECTS_PER_BYTE`
  objects per byte of the file plus `OBJECTS_SLACK`. A container referenced again
  may not change afterwards (an honest pickle completes a container before taking
  it again; a cycle does not). Subclasses resolve globals (`find_class`), say how
  a refusal reads (`_refuse`) and may check a BUILD (`_check_build`).
  """

  dispatch = {}

  def __init__(self, file, size: int, **kwargs):
    super().__init__(_CappedFile(file, size), **kwargs)
    self._size = size
    self._budget = OBJECTS_PER_BYTE * size + OBJECTS_SLACK
    self._objects = 0
    self._shared: Dict[int, Any] = {}

  @property
  def budget(self) -> int:
    """The most objects the pickle may build or reference."""
    return self._budget

  def _refuse(self, message: str) -> Exception:
    return pickle.UnpicklingError(message)

  def _spend(self, count: int, what) -> None:
    self._objects += count
    if self._objects > self._budget:
      raise self._refuse(
          f"damaged or crafted pickle: refusing {what() if callable(what) else what}: "
          f"the pickle would build or reference more than {self._budget} objects "
          f"({OBJECTS_PER_BYTE} per byte of its {self._size} bytes, plus "
          f"{OBJECTS_SLACK}); shared references are counted once per use")

  def _charge_tree(self, value, what: str) -> None:
    """Charges the objects of `value` (as a tree), stopping at the budget."""
    self._spend(tree_size(value, self._budget - self._objects + 1),
                lambda: f"{what} ({short_repr(value, 40)})")

  def _check_unshared(self, container, how: str) -> None:
    if id(container) in self._shared:
      raise self._refuse(
          f"damaged or crafted pickle: refusing to {how} a {type(container).__name__} "
          "the pickle has already referenced again (a shared or cyclic reference)")

  def _check_build(self, inst, state) -> None:
    """Subclasses refuse the BUILDs they do not expect."""

  def _counted(load):  # pylint: disable=no-self-argument
    def counted(self):
      self._spend(1, "one more object")
      load(self)  # pylint: disable=not-callable
    return counted

  for _code, _load in pickle._Unpickler.dispatch.items():  # pylint: disable=protected-access
    dispatch[_code] = _counted(_load)
  del _code, _load

  def _shared_again(load):  # pylint: disable=no-self-argument
    def shared_again(self):
      load(self)  # pylint: disable=not-callable
      value = self.stack[-1]
      if is_container(value):
        self._charge_tree(value, f"a shared {type(value).__name__}")
        self._shared[id(value)] = value
      else:
        self._spend(1, "one more reference")
    return shared_again

  for _op in (pickle.GET, pickle.BINGET, pickle.LONG_BINGET, pickle.DUP):
    dispatch[_op[0]] = _shared_again(pickle._Unpickler.dispatch[_op[0]])  # pylint: disable=protected-access
  del _op

  def _load_append(self):
    self._check_unshared(self.stack[-2], "append to")
    pickle._Unpickler.load_append(self)  # pylint: disable=protected-access

  def _load_setitem(self):
    self._check_unshared(self.stack[-3], "set an item of")
    pickle._Unpickler.load_setitem(self)  # pylint: disable=protected-access

  def _marked(how: str, load):  # pylint: disable=no-self-argument
    def marked(self):
      target = self.metastack[-1][-1] if self.metastack and self.metastack[-1] else None
      self._check_unshared(target, how)
      load(self)  # pylint: disable=not-callable
    return marked

  def _charge_copy(self, value, what: str) -> None:
    """Charges what a call or a BUILD may copy out of `value`: its items, and the
    items of each container among them (the objects they hold were counted when
    the pickle built or took them)."""
    count = 1
    if is_container(value):
      items = (itertools.chain(value.keys(), value.values()) if isinstance(value, dict)
               else value.flat if isinstance(value, np.ndarray) else value)
      count += container_length(value) + sum(container_length(v) for v in items if is_container(v))
    self._spend(count, what)

  def _load_reduce(self):
    self._charge_copy(self.stack[-1], "the arguments of a call")
    pickle._Unpickler.load_reduce(self)  # pylint: disable=protected-access

  def _load_build(self):
    state, inst = self.stack[-1], self.stack[-2]
    self._check_unshared(inst, "set the state of")
    self._charge_copy(state, "a state")
    self._check_build(inst, state)
    pickle._Unpickler.load_build(self)  # pylint: disable=protected-access

  def _load_bytearray8(self):
    (size,) = struct.unpack("<Q", self.read(8))
    if size > self._size:
      raise self._refuse(f"damaged or crafted pickle: a bytearray of {size} bytes, "
                         f"more than the {self._size} bytes of the file")
    data = bytearray(size)
    self.readinto(data)
    self.append(data)

  dispatch[pickle.APPEND[0]] = _counted(_load_append)
  dispatch[pickle.SETITEM[0]] = _counted(_load_setitem)
  dispatch[pickle.APPENDS[0]] = _counted(_marked("append to",
                                                 pickle._Unpickler.load_appends))  # pylint: disable=protected-access
  dispatch[pickle.SETITEMS[0]] = _counted(_marked("set items of",
                                                  pickle._Unpickler.load_setitems))  # pylint: disable=protected-access
  dispatch[pickle.ADDITEMS[0]] = _counted(_marked("add items to",
                                                  pickle._Unpickler.load_additems))  # pylint: disable=protected-access
  dispatch[pickle.REDUCE[0]] = _counted(_load_reduce)
  dispatch[pickle.BUILD[0]] = _counted(_load_build)
  dispatch[pickle.BYTEARRAY8[0]] = _counted(_load_bytearray8)
  del _counted, _shared_again, _marked


class CheckpointFormatError(ValueError):
  """A file is not a readable torch checkpoint; the message is one line naming it."""


class _Bad(Exception):
  """Internal: a format problem, prefixed with the file name where it is caught."""


@dataclasses.dataclass(frozen=True)
class TensorInfo:
  """A tensor's shape and (numpy) dtype, read without its data."""
  shape: Tuple[int, ...]
  dtype: np.dtype


class _StandIn:
  """Base of the objects the unpickler builds; a pickle cannot modify them (BUILD)."""
  __slots__ = ()

  def __setstate__(self, state):
    raise _Bad(f"a pickle tried to modify a {type(self).__name__[1:]}")


class _StorageType(_StandIn):
  """Stands for one torch storage class (e.g. torch.FloatStorage); not callable."""
  __slots__ = ("name", "raw_dtype", "dtype")

  def __init__(self, name: str):
    bf16 = STORAGE_DTYPES[name] == "bfloat16"
    self.name = name
    self.raw_dtype = np.dtype("<u2" if bf16 else STORAGE_DTYPES[name])
    self.dtype = np.dtype("f4") if bf16 else self.raw_dtype


class _StorageRef(_StandIn):
  """One storage met in the pickle: `numel` elements of `stype`, in record `key`."""
  __slots__ = ("key", "stype", "numel")

  def __init__(self, key: str, stype: _StorageType, numel: int):
    self.key, self.stype, self.numel = key, stype, numel


class _TensorRef(_StandIn):
  """A tensor rebuilt from a storage: shape and strides in elements, from `offset`."""
  __slots__ = ("storage", "offset", "shape", "strides")

  def __init__(self, storage, offset, shape, strides):
    self.storage, self.offset, self.shape, self.strides = storage, offset, shape, strides


def _is_int(value) -> bool:
  return type(value) is int and value >= 0  # pylint: disable=unidiomatic-typecheck


def contiguous_strides(shape) -> Tuple[int, ...]:
  return tuple(int(s) for s in np.cumprod((1,) + tuple(shape)[:0:-1])[::-1]) if shape else ()


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad,
                       backward_hooks, metadata=None):
  """Stand-in for torch._utils._rebuild_tensor_v2: checks the view fits its storage."""
  del requires_grad, backward_hooks, metadata  # Not part of the weights.
  if not isinstance(storage, _StorageRef):
    raise _Bad(f"a tensor is rebuilt from {type(storage).__name__}, not from a storage")
  if not (_is_int(storage_offset) and isinstance(size, tuple) and isinstance(stride, tuple)
          and len(size) == len(stride) and all(map(_is_int, size + stride))):
    raise _Bad(f"a tensor has a malformed offset, size or stride: "
               f"{short_repr(storage_offset, 40)}, {short_repr(size)}, "
               f"{short_repr(stride)}")
  count = int(np.prod(size, dtype=object))
  if count:
    last = storage_offset + sum((n - 1) * s for n, s in zip(size, stride))
    if last >= storage.numel or count > storage.numel:
      raise _Bad(f"storage {storage.key} holds {storage.numel} elements, shorter than its "
                 f"tensor of size {list(size)}, stride {list(stride)}, offset {storage_offset}")
  return _TensorRef(storage, storage_offset, size, stride)


_GLOBALS: Dict[str, Any] = {
    "torch._utils._rebuild_tensor_v2": _rebuild_tensor_v2,
    "collections.OrderedDict": collections.OrderedDict,
    # torch pickles the typed storage classes as torch.<X>Storage, the untyped one
    # under the module that defines it.
    **{("torch.storage." if name == "UntypedStorage" else "torch.") + name: _StorageType(name)
       for name in STORAGE_DTYPES},
}
ALLOWED_GLOBALS = frozenset(_GLOBALS)


class _Unpickler(BoundedUnpickler):
  """Resolves only ALLOWED_GLOBALS; storages become _StorageRef via persistent_load.

  Bounded by `size`, the bytes of the pickle (see `BoundedUnpickler`).
  """

  dispatch = dict(BoundedUnpickler.dispatch)

  def __init__(self, file, storages: Dict[str, _StorageRef], size: int):
    super().__init__(file, size)
    self._storages = storages

  def _refuse(self, message: str) -> Exception:
    return _Bad(message)

  def _check_build(self, inst, state) -> None:
    # torch sets a state only on OrderedDicts (a state dict's _metadata); the
    # stand-ins refuse theirs themselves.
    if not isinstance(inst, (collections.OrderedDict, _StandIn)):
      raise _Bad(f"a pickle tried to set the state of a {type(inst).__name__}")

  def find_class(self, module, name):
    full = f"{module}.{name}"
    if full not in _GLOBALS:
      raise _Bad(f"refused global {short_text(full, 120)} (a checkpoint may hold only "
                 "tensors, OrderedDicts and plain values)")
    return _GLOBALS[full]

  def persistent_load(self, pid):
    # Zip format: ('storage', type, key, location, numel); the legacy format adds
    # a view, None since torch 0.4. The location ('cuda:0') is ignored.
    if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
      raise _Bad(f"unknown persistent id {short_repr(pid)}")
    stype, key, numel = pid[1], pid[2], pid[4]
    if not (isinstance(stype, _StorageType) and isinstance(key, str) and _is_int(numel)):
      raise _Bad(f"malformed storage id {short_repr(pid)}")
    if len(pid) == 6 and pid[5] is not None:
      raise _Bad(f"storage {key} is a view, which torch has not written since 0.4")
    known = self._storages.setdefault(key, _StorageRef(key, stype, numel))
    if known.stype is not stype or known.numel != numel:
      raise _Bad(f"storage {key} is declared twice with different types or sizes")
    return known


def _read_exactly(f, nbytes: int, what: str) -> bytearray:
  """Reads nbytes (already checked against the file's size) into a writable buffer."""
  buf = bytearray(nbytes)
  view, pos = memoryview(buf), 0
  while pos < nbytes:
    chunk = f.read(min(_CHUNK, nbytes - pos))
    if not chunk:
      raise _Bad(f"{what} ends after {pos} of its {nbytes} bytes")
    view[pos:pos + len(chunk)] = chunk
    pos += len(chunk)
  return buf


def _materialize(obj, fetch: Callable[[_StorageRef], np.ndarray] | None, limit: int):
  """Replaces tensor and storage stand-ins by numpy arrays (TensorInfo if fetch is None).

  fetch(storage) -> its elements [numel] in native byte order; each storage is read once.
  Copies at most `limit` objects (the unpickler's budget: shared references
  were charged there already, so an honest pickle never comes near it).
  """
  cache: Dict[str, np.ndarray] = {}
  visits = [0]

  def storage(ref: _StorageRef) -> np.ndarray:
    if ref.key not in cache:
      cache[ref.key] = fetch(ref)
    return cache[ref.key]

  def tensor(t: _TensorRef):
    if fetch is None:
      return TensorInfo(tuple(t.shape), t.storage.stype.dtype)
    base = storage(t.storage)
    if t.offset == 0 and int(np.prod(t.shape)) == base.size and (
        tuple(t.strides) == contiguous_strides(t.shape) or base.size <= 1):
      return base.reshape(t.shape)
    if int(np.prod(t.shape)) == 0:
      return np.zeros(t.shape, base.dtype)
    view = np.lib.stride_tricks.as_strided(
        base[t.offset:], t.shape, [s * base.itemsize for s in t.strides], writeable=False)
    return view.copy()

  def walk(value):
    visits[0] += 1
    if visits[0] > limit:
      raise _Bad(f"damaged or crafted pickle: its shared references expand to more "
                 f"than {limit} objects")
    if isinstance(value, _TensorRef):
      return tensor(value)
    if isinstance(value, _StorageRef):
      return (TensorInfo((value.numel,), value.stype.dtype) if fetch is None
              else storage(value))
    if isinstance(value, _StorageType):
      raise _Bad(f"the pickle holds the storage class {value.name} itself")
    if isinstance(value, dict):  # dict and OrderedDict: rebuilt, attributes dropped.
      return type(value)((k, walk(v)) for k, v in dict.items(value))
    if isinstance(value, list):
      return [walk(v) for v in value]
    if isinstance(value, tuple):
      return tuple(walk(v) for v in value)
    if isinstance(value, (set, frozenset)) and any(
        isinstance(v, (_TensorRef, _StorageRef, _StorageType)) for v in value):
      raise _Bad("the pickle holds a tensor inside a set")
    return value

  return walk(obj)


def _native(buf: bytearray, ref: _StorageRef, big_endian: bool) -> np.ndarray:
  """Raw storage bytes -> 1-D array in native byte order (bfloat16 widened to float32)."""
  raw = ref.stype.raw_dtype
  array = np.frombuffer(buf, raw.newbyteorder(">" if big_endian else "<"))
  if big_endian and raw.itemsize > 1:
    array = array.astype(raw.newbyteorder("="))
  if ref.stype.name == "BFloat16Storage":
    array = (array.astype(np.uint32) << 16).view(np.float32)
  return array


def _zip_record(zf: zipfile.ZipFile, name: str, archive_size: int, what: str) -> zipfile.ZipInfo:
  try:
    info = zf.getinfo(name)
  except KeyError:
    raise _Bad(f"missing {what} (no record {name})") from None
  if info.compress_type != zipfile.ZIP_STORED:
    raise _Bad(f"record {name} is compressed; torch stores its records uncompressed")
  if info.file_size > archive_size:
    raise _Bad(f"record {name} declares {info.file_size} bytes, more than the whole file")
  return info


def _read_zip(f, archive_size: int, arrays: bool):
  try:
    zf = zipfile.ZipFile(f)
  except zipfile.BadZipFile as e:
    raise _Bad(f"truncated or damaged zip archive ({e})") from None
  pickles = [n for n in zf.namelist() if n.count("/") == 1 and n.endswith("/data.pkl")]
  if len(pickles) != 1:
    raise _Bad(f"a torch zip archive holds one <name>/data.pkl, this one {len(pickles)}")
  prefix = pickles[0][:-len("data.pkl")]
  big_endian = False
  if prefix + "byteorder" in zf.namelist():
    order = zf.read(_zip_record(zf, prefix + "byteorder", 16, "byteorder")).strip()
    if order not in (b"little", b"big"):
      raise _Bad(f"unknown byteorder {order[:16]!r}")
    big_endian = order == b"big"
  storages: Dict[str, _StorageRef] = {}
  info = _zip_record(zf, pickles[0], archive_size, "data.pkl")
  with zf.open(info) as data:
    unpickler = _Unpickler(io.BytesIO(_read_exactly(data, info.file_size, pickles[0])),
                           storages, info.file_size)
    obj = unpickler.load()

  def fetch(ref: _StorageRef) -> np.ndarray:
    name = f"{prefix}data/{ref.key}"
    info = _zip_record(zf, name, archive_size, f"storage record data/{ref.key}")
    nbytes = ref.numel * ref.stype.raw_dtype.itemsize
    if info.file_size != nbytes:
      raise _Bad(f"storage record data/{ref.key} holds {info.file_size} bytes, its "
                 f"{ref.stype.name} declares {ref.numel} elements ({nbytes} bytes)")
    with zf.open(info) as record:
      return _native(_read_exactly(record, nbytes, name), ref, big_endian)

  return _materialize(obj, fetch if arrays else None, unpickler.budget)


def _read_legacy(f, file_size: int, arrays: bool):
  storages: Dict[str, _StorageRef] = {}
  budget = OBJECTS_PER_BYTE * file_size + OBJECTS_SLACK

  def load():
    return _Unpickler(f, storages, file_size - f.tell()).load()

  if load() != _MAGIC_NUMBER:
    raise _Bad("not a torch checkpoint (a pickle without torch's magic number)")
  if load() != _PROTOCOL_VERSION:
    raise _Bad("unsupported legacy torch protocol version")
  sys_info = load()
  big_endian = isinstance(sys_info, dict) and sys_info.get("little_endian") is False
  obj = load()
  keys = load()
  if not (isinstance(keys, list) and all(isinstance(k, str) for k in keys)):
    raise _Bad("the list of storage keys is malformed")
  if not arrays:
    return _materialize(obj, None, budget)
  offsets = {}
  for key in keys:
    if key not in storages:
      raise _Bad(f"storage {key} is listed but no tensor uses it")
    header = f.read(8)
    if len(header) != 8:
      raise _Bad(f"missing storage record {key} (the file ends at byte {f.tell()})")
    (count,) = struct.unpack(">q" if big_endian else "<q", header)
    ref = storages[key]
    nbytes = count * ref.stype.raw_dtype.itemsize
    if count != ref.numel or nbytes > file_size - f.tell():
      raise _Bad(f"storage record {key} declares {count} elements ({nbytes} bytes); its "
                 f"tensor needs {ref.numel} and {file_size - f.tell()} bytes remain")
    offsets[key] = f.tell()
    f.seek(nbytes, os.SEEK_CUR)

  def fetch(ref: _StorageRef) -> np.ndarray:
    if ref.key not in offsets:
      raise _Bad(f"missing storage record {ref.key}")
    f.seek(offsets[ref.key])
    nbytes = ref.numel * ref.stype.raw_dtype.itemsize
    return _native(_read_exactly(f, nbytes, f"storage {ref.key}"), ref, big_endian)

  return _materialize(obj, fetch, budget)


_DAMAGE = (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError,
           IndexError, KeyError, RecursionError, OverflowError, struct.error,
           zipfile.BadZipFile, NotImplementedError, MemoryError)


def read_torch_file(path: str | os.PathLike, *, arrays: bool = True) -> Any:
  """Reads a file written by `torch.save`, with tensors as numpy arrays.

  Args:
    path: a zip-format or legacy-format torch checkpoint.
    arrays: False reads only the pickle: tensors come back as TensorInfo (shape,
      dtype) and no storage is read.

  Returns:
    The saved object: dicts, OrderedDicts, lists, tuples and plain values as
    pickled, each tensor an array of its dtype (bfloat16 as float32) in native byte
    order, owned by no other tensor unless they shared a storage in torch.

  Raises:
    FileNotFoundError: no such file.
    CheckpointFormatError: not a torch checkpoint, damaged, or asks for a global
      outside ALLOWED_GLOBALS (nothing from the file is ever called).
  """
  path = os.fspath(path)
  if not os.path.isfile(path):
    raise FileNotFoundError(f"{path}: checkpoint file not found")
  try:
    with open(path, "rb") as f:
      size = os.fstat(f.fileno()).st_size
      head = f.read(4)
      f.seek(0)
      if head.startswith(b"PK"):
        return _read_zip(f, size, arrays)
      if head[:1] == b"\x80":
        return _read_legacy(f, size, arrays)
      raise _Bad("not a torch checkpoint (neither torch's zip format nor its legacy format)")
  except _Bad as e:
    message = str(e)
  except _DAMAGE as e:
    message = f"damaged torch checkpoint ({type(e).__name__}: {short_text(e)})"
  raise CheckpointFormatError(f"{path}: {' '.join(message.split())}")
