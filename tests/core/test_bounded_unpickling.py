"""Bounded unpickling and bounded reprs: a tiny pickle never builds, copies or
formats more than a small multiple of its size."""

import collections
import pickle
import struct
import time
import tracemalloc
import zipfile

import numpy as np
import pytest

from salx.core import torch_format
from salx.core import torch_writer
from salx.core.bounded_repr import short_repr, short_text, tree_size
from salx.core.torch_format import CheckpointFormatError


def _shared_lists(levels=10, fan=10):
  """Opcodes of one list shared `fan` times on each of `levels` levels (memo i)."""
  ops = b"]q\x00"
  for level in range(1, levels + 1):
    ops += b"]q" + bytes([level]) + b"(" + (b"h" + bytes([level - 1])) * fan + b"e"
  return ops


def _value(levels=10, fan=10):
  value = []
  for _ in range(levels):
    value = [value] * fan
  return value


def _zip(path, data_pkl):
  with zipfile.ZipFile(path, "w") as zf:
    zf.writestr("ckpt/data.pkl", data_pkl)
    zf.writestr("ckpt/byteorder", b"little")
    zf.writestr("ckpt/version", b"3\n")
  return str(path)


def _legacy(path, object_pickle):
  sys_info = {"protocol_version": 1001, "little_endian": True,
              "type_sizes": {"short": 2, "int": 4, "long": 4}}
  parts = [pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, sys_info)]
  with open(path, "wb") as f:
    f.write(b"".join(parts + [object_pickle, pickle.dumps([], protocol=2)]))
  return str(path)


def _refused(path, pattern):
  """Reads `path`; asserts a one-line refusal naming it, fast and in little memory."""
  tracemalloc.start()
  start = time.monotonic()
  try:
    with pytest.raises(CheckpointFormatError, match=pattern) as error:
      torch_format.read_torch_file(path)
    peak = tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()
  message = str(error.value)
  assert message.startswith(f"{path}: ") and "\n" not in message and len(message) < 1000
  assert time.monotonic() - start < 20
  assert peak < 64 << 20, peak
  return message


# ---------------------------------------------------------------------------
# Shared references.


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_a_list_shared_ten_times_ten_levels_deep_is_refused(tmp_path, layout):
  body = b"\x80\x02" + _shared_lists() + b"."
  assert len(body) < 300
  path = (_zip(tmp_path / "c.pth", body) if layout == "zip"
          else _legacy(tmp_path / "c.pth", body))
  message = _refused(path, "damaged or crafted pickle: refusing a shared list")
  assert "objects" in message and "per byte" in message


def test_shared_lists_in_a_state_dict_value_are_refused(tmp_path):
  body = (b"\x80\x02" + _shared_lists() + b"0ccollections\nOrderedDict\n)R"
          + b"(X\x01\x00\x00\x00wh\x0au.")
  _refused(_zip(tmp_path / "c.pth", body), "refusing a shared list")


def test_a_tuple_shared_through_dup_is_refused(tmp_path):
  # DUP ('2') copies a reference without the memo: (x, x, x) twenty levels deep is
  # 3^20 objects (and as many steps to hash) in 63 bytes.
  body = b"\x80\x02)" + b"22\x87" * 20 + b"."
  assert len(body) < 70
  _refused(_zip(tmp_path / "c.pth", body), "refusing a shared tuple")


def test_a_list_changed_after_it_was_shared_is_refused(tmp_path):
  # Fill empty lists only after they were referenced: the memo charge saw them empty.
  body = (b"\x80\x02]q\x00]q\x01(h\x00h\x00eh\x00(K\x01e.")
  _refused(_zip(tmp_path / "c.pth", body), "append to a list the pickle has already "
           "referenced again")


def test_a_cyclic_list_is_refused(tmp_path):
  body = b"\x80\x02]q\x00h\x00a."
  _refused(_zip(tmp_path / "c.pth", body), "shared or cyclic reference")


def test_a_bytearray_larger_than_the_file_is_refused_before_allocation(tmp_path):
  body = b"\x80\x05\x96" + struct.pack("<Q", 1 << 40) + b"."
  _refused(_zip(tmp_path / "c.pth", body), r"a bytearray of 1099511627776 bytes")


def test_a_string_longer_than_the_file_is_refused_before_reading(tmp_path):
  body = b"\x80\x04\x8d" + struct.pack("<Q", 1 << 33) + b"abc."
  _refused(_legacy(tmp_path / "c.pth", body), r"declares 8589934592 bytes")


def test_honest_checkpoints_sharing_leaves_still_load(tmp_path):
  # One tensor under two keys (tied weights) and repeated strings: memo gets of
  # leaves, as torch.save writes them.
  weight = np.arange(6, dtype=np.float32).reshape(2, 3)
  path = tmp_path / "tied.pth"
  torch_writer.write_torch_file({"a.weight": weight, "b.weight": weight.copy()}, path)
  state = torch_format.read_torch_file(path)
  np.testing.assert_array_equal(state["b.weight"], weight)
  nested = {"epoch": 3, "names": ["x"] * 1000, "cfg": {"lr": 0.1, "sizes": (1, 2, 3)}}
  body = pickle.dumps(collections.OrderedDict(nested), protocol=2)
  got = torch_format.read_torch_file(_legacy(tmp_path / "plain.pth", body))
  assert got == nested and isinstance(got, collections.OrderedDict)


# ---------------------------------------------------------------------------
# short_repr, short_text, tree_size.


@pytest.mark.parametrize("value", [
    None, 3.0, float("inf"), True, 7, -12, "Run", b"\xff", [0.5, "soon"], (1,), (),
    [], {"a": [1, 2]}, [[1.0, None]], ("x", (2, 3)), np.float64(2.5), np.int64(4),
])
def test_short_repr_of_a_small_value_is_its_repr(value):
  assert short_repr(value) == repr(value)


def test_short_repr_of_shared_lists_is_built_without_the_whole_repr():
  value = _value()  # Its repr has ~4 * 10^10 characters.
  tracemalloc.start()
  start = time.monotonic()
  try:
    text = short_repr(value)
    peak = tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()
  assert text.startswith("[[[[") and text.endswith("...") and len(text) == 80
  assert time.monotonic() - start < 1 and peak < 1 << 20


@pytest.mark.parametrize("value,want", [
    ("x" * 10_000, "'" + "x" * 76 + "..."),
    (10 ** 5000, "<int of 16610 bits>"),
    (np.zeros((1000, 1000)), "<<f8 array of shape (1000, 1000)>"),
    (object(), "<object>"),
], ids=["long_str", "huge_int", "big_array", "object"])
def test_short_repr_cuts_or_describes_large_values(value, want):
  assert short_repr(value) == want[:80]


def test_short_repr_limit_and_depth():
  assert len(short_repr(list(range(10_000)), 20)) == 20
  deep = []
  for _ in range(1000):
    deep = [deep]
  assert short_repr(deep, 200).count("[") < 40


def test_short_text_never_formats_an_untrusted_key_whole():
  error = KeyError(_value(8))
  text = short_text(error)
  assert text.startswith("[[[[") and len(text) <= 300
  assert short_text(ValueError("a\nb   c")) == "a b c"


def test_tree_size_counts_shared_references_and_stops_at_the_limit():
  assert tree_size([1, [2, 3], {"k": (4,)}], 100) == 9
  assert tree_size(_value(3), 10_000) == 1111
  start = time.monotonic()
  assert tree_size(_value(), 5000) == 5001
  cycle = []
  cycle.append(cycle)
  assert tree_size(cycle, 100) == 101
  assert time.monotonic() - start < 1
