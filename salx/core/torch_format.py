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

    state = read_torch_file("CAS_Only.pkl")     # {'encoder.0.weight': ndarray [H, D, 3], ...}

Writing is `salx.core.torch_writer`.
"""

from __future__ import annotations

import collections
import dataclasses
import io
import os
import pickle
import struct
import zipfile
from typing import Any, Callable, Dict, Tuple

import numpy as np

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
               f"{storage_offset!r:.40}, {size!r:.80}, {stride!r:.80}")
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


class _Unpickler(pickle.Unpickler):
  """Resolves only ALLOWED_GLOBALS; storages become _StorageRef via persistent_load."""

  def __init__(self, file, storages: Dict[str, _StorageRef]):
    super().__init__(file)
    self._storages = storages

  def find_class(self, module, name):
    full = f"{module}.{name}"
    if full not in _GLOBALS:
      raise _Bad(f"refused global {full} (a checkpoint may hold only tensors, "
                 "OrderedDicts and plain values)")
    return _GLOBALS[full]

  def persistent_load(self, pid):
    # Zip format: ('storage', type, key, location, numel); the legacy format adds
    # a view, None since torch 0.4. The location ('cuda:0') is ignored.
    if not (isinstance(pid, tuple) and len(pid) in (5, 6) and pid[0] == "storage"):
      raise _Bad(f"unknown persistent id {pid!r:.80}")
    stype, key, numel = pid[1], pid[2], pid[4]
    if not (isinstance(stype, _StorageType) and isinstance(key, str) and _is_int(numel)):
      raise _Bad(f"malformed storage id {pid!r:.80}")
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


def _materialize(obj, fetch: Callable[[_StorageRef], np.ndarray] | None):
  """Replaces tensor and storage stand-ins by numpy arrays (TensorInfo if fetch is None).

  fetch(storage) -> its elements [numel] in native byte order; each storage is read once.
  """
  cache: Dict[str, np.ndarray] = {}

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
    obj = _Unpickler(io.BytesIO(_read_exactly(data, info.file_size, pickles[0])),
                     storages).load()

  def fetch(ref: _StorageRef) -> np.ndarray:
    name = f"{prefix}data/{ref.key}"
    info = _zip_record(zf, name, archive_size, f"storage record data/{ref.key}")
    nbytes = ref.numel * ref.stype.raw_dtype.itemsize
    if info.file_size != nbytes:
      raise _Bad(f"storage record data/{ref.key} holds {info.file_size} bytes, its "
                 f"{ref.stype.name} declares {ref.numel} elements ({nbytes} bytes)")
    with zf.open(info) as record:
      return _native(_read_exactly(record, nbytes, name), ref, big_endian)

  return _materialize(obj, fetch if arrays else None)


def _read_legacy(f, file_size: int, arrays: bool):
  storages: Dict[str, _StorageRef] = {}

  def load():
    return _Unpickler(f, storages).load()

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
    return _materialize(obj, None)
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

  return _materialize(obj, fetch)


_DAMAGE = (pickle.UnpicklingError, EOFError, TypeError, ValueError, AttributeError,
           IndexError, KeyError, RecursionError, OverflowError, struct.error,
           zipfile.BadZipFile, NotImplementedError)


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
    message = f"damaged torch checkpoint ({type(e).__name__}: {e})"
  raise CheckpointFormatError(f"{path}: {' '.join(message.split())}")
