"""Scalars of a run's TensorBoard event files, read without TensorFlow.

The trainer's metric writer (clu) logs the training losses only there:
workdir/events.out.tfevents.*, one file per process start (a resumed run adds one).
An event file is a sequence of TFRecords (little-endian uint64 length, uint32 CRC,
the bytes, uint32 CRC), each an `Event` protocol buffer: step (field 2) and a
`Summary` (field 5) of values, each a tag (1) and either a `simple_value` float (2)
or a scalar `TensorProto` (8: dtype 1, tensor_content 4, float_val 5, double_val 6).
Only those fields are decoded; the CRCs are not checked, and a record cut short (a
file still being written) ends its file.

    read_scalars(workdir, prefix="train/")
    # [{"step": 25, "loss": 4.1, "mil": 0.6, ...}, ...]
"""

from __future__ import annotations

import glob
import os
import struct
from typing import Dict, Iterator, List, Optional, Tuple

EVENT_GLOB = "events.out.tfevents.*"
_DT_FLOAT, _DT_DOUBLE = 1, 2


def _varint(buf: bytes, pos: int) -> Tuple[int, int]:
  value, shift = 0, 0
  while True:
    if pos >= len(buf) or shift > 63:
      raise ValueError("truncated varint")
    byte = buf[pos]
    value |= (byte & 0x7F) << shift
    pos += 1
    shift += 7
    if not byte & 0x80:
      return value, pos


def fields(buf: bytes) -> Iterator[Tuple[int, int, object]]:
  """(field number, wire type, value) of a protocol buffer message.

  Values: int (varint), bytes (length-delimited, 8-byte and 4-byte fixed).
  """
  pos = 0
  while pos < len(buf):
    key, pos = _varint(buf, pos)
    number, wire = key >> 3, key & 7
    if wire == 0:
      value, pos = _varint(buf, pos)
    elif wire in (1, 5):
      size = 8 if wire == 1 else 4
      value, pos = buf[pos:pos + size], pos + size
    elif wire == 2:
      size, pos = _varint(buf, pos)
      value, pos = buf[pos:pos + size], pos + size
    else:
      raise ValueError(f"unsupported wire type {wire}")
    if pos > len(buf):
      raise ValueError("truncated field")
    yield number, wire, value


def _tensor_scalar(buf: bytes) -> Optional[float]:
  """The value of a scalar float or double TensorProto, None for other tensors."""
  dtype, content, values = None, None, []
  for number, wire, value in fields(buf):
    if number == 1 and wire == 0:
      dtype = value
    elif number == 4 and wire == 2:
      content = value
    elif number in (5, 6):
      fmt = "<f" if number == 5 else "<d"
      size = struct.calcsize(fmt)
      values += [v for (v,) in struct.iter_unpack(fmt, value[:len(value) // size * size])]
  if dtype == _DT_FLOAT and content is not None and len(content) == 4:
    return struct.unpack("<f", content)[0]
  if dtype == _DT_DOUBLE and content is not None and len(content) == 8:
    return struct.unpack("<d", content)[0]
  if dtype in (_DT_FLOAT, _DT_DOUBLE) and len(values) == 1:
    return values[0]
  return None


def _summary_values(buf: bytes) -> Iterator[Tuple[str, float]]:
  for number, wire, value in fields(buf):
    if number != 1 or wire != 2:
      continue
    tag, scalar = None, None
    for n, w, v in fields(value):
      if n == 1 and w == 2:
        tag = v.decode("utf-8", "replace")
      elif n == 2 and w == 5:
        scalar = struct.unpack("<f", v)[0]
      elif n == 8 and w == 2:
        scalar = _tensor_scalar(v)
    if tag is not None and scalar is not None:
      yield tag, float(scalar)


def records(path: str) -> Iterator[bytes]:
  """The TFRecord payloads of file `path` (a record cut short ends the file)."""
  with open(path, "rb") as f:
    data = f.read()
  pos = 0
  while pos + 12 <= len(data):
    (length,) = struct.unpack_from("<Q", data, pos)
    end = pos + 12 + length
    if end + 4 > len(data):
      return
    yield data[pos + 12:end]
    pos = end + 4


def file_scalars(path: str) -> Iterator[Tuple[int, str, float]]:
  """(step, tag, value) of every scalar in the event file `path`.

  Raises:
    ValueError: a record that is no event protocol buffer (names the file).
  """
  for payload in records(path):
    try:
      step, summary = 0, None
      for number, wire, value in fields(payload):
        if number == 2 and wire == 0:
          step = value - (1 << 64) if value >= 1 << 63 else value
        elif number == 5 and wire == 2:
          summary = value
      if summary is not None:
        for tag, value in _summary_values(summary):
          yield step, tag, value
    except (ValueError, struct.error) as e:
      raise ValueError(f"{path}: not a TensorBoard event file ({e})") from None


def read_scalars(workdir: str, prefix: str = "train/") -> List[Dict[str, float]]:
  """Per step, the scalars whose tag starts with `prefix` (prefix removed).

  Event files are read in the order of their names (their start time); a step
  logged again by a resumed run keeps the later value.

  Returns:
    [{'step': s, tag: value, ...}] sorted by step; [] without event files.
  """
  by_step: Dict[int, Dict[str, float]] = {}
  for path in sorted(glob.glob(os.path.join(workdir, EVENT_GLOB))):
    for step, tag, value in file_scalars(path):
      if tag.startswith(prefix):
        by_step.setdefault(step, {})[tag[len(prefix):]] = value
  return [dict(step=step, **by_step[step]) for step in sorted(by_step)]
