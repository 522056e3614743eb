"""Writing PyTorch's zip checkpoint format with numpy and the standard library.

`write_torch_file(state, path)` writes name -> array as `torch.save` writes an
OrderedDict of CPU tensors, so that `torch.load` (and the authors' code) reads it;
`salx.core.torch_format` reads it back.
"""

from __future__ import annotations

import os
import struct
import tempfile
import zipfile
from typing import Mapping

import numpy as np

from salx.core import torch_format

_ALIGNMENT = 64  # torch aligns each record's data in the zip to 64 bytes.

_STORAGE_OF_DTYPE = {np.dtype(v): k for k, v in torch_format.STORAGE_DTYPES.items()
                     if v != "bfloat16" and k != "UntypedStorage"}


def _pickle_int(value: int) -> bytes:
  if 0 <= value < 256:
    return b"K" + bytes([value])
  if 0 <= value < 65536:
    return b"M" + struct.pack("<H", value)
  data = value.to_bytes((value.bit_length() + 8) // 8, "little", signed=True)
  return b"\x8a" + bytes([len(data)]) + data


def _state_dict_pickle(arrays: Mapping[str, np.ndarray]) -> bytes:
  """Protocol-2 pickle, opcode by opcode, of OrderedDict(name -> tensor) as torch writes it.

  Each tensor is _rebuild_tensor_v2(storage, 0, size, stride, False, OrderedDict()),
  its storage the persistent id ('storage', torch.<dtype>Storage, key, 'cpu', numel)
  with keys '0', '1', ... in order.
  """
  def text(value: str) -> bytes:
    data = value.encode("utf-8")
    return b"X" + struct.pack("<I", len(data)) + data

  def ints(values) -> bytes:
    return b"(" + b"".join(_pickle_int(int(v)) for v in values) + b"t"

  ordered_dict = b"ccollections\nOrderedDict\n"
  out = [b"\x80\x02", ordered_dict, b")R("]
  for key, (name, array) in enumerate(arrays.items()):
    storage = f"ctorch\n{_STORAGE_OF_DTYPE[array.dtype.newbyteorder('=')]}\n".encode()
    out += [text(name), b"ctorch._utils\n_rebuild_tensor_v2\n((", text("storage"), storage,
            text(str(key)), text("cpu"), _pickle_int(array.size), b"tQ", _pickle_int(0),
            ints(array.shape), ints(torch_format.contiguous_strides(array.shape)), b"\x89", ordered_dict,
            b")RtR"]
  return b"".join(out + [b"u."])


def _add_record(zf: zipfile.ZipFile, name: str, data) -> None:
  """Adds an uncompressed record whose data starts on a 64-byte boundary, as torch does."""
  data = memoryview(data).cast("B")
  info = zipfile.ZipInfo(name, date_time=(1980, 1, 1, 0, 0, 0))
  info.file_size = len(data)
  zip64 = len(data) * 1.05 > zipfile.ZIP64_LIMIT
  header = 30 + len(name.encode("utf-8")) + 4 + (20 if zip64 else 0)
  pad = -(zf.fp.tell() + header) % _ALIGNMENT
  info.extra = b"FB" + struct.pack("<H", pad) + b"Z" * pad
  with zf.open(info, "w", force_zip64=zip64) as out:
    out.write(data)


def write_torch_file(state_dict: Mapping[str, np.ndarray], path: str | os.PathLike,
                     archive_name: str = "archive") -> None:
  """Writes name -> array as torch.save writes an OrderedDict of CPU tensors (zip format).

  The file is written next to `path` and renamed over it, so `path` is either left
  as it was or holds the complete checkpoint.

  Args:
    state_dict: parameter name -> numpy array (any shape; dtypes with a torch
      storage: float16/32/64, int8/16/32/64, uint8, bool, complex64/128).
    path: the file to write.
    archive_name: folder name of the records inside the zip.
  """
  path = os.fspath(path)
  arrays = {}
  for name, value in state_dict.items():
    array = np.asarray(value)
    if not isinstance(name, str) or array.dtype.newbyteorder("=") not in _STORAGE_OF_DTYPE:
      raise ValueError(f"{path}: cannot write {name!r} of dtype {array.dtype} as a torch tensor")
    arrays[name] = np.ascontiguousarray(array, dtype=array.dtype.newbyteorder("<"))
  folder = os.path.dirname(os.path.abspath(path))
  fd, tmp = tempfile.mkstemp(dir=folder, prefix=f".{os.path.basename(path)}.", suffix=".tmp")
  try:
    with os.fdopen(fd, "wb") as f:
      with zipfile.ZipFile(f, "w", zipfile.ZIP_STORED) as zf:
        _add_record(zf, f"{archive_name}/data.pkl", _state_dict_pickle(arrays))
        _add_record(zf, f"{archive_name}/byteorder", b"little")
        for key, array in enumerate(arrays.values()):
          _add_record(zf, f"{archive_name}/data/{key}", array.reshape(-1).view(np.uint8))
        _add_record(zf, f"{archive_name}/version", b"3\n")
      f.flush()
      os.fsync(f.fileno())
    umask = os.umask(0)
    os.umask(umask)
    os.chmod(tmp, 0o666 & ~umask)
    os.replace(tmp, path)
  except BaseException:
    if os.path.exists(tmp):
      os.remove(tmp)
    raise
