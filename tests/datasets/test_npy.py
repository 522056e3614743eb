""".npy reading: the restricted unpickler runs no code and allocates no more than the
file could describe; damaged headers are refused before any allocation."""

import os
import pickle
import struct
import subprocess

import numpy as np
import pytest

from salx.datasets import npy
from salx.datasets.errors import DataError


def _npy_with_pickle(path, payload: bytes, shape, descr="|O"):
  """A .npy file whose header announces `shape` and whose data is `payload`."""
  with open(path, "wb") as f:
    np.lib.format.write_array_header_1_0(
        f, {"descr": descr, "fortran_order": False, "shape": shape})
    f.write(payload)
  return path


# Hand-made pickle opcodes (protocol 2), so that a payload can name any global
# without the test importing or running it.

def _global(module: str, name: str) -> bytes:
  return b"c" + module.encode() + b"\n" + name.encode() + b"\n"


def _text(value: str) -> bytes:
  data = value.encode()
  return b"X" + struct.pack("<I", len(data)) + data


def _call(function: bytes, *args: bytes) -> bytes:
  """function(*args), each an opcode sequence that pushes one object."""
  return function + b"(" + b"".join(args) + b"tR"


def _list(*items: bytes) -> bytes:
  return b"](" + b"".join(items) + b"e"


def _pickle(body: bytes) -> bytes:
  return b"\x80\x02" + body + b"."


def test_the_allow_list_is_exactly_numpy_arrays_dtypes_scalars_and_bytes():
  assert npy.ALLOWED_GLOBALS == {
      ("numpy.core.multiarray", "_reconstruct"),
      ("numpy._core.multiarray", "_reconstruct"),
      ("numpy.core.multiarray", "scalar"),
      ("numpy._core.multiarray", "scalar"),
      ("numpy", "ndarray"),
      ("numpy", "dtype"),
      ("_codecs", "encode"),
      ("builtins", "bytes"),
      ("__builtin__", "bytes"),
  }


def _payloads(target: str):
  """(name, pickle) of payloads that each try to create the file `target`."""
  touch = f"touch {target}"
  write = f"open({target!r}, 'w').close()"
  import_os = _call(_global("builtins", "__import__"), _text("os"))
  return [
      ("os.system", _call(_global("os", "system"), _text(touch))),
      ("posix.system", _call(_global("posix", "system"), _text(touch))),
      ("subprocess.Popen",
       _call(_global("subprocess", "Popen"), _list(_text("touch"), _text(target)))),
      ("subprocess.run",
       _call(_global("subprocess", "run"), _list(_text("touch"), _text(target)))),
      ("builtins.eval", _call(_global("builtins", "eval"), _text(write))),
      ("__builtin__.eval", _call(_global("__builtin__", "eval"), _text(write))),
      ("builtins.exec", _call(_global("builtins", "exec"), _text(write))),
      ("builtins.getattr",
       _call(_call(_global("builtins", "getattr"), import_os, _text("system")),
             _text(touch))),
      # __import__ is the first global named: its result is kept (PUT), dropped
      # (POP), then fetched (GET) for getattr.
      ("builtins.__import__",
       import_os + b"q\x000"
       + _call(_call(_global("builtins", "getattr"), b"h\x00", _text("system")),
               _text(touch))),
      ("builtins.open", _call(_global("builtins", "open"), _text(target), _text("w"))),
      ("io.open", _call(_global("io", "open"), _text(target), _text("w"))),
      ("numpy.save", _call(_global("numpy", "save"), _text(target),
                           _list(b"K\x01"))),
      ("numpy.load", _call(_global("numpy", "load"), _text(target))),
      ("numpy.core.multiarray.something_else",
       _call(_global("numpy.core.multiarray", "something_else"), _text(target))),
      ("numpy._core.multiarray.fromfile",
       _call(_global("numpy._core.multiarray", "fromfile"), _text(target))),
  ]


@pytest.mark.parametrize("index", range(len(_payloads("x"))))
def test_a_payload_is_refused_and_runs_nothing(tmp_path, index):
  target = tmp_path / "created_by_the_payload"
  name, body = _payloads(str(target))[index]
  path = _npy_with_pickle(tmp_path / "labels.npy", _pickle(body), (1,))
  with pytest.raises(DataError) as error:
    npy.read_npy(path)
  assert str(error.value).startswith(f"{path}: refusing to unpickle {name}; ")
  assert error.value.path == str(path)
  assert not target.exists()
  assert not (tmp_path / "created_by_the_payload.npy").exists()


class _Runs:
  """Pickles as a call of `function(*args)`, as a crafted file would."""

  def __init__(self, function, *args):
    self.reduced = (function, args)

  def __reduce__(self):
    return self.reduced


def test_a_payload_nested_in_an_array_of_honest_data_is_refused(tmp_path):
  target = tmp_path / "created_by_the_payload"
  values = np.empty(2, dtype=object)
  values[0] = [np.arange(3.0), "Diving"]
  values[1] = [_Runs(os.system, _Runs(str, f"touch {target}"))]
  path = tmp_path / "segments.npy"
  np.save(path, values, allow_pickle=True)
  with pytest.raises(DataError, match="refusing to unpickle posix.system"):
    npy.read_npy(path)
  assert not target.exists()


@pytest.mark.slow
def test_a_payload_in_the_array_state_is_refused(tmp_path):
  target = tmp_path / "created_by_the_payload"
  values = np.empty(1, dtype=object)
  values[0] = _Runs(subprocess.Popen, ["touch", str(target)])
  path = tmp_path / "labels.npy"
  np.save(path, values, allow_pickle=True)
  with pytest.raises(DataError, match="refusing to unpickle subprocess.Popen"):
    npy.read_npy(path)
  assert not target.exists()


# ---------------------------------------------------------------------------
# Allocations the file cannot describe.

RECONSTRUCT = _global("numpy._core.multiarray", "_reconstruct")
NDARRAY = _global("numpy", "ndarray")


def _dtype(code: str) -> bytes:
  return _call(_global("numpy", "dtype"), _text(code), b"\x89\x88")


def _shape(*dims: int) -> bytes:
  return b"(" + b"".join(b"J" + struct.pack("<i", d) for d in dims) + b"t"


def _array(shape: bytes, dtype: bytes) -> bytes:
  return _call(RECONSTRUCT, NDARRAY, shape, dtype)


def _with_state(array: bytes, shape: bytes, dtype: bytes, data: bytes) -> bytes:
  """BUILD: array.__setstate__((1, shape, dtype, False, data))."""
  return array + b"(K\x01" + shape + dtype + b"\x89" + data + b"tb"


def test_an_object_array_of_a_billion_elements_is_refused_by_its_header(tmp_path):
  # 128 bytes of header and a few of pickle announce a 1 GB array of pointers.
  path = _npy_with_pickle(tmp_path / "segments.npy", _pickle(b"N"), (134217728,))
  assert os.path.getsize(path) < 256
  with pytest.raises(DataError) as error:
    npy.read_npy(path)
  assert str(error.value).startswith(f"{path}: damaged or crafted .npy file: ")
  assert "object array of 134217728 elements" in str(error.value)


@pytest.mark.parametrize("body,what", [
    (_array(_shape(10_000_000), _dtype("O")), "object array of shape (10000000,)"),
    (_array(_shape(100_000, 100), _dtype("f8")),
     "float64 array of shape (100000, 100)"),
    (_with_state(_array(_shape(0), _dtype("O")), _shape(10_000_000), _dtype("O"),
                 b"]"), "object array of shape (10000000,)"),
    (_with_state(_array(_shape(0), _dtype("f4")), _shape(1000, 1000), _dtype("f4"),
                 b"C\x00"), "float32 array of shape (1000, 1000)"),
    (_array(_shape(10), _dtype("S100000000")), "|S100000000 array of shape (10,)"),
])
def test_an_array_larger_than_the_file_is_refused(tmp_path, body, what):
  path = _npy_with_pickle(tmp_path / "labels.npy", _pickle(body), (1,))
  with pytest.raises(DataError) as error:
    npy.read_npy(path)
  message = str(error.value)
  assert message.startswith(f"{path}: damaged or crafted pickle: refusing to build ")
  assert what in message and "bytes of data the file holds" in message


def test_an_element_list_shorter_than_the_shape_is_refused(tmp_path):
  # numpy would read past the end of the list (a crash), not raise.
  body = _with_state(_array(_shape(0), _dtype("O")), _shape(3), _dtype("O"),
                     _list(b"N"))
  path = _npy_with_pickle(tmp_path / "labels.npy", _pickle(body), (3,))
  with pytest.raises(DataError, match="comes with list data of length 1, not 3"):
    npy.read_npy(path)


def test_copying_one_array_over_and_over_is_refused(tmp_path):
  # A 64 kB bytes object, turned into an array 100 times through one reference.
  data = b"B" + struct.pack("<I", 65536) + b"\x00" * 65536 + b"q\x01"
  build = _with_state(_array(_shape(0), _dtype("u1")), _shape(65536), _dtype("u1"),
                      b"h\x01")
  body = b"\x80\x03(" + data + b"0" + build * 100 + b"l."
  path = _npy_with_pickle(tmp_path / "labels.npy", body, (100,))
  with pytest.raises(DataError, match=r"would build \d+ bytes in all, more than 4 "
                                      r"times"):
    npy.read_npy(path)


def test_making_one_structured_dtype_over_and_over_is_refused(tmp_path):
  # One list of 1000 fields (memo 0), then 100 dtypes made of it.
  fields = pickle.dumps([(f"f{i}", "u1") for i in range(1000)], protocol=2)[2:-1]
  keep_dtype = _global("numpy", "dtype") + b"r" + struct.pack("<I", 99999) + b"0"
  make = b"j" + struct.pack("<I", 99999) + b"(h\x00tR"
  body = b"\x80\x02" + fields + b"0" + keep_dtype + b"(" + make * 100 + b"l."
  assert pickle.loads(body)[0].names[-1] == "f999"   # An honest pickle otherwise.
  path = _npy_with_pickle(tmp_path / "labels.npy", body, (100,))
  with pytest.raises(DataError, match=r"refusing to build a dtype of 1000 fields: the "
                                      r"pickle would build \d+ bytes in all"):
    npy.read_npy(path)


@pytest.mark.parametrize("body,refused", [
    (_call(_global("_codecs", "encode"), _text("abc"), _text("hex")),
     "_codecs.encode of str as 'hex'"),
    (_call(_global("builtins", "bytes"), b"J\x00\xca\x9a\x3b"),
     "bytes(1000000000,)"),
    (_call(NDARRAY, _shape(10)), "not callable"),
    (_call(RECONSTRUCT, _global("numpy", "dtype"), _shape(0), _dtype("O")),
     "_reconstruct of a method, not numpy.ndarray"),
])
def test_allowed_globals_refuse_dangerous_arguments(tmp_path, body, refused):
  path = _npy_with_pickle(tmp_path / "labels.npy", _pickle(body), (1,))
  with pytest.raises(DataError) as error:
    npy.read_npy(path)
  assert str(error.value).startswith(f"{path}: ")
  assert refused in str(error.value)


def test_a_plain_array_larger_than_its_file_is_refused_before_reading(tmp_path):
  path = tmp_path / "rgb.npy"
  with open(path, "wb") as f:
    np.lib.format.write_array_header_1_0(
        f, {"descr": "<f4", "fortran_order": False, "shape": (1_000_000, 1024)})
    f.write(b"\x00" * 64)
  for read in (npy.read_npy, npy.read_npy_shape):
    with pytest.raises(DataError) as error:
      read(path)
    assert str(error.value) == (
        f"{path}: truncated or damaged .npy file: its header declares a float32 array "
        "of shape (1000000, 1024) (4096000000 bytes), but only 64 bytes follow the "
        "header")


# ---------------------------------------------------------------------------
# Honest files.


def test_python2_style_pickles_are_read(tmp_path):
  values = np.empty(3, dtype=object)
  values[0] = [b"BaseballPitch", "Diving", b""]
  values[1] = [[1.5, 2.5], np.arange(3, dtype=np.float32)]
  values[2] = np.array([b"ab", b"cd"])
  payload = pickle.dumps(values, protocol=2)
  assert b"_codecs" in payload and b"bytes" in payload
  path = _npy_with_pickle(tmp_path / "labels.npy", payload, (3,))
  loaded = npy.read_npy(path)
  assert type(loaded) is np.ndarray and loaded.shape == (3,)
  assert loaded[0] == [b"BaseballPitch", "Diving", b""]
  np.testing.assert_array_equal(loaded[1][1], np.arange(3, dtype=np.float32))
  np.testing.assert_array_equal(loaded[2], [b"ab", b"cd"])


def test_object_arrays_of_features_round_trip(tmp_path):
  rng = np.random.default_rng(0)
  features = npy.object_array([rng.standard_normal((n, 8)).astype(np.float32)
                               for n in (3, 1, 5)])
  path = tmp_path / "features.npy"
  npy.save_npy(path, features)
  loaded = npy.read_npy(path)
  assert loaded.dtype == object and loaded.shape == (3,)
  for got, want in zip(loaded, features):
    assert type(got) is np.ndarray and got.dtype == np.float32
    np.testing.assert_array_equal(got, want)


def test_numpy_scalars_in_object_arrays_are_read(tmp_path):
  values = npy.object_array([np.float64(2.5), np.str_("Run"), np.int64(7)])
  path = tmp_path / "duration.npy"
  npy.save_npy(path, values)
  assert list(npy.read_npy(path)) == [2.5, "Run", 7]


def test_truncated_pickle_is_a_clear_error(tmp_path):
  values = npy.object_array([[1.0, 2.0]])
  path = _npy_with_pickle(tmp_path / "duration.npy", pickle.dumps(values)[:-5], (1,))
  with pytest.raises(DataError, match="duration.npy: unreadable pickled array"):
    npy.read_npy(path)


def test_a_missing_file_is_a_clear_error(tmp_path):
  with pytest.raises(DataError, match="missing.npy: file not found"):
    npy.read_npy(tmp_path / "missing.npy")


def test_an_unsupported_format_version_is_named(tmp_path):
  path = tmp_path / "rgb.npy"
  path.write_bytes(b"\x93NUMPY\x09\x00" + b"\x00" * 64)
  with pytest.raises(DataError) as error:
    npy.read_npy(path)
  assert str(error.value) == f"{path}: unsupported .npy format version (9, 0)"
