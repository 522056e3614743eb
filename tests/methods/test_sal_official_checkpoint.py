"""The authors' checkpoint files, read and written without torch."""

import collections
import json
import os
import pickle
import pickletools
import re
import struct
import sys
import tracemalloc
import zipfile

import jax
import numpy as np
import pytest

from salx.methods.sal import convert
from salx.core import torch_format
from salx.core import torch_writer
from salx.methods.sal import hparams as sal_hparams
from salx.methods.sal.model import build_model
from salx.methods.sal.method import SAL_METHOD
from tests.conftest import fixture_file

CheckpointFormatError = torch_format.CheckpointFormatError
EXPECTED = "checkpoints/official_checkpoints_expected.npz"
# Fixture output name -> SALOutputs field.
OUTPUT_FIELDS = {"cas": "cas", "cas_bg": "cas_bg", "action_flow": "action_flow",
                 "action_rgb": "action_rgb", "action_flow_aug": "action_flow_mix",
                 "action_rgb_aug": "action_rgb_mix", "sc": "video_logits",
                 "sc_flow": "video_logits_flow", "sc_rgb": "video_logits_rgb"}


@pytest.fixture
def no_torch(monkeypatch):
  """Makes `import torch` fail for the test's duration."""
  monkeypatch.setitem(sys.modules, "torch", None)


def _expected():
  with np.load(fixture_file(EXPECTED)) as data:
    arrays = {k: data[k] for k in data.files}
  return arrays, json.loads(str(arrays.pop("meta")))


def _weights(arrays, model_key):
  prefix = f"{model_key}/param/"
  return {k[len(prefix):]: v for k, v in arrays.items() if k.startswith(prefix)}


def _small_params(variant):
  """A small model's params (their tree, shapes and dtypes) holding random values."""
  variant = variant.replace(hidden_dim=4)
  model = build_model(5, variant, feature_dim=12)
  shapes = jax.eval_shape(lambda key: SAL_METHOD.init_params(model, variant, key, (2, 9, 12)),
                          jax.random.key(0))
  rng = np.random.default_rng(0)
  return jax.tree_util.tree_map(lambda s: rng.normal(size=s.shape).astype(s.dtype), shapes)


# Crafted pickles, opcode by opcode (protocol 2), as torch writes them.

def _global(module, name):
  return f"c{module}\n{name}\n".encode()


def _str(text):
  data = text.encode()
  return b"X" + struct.pack("<I", len(data)) + data


def _int(value):
  return b"\x8a\x08" + struct.pack("<q", value)


def _ints(values):
  return b"(" + b"".join(_int(v) for v in values) + b"t"


def _storage(key, numel, storage="torch.FloatStorage", view=b""):
  """The persistent id of storage `key`; a legacy `view` is raw opcodes."""
  return (b"(" + _str("storage") + _global(*storage.rsplit(".", 1)) + _str(key)
          + _str("cuda:0") + _int(numel) + view + b"tQ")


def _tensor(key, numel, size, stride, offset=b"", storage="torch.FloatStorage", view=b""):
  """_rebuild_tensor_v2 of storage `key`; `offset` is raw opcodes (default 0)."""
  pid = _storage(key, numel, storage, view)
  return (_global("torch._utils", "_rebuild_tensor_v2") + b"(" + pid + (offset or _int(0))
          + _ints(size) + _ints(stride) + b"\x89" + _global("collections", "OrderedDict")
          + b")RtR")


def _state_pickle(**tensors):
  items = b"".join(_str(name) + opcodes for name, opcodes in tensors.items())
  return b"\x80\x02" + _global("collections", "OrderedDict") + b")R(" + items + b"u."


def _call(module, name, *args):
  return b"\x80\x02" + _global(module, name) + b"(" + b"".join(args) + b"tR."


def _zip_file(path, data_pkl, records=None, byteorder=b"little"):
  with zipfile.ZipFile(path, "w") as zf:
    zf.writestr("ckpt/data.pkl", data_pkl)
    zf.writestr("ckpt/byteorder", byteorder)
    for key, data in (records or {}).items():
      zf.writestr(f"ckpt/data/{key}", data)
    zf.writestr("ckpt/version", b"3\n")
  return str(path)


def _legacy_file(path, object_pickle, records=None):
  """Magic, protocol, sys info, the object, its storage keys, then each record."""
  sys_info = {"protocol_version": 1001, "little_endian": True,
              "type_sizes": {"short": 2, "int": 4, "long": 4}}
  parts = [pickle.dumps(v, protocol=2) for v in (0x1950A86A20F9469CFC6C, 1001, sys_info)]
  parts += [object_pickle, pickle.dumps(sorted(records or {}), protocol=2)]
  for key in sorted(records or {}):
    count, data = records[key]
    parts.append(struct.pack("<q", count) + data)
  with open(path, "wb") as f:
    f.write(b"".join(parts))
  return str(path)


def _one_line_error(path, pattern, fn=torch_format.read_torch_file):
  with pytest.raises(CheckpointFormatError) as info:
    fn(path)
  message = str(info.value)
  assert "\n" not in message
  assert message.startswith(f"{path}: "), message
  assert re.search(pattern, message), message
  return message


# The authors' files.

def test_every_official_checkpoint_file_loads_without_torch(no_torch):
  arrays, meta = _expected()
  files = {name: key for key, m in meta.items() for name in [m["file"], *m.get("also", [])]}
  folder = fixture_file(EXPECTED).parent
  assert set(os.listdir(folder)) - {os.path.basename(EXPECTED)} == set(files)
  for name, model_key in files.items():
    params = convert.load_official_checkpoint(folder / name)
    got = convert.params_to_torch(params, convert.official_checkpoint_dims(folder / name)
                                  .encoder_name)
    want = _weights(arrays, model_key)
    assert set(got) == set(want), name
    for key, value in want.items():
      assert got[key].dtype == np.float32, (name, key)
      np.testing.assert_array_equal(got[key], value, err_msg=f"{name}: {key}")


@pytest.mark.parametrize("model_key", ["thumos", "activitynet"])
def test_official_checkpoint_gives_the_authors_outputs(model_key, no_torch):
  arrays, meta = _expected()
  meta = meta[model_key]
  path = fixture_file(f"checkpoints/{meta['file']}")
  dims = convert.official_checkpoint_dims(path)
  assert (dims.feature_dim, dims.hidden_dim, dims.num_classes, dims.encoder_kernel) == (
      meta["feature_dim"], meta["hidden_dim"], meta["num_classes"], meta["encoder_kernel"])
  assert dims.variant == meta["variant"]
  assert dims.encoder_name == ("encoder.0" if model_key == "thumos" else "base_module.0")
  variant = sal_hparams.PRESETS[dims.variant]
  assert (variant.encoder_kernel, variant.rgb_weight) == (dims.encoder_kernel,
                                                          meta["rgb_weight"])
  variant = variant.replace(hidden_dim=dims.hidden_dim)
  model = build_model(dims.num_classes, variant, feature_dim=dims.feature_dim)
  x = arrays[f"{model_key}/input/x"]
  assert x.shape[1:] == (meta["num_segments"], meta["feature_dim"])
  outputs = model.apply({"params": convert.load_official_checkpoint(path)}, x, variant)
  for name, field in OUTPUT_FIELDS.items():
    want = arrays[f"{model_key}/out/{name}"]
    got = np.asarray(getattr(outputs, field))
    if want.ndim == 3 and want.shape[1] == 1:  # actionness [B, 1, T] -> [B, T]
      want = want[:, 0]
    assert got.dtype == np.float32
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-5 * np.abs(want).max(),
                               err_msg=name)


def test_official_checkpoint_allow_list_is_exactly_tensors_storages_and_ordered_dicts():
  typed = {"Double", "Float", "Half", "BFloat16", "Long", "Int", "Short", "Char", "Byte",
           "Bool", "ComplexDouble", "ComplexFloat"}
  assert torch_format.ALLOWED_GLOBALS == {
      "torch._utils._rebuild_tensor_v2", "collections.OrderedDict",
      "torch.storage.UntypedStorage", *(f"torch.{s}Storage" for s in typed)}


class _Protocol4Payload:
  def __init__(self, command):
    self.command = command

  def __reduce__(self):
    return os.system, (self.command,)


def _payloads(marker):
  """(refused global, pickle, whether a plain unpickler would create `marker`)."""
  touch = f"touch {marker}"
  nested = _state_pickle(w=_tensor("0", 4, (4,), (1,), offset=_global("os", "system")
                                   + b"(" + _str(touch) + b"tR"))
  return [
      ("os.system", _call("os", "system", _str(touch)), True),
      ("posix.system", _call("posix", "system", _str(touch)), True),
      ("builtins.eval", _call("builtins", "eval", _str(f"open({str(marker)!r}, 'w').close()")),
       True),
      ("subprocess.Popen", _call("subprocess", "Popen",
                                 b"](" + _str("touch") + _str(str(marker)) + b"e"), True),
      ("posix.system", pickle.dumps(_Protocol4Payload(touch), protocol=4), True),
      ("os.system", nested, False),
      ("collections.Counter", _call("collections", "Counter", _str("abc")), False),
      ("torch._utils._rebuild_parameter", _call("torch._utils", "_rebuild_parameter",
                                                _str("x")), False),
      ("builtins.getattr", _call("builtins", "getattr", _str("x"), _str("y")), False),
  ]


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_official_checkpoint_code_in_the_pickle_is_refused_without_side_effect(
    tmp_path, layout, no_torch):
  marker = tmp_path / "payload_ran"
  for name, payload, live in _payloads(marker):
    if live:  # The payload works: a plain unpickler runs it.
      result = pickle.loads(payload)
      if hasattr(result, "wait"):  # Popen
        result.wait()
      assert marker.exists(), name
      marker.unlink()
    path = tmp_path / f"{layout}.pkl"
    if layout == "zip":
      _zip_file(path, payload)
    else:
      _legacy_file(path, payload)
    for fn in (torch_format.read_torch_file, convert.load_official_checkpoint,
               convert.official_checkpoint_dims):
      _one_line_error(path, re.escape(f"refused global {name} "), fn)
    assert not marker.exists(), name


# Damaged and crafted files.

def test_official_checkpoint_damaged_files_give_one_line_naming_the_file(tmp_path):
  whole = _small_state()
  good = tmp_path / "good.pkl"
  torch_writer.write_torch_file(whole, good)
  data = good.read_bytes()
  cut = tmp_path / "truncated.pkl"
  cut.write_bytes(data[:len(data) // 2])
  _one_line_error(cut, r"truncated or damaged zip archive")
  floats = np.arange(8, dtype="<f4").tobytes()
  cases = {
      "missing.pkl": (_state_pickle(w=_tensor("0", 8, (8,), (1,))), {}),
      "short_storage.pkl": (_state_pickle(w=_tensor("0", 8, (16,), (1,))), {"0": floats}),
      "strided_past_end.pkl": (_state_pickle(w=_tensor("0", 8, (2, 4), (1, 2), _int(1))),
                               {"0": floats}),
      "short_record.pkl": (_state_pickle(w=_tensor("0", 16, (16,), (1,))), {"0": floats}),
      "huge.pkl": (_state_pickle(w=_tensor("0", 2**40, (2**40,), (1,))), {"0": floats}),
  }
  patterns = {"missing.pkl": r"missing storage record data/0",
              "short_storage.pkl": r"storage 0 holds 8 elements, shorter than its tensor",
              "strided_past_end.pkl": r"storage 0 holds 8 elements, shorter than its tensor",
              "short_record.pkl": r"record data/0 holds 32 bytes, .* declares 16 elements",
              "huge.pkl": r"record data/0 holds 32 bytes, .* declares 1099511627776"}
  for name, (pkl, records) in cases.items():
    _one_line_error(_zip_file(tmp_path / name, pkl, records), patterns[name])
  text = tmp_path / "notes.txt"
  text.write_text("epoch 7\n")
  _one_line_error(text, r"not a torch checkpoint")
  plain = tmp_path / "plain.pkl"
  plain.write_bytes(pickle.dumps({"w": 1}, protocol=2))
  _one_line_error(plain, r"not a torch checkpoint \(a pickle without torch's magic number\)")
  listed = _legacy_file(tmp_path / "legacy_list.pkl", pickle.dumps([1, 2], protocol=2))
  _one_line_error(listed, r"expected a state dict", convert.load_official_checkpoint)
  with pytest.raises(FileNotFoundError, match="absent.pkl: checkpoint file not found"):
    convert.load_official_checkpoint(tmp_path / "absent.pkl")


def test_official_checkpoint_legacy_sizes_are_checked_before_allocation(tmp_path):
  obj = _state_pickle(w=_tensor("0", 2**40, (2**40,), (1,)))
  huge = _legacy_file(tmp_path / "huge.pkl", obj, {"0": (2**40, b"\0" * 32)})
  cut = _legacy_file(tmp_path / "cut.pkl", _state_pickle(w=_tensor("0", 8, (8,), (1,))),
                     {"0": (8, b"\0" * 16)})
  gone = _legacy_file(tmp_path / "gone.pkl", _state_pickle(w=_tensor("0", 8, (8,), (1,))))
  tracemalloc.start()
  try:
    _one_line_error(huge, r"record 0 declares 1099511627776 elements .* 32 bytes remain")
    _one_line_error(_zip_file(tmp_path / "huge.zip", obj, {"0": b"\0" * 32}),
                    r"declares 1099511627776")
    peak = tracemalloc.get_traced_memory()[1]
  finally:
    tracemalloc.stop()
  assert peak < 1 << 20, peak
  _one_line_error(cut, r"record 0 declares 8 elements \(32 bytes\).* 16 bytes remain")
  _one_line_error(gone, r"missing storage record 0")
  view = _state_pickle(w=_tensor("0", 8, (4,), (1,), view=b"(" + _str("1") + _int(2)
                                 + _int(4) + b"t"))
  _one_line_error(_legacy_file(tmp_path / "view.pkl", view, {"0": (8, b"\0" * 32)}),
                  r"storage 0 is a view")


@pytest.mark.parametrize("layout", ["zip", "legacy"])
def test_official_checkpoint_reader_honours_offsets_strides_dtypes_and_byte_order(
    tmp_path, layout, no_torch):
  storage = np.arange(12, dtype=np.float32)
  bf16 = np.array([1.5, -2.0, 3.25], np.float32)
  records = {"0": storage.astype("<f4").tobytes(), "1": np.array([7, -9], "<i8").tobytes(),
             "2": (bf16.view("<u4") >> 16).astype("<u2").tobytes(),
             "3": np.array([0.5, 2.0], "<f2").tobytes(), "4": b"\x01\x02\xff"}
  pkl = _state_pickle(
      full=_tensor("0", 12, (3, 4), (4, 1)),
      strided=_tensor("0", 12, (3, 2), (1, 3), _int(1)),
      tail=_tensor("0", 12, (4,), (1,), _int(8)),
      scalar=_tensor("0", 12, (), (), _int(5)),
      empty=_tensor("0", 12, (0, 3), (3, 1)),
      long=_tensor("1", 2, (2,), (1,), storage="torch.LongStorage"),
      bf16=_tensor("2", 3, (3,), (1,), storage="torch.BFloat16Storage"),
      half=_tensor("3", 2, (2, 1), (1, 1), storage="torch.HalfStorage"),
      raw=_storage("4", 3, "torch.storage.UntypedStorage"))
  if layout == "zip":
    path = _zip_file(tmp_path / "c.pkl", pkl, records)
  else:
    sizes = {"0": 12, "1": 2, "2": 3, "3": 2, "4": 3}
    path = _legacy_file(tmp_path / "c.pkl", pkl, {k: (sizes[k], v) for k, v in records.items()})
  got = torch_format.read_torch_file(path)
  assert isinstance(got, collections.OrderedDict)
  strided = np.lib.stride_tricks.as_strided(storage[1:], (3, 2), (4, 12))
  want = {"full": storage.reshape(3, 4), "strided": strided, "tail": storage[8:],
          "scalar": np.float32(5), "empty": np.zeros((0, 3), np.float32),
          "long": np.array([7, -9]), "bf16": bf16, "half": np.array([[0.5], [2.0]], np.float16),
          "raw": np.array([1, 2, 255], np.uint8)}
  assert list(got) == list(want)
  for name, value in want.items():
    assert got[name].dtype == np.asarray(value).dtype, name
    np.testing.assert_array_equal(got[name], value, err_msg=name)
  got["strided"][0, 0] = 100.0  # A strided view is a copy: the storage keeps its values.
  assert got["full"][0, 1] == 1.0
  info = torch_format.read_torch_file(path, arrays=False)
  assert info["strided"] == torch_format.TensorInfo((3, 2), np.dtype(np.float32))
  if layout == "zip":  # The same values, stored big-endian.
    big = {"0": storage.astype(">f4").tobytes(), "1": np.array([7, -9], ">i8").tobytes(),
           "2": (bf16.view("<u4") >> 16).astype(">u2").tobytes(),
           "3": np.array([0.5, 2.0], ">f2").tobytes(), "4": b"\x01\x02\xff"}
    got = torch_format.read_torch_file(_zip_file(tmp_path / "big.pkl", pkl, big, b"big"))
    for name, value in want.items():
      assert got[name].dtype.isnative, name
      np.testing.assert_array_equal(got[name], value, err_msg=name)


# Writing.

def _small_state():
  return {k: v.astype(np.float32) for k, v in
          convert.params_to_torch(_small_params(sal_hparams.THUMOS14)).items()}


@pytest.mark.parametrize("variant,encoder_name", [(sal_hparams.THUMOS14, "encoder.0"),
                                                  (sal_hparams.ACTIVITYNET, "base_module.0")])
def test_official_checkpoint_round_trip(tmp_path, variant, encoder_name, no_torch):
  params = _small_params(variant)
  path = tmp_path / "CAS_Only.pkl"
  convert.save_official_checkpoint(params, path, encoder_name=encoder_name)
  assert os.listdir(tmp_path) == ["CAS_Only.pkl"]
  back = convert.load_official_checkpoint(path)
  jax.tree_util.tree_map(np.testing.assert_array_equal, back, params)
  dims = convert.official_checkpoint_dims(path)
  assert (dims.encoder_name, dims.encoder_kernel, dims.hidden_dim, dims.feature_dim,
          dims.num_classes) == (encoder_name, variant.encoder_kernel, 4, 12, 5)
  state = torch_format.read_torch_file(path)
  assert isinstance(state, collections.OrderedDict)
  assert list(state) == list(convert.params_to_torch(params, encoder_name))


def test_official_checkpoint_writer_lays_out_the_archive_as_torch_does(tmp_path):
  arrays, meta = _expected()
  torch_file = fixture_file(f"checkpoints/{meta['thumos']['file']}")
  path = tmp_path / "out.pkl"
  convert.save_official_checkpoint(
      convert.params_from_torch(_weights(arrays, "thumos")), path)
  with zipfile.ZipFile(path) as zf, zipfile.ZipFile(torch_file) as theirs:
    names = zf.namelist()
    n = len(_weights(arrays, "thumos"))
    assert names == (["archive/data.pkl", "archive/byteorder"]
                     + [f"archive/data/{i}" for i in range(n)] + ["archive/version"])
    assert zf.read("archive/byteorder") == b"little"
    assert zf.read("archive/version") == b"3\n"
    prefix = theirs.namelist()[0].split("/")[0]
    for i in range(n):  # The same storages, in the same order, byte for byte.
      assert zf.read(f"archive/data/{i}") == theirs.read(f"{prefix}/data/{i}")
    for info in zf.infolist():
      assert info.compress_type == zipfile.ZIP_STORED
      offset = info.header_offset + 30 + len(info.filename) + len(info.extra)
      assert offset % 64 == 0, info.filename
    ops = list(pickletools.genops(zf.read("archive/data.pkl")))
  assert ops[0][0].name == "PROTO" and ops[0][1] == 2
  assert {arg for op, arg, _ in ops if op.name == "GLOBAL"} == {
      "collections OrderedDict", "torch._utils _rebuild_tensor_v2", "torch FloatStorage"}
  ours, torch_saved = (torch_format.read_torch_file(p) for p in (path, torch_file))
  assert list(ours) == list(torch_saved)
  for name in ours:
    np.testing.assert_array_equal(ours[name], torch_saved[name])


def test_official_checkpoint_writer_replaces_the_file_atomically(tmp_path, monkeypatch):
  path = tmp_path / "model_best.pth.tar"
  path.write_bytes(b"previous")
  state = _small_state()
  real = torch_writer._add_record  # pylint: disable=protected-access

  def failing(zf, name, data):
    if name.endswith("data/3"):
      raise OSError("disk full")
    real(zf, name, data)

  monkeypatch.setattr(torch_writer, "_add_record", failing)
  with pytest.raises(OSError, match="disk full"):
    torch_writer.write_torch_file(state, path)
  assert path.read_bytes() == b"previous"
  assert os.listdir(tmp_path) == ["model_best.pth.tar"]
  monkeypatch.setattr(torch_writer, "_add_record", real)
  torch_writer.write_torch_file(state, path)
  assert os.listdir(tmp_path) == ["model_best.pth.tar"]
  assert list(torch_format.read_torch_file(path)) == list(state)
  with pytest.raises(ValueError, match=r"model_best.pth.tar: cannot write 'w' of dtype object"):
    torch_writer.write_torch_file({"w": np.array([None])}, path)


# Where torch is installed: torch reads what salx writes, salx reads what torch writes.

def test_official_checkpoint_written_file_loads_in_torch(tmp_path):
  torch = pytest.importorskip(
      "torch", reason="torch is not installed: checked where it is; the format itself is "
      "checked against the authors' files above")
  params = _small_params(sal_hparams.ACTIVITYNET)
  path = tmp_path / "model_best.pth.tar"
  convert.save_official_checkpoint(params, path, encoder_name="base_module.0")
  state = torch.load(path, weights_only=True)
  want = convert.params_to_torch(params, "base_module.0")
  assert list(state) == list(want)
  for name, value in want.items():
    assert state[name].dtype == torch.float32 and state[name].device.type == "cpu"
    np.testing.assert_array_equal(state[name].numpy(), value)
  nn = torch.nn
  h, d, c, k = 4, 12, 5, sal_hparams.ACTIVITYNET.encoder_kernel
  model = nn.Module()
  for name, module in {"base_module": nn.Conv1d(d, h, k, padding=k // 2),
                       "action_rgb": nn.Conv1d(d // 2, h, 3, padding=1),
                       "action_flow": nn.Conv1d(d // 2, h, 3, padding=1),
                       "cls": nn.Conv1d(h, c, 1), "cls_rgb": nn.Conv1d(h, 1, 1),
                       "cls_flow": nn.Conv1d(h, 1, 1)}.items():
    model.add_module(name, nn.Sequential(module))
  model.fc, model.fc1 = nn.Linear(h * h, c), nn.Linear(h * h, h)
  model.load_state_dict(state, strict=True)


@pytest.mark.parametrize("legacy", [False, True])
def test_official_checkpoint_reader_matches_torch_written_files(tmp_path, legacy):
  torch = pytest.importorskip("torch", reason="torch is not installed: checked where it is")
  base = torch.arange(24, dtype=torch.float32).reshape(4, 6)
  tensors = collections.OrderedDict(
      full=base, transposed=base.t(), sliced=base[1:, 2:5], row=base[2],
      scalar=base[1, 1], empty=torch.zeros(0, 3), long=torch.tensor([3, -4]),
      half=torch.tensor([0.5, 2.0], dtype=torch.float16),
      bf16=torch.tensor([1.5, -2.0], dtype=torch.bfloat16), flags=torch.tensor([True, False]),
      double=torch.tensor([[1e300]], dtype=torch.float64))
  path = tmp_path / "torch_saved.pth"
  torch.save({"epoch": 3, "state_dict": tensors}, path,
             _use_new_zipfile_serialization=not legacy)
  got = torch_format.read_torch_file(path)
  assert got["epoch"] == 3
  for name, tensor in tensors.items():
    want = (tensor.float() if tensor.dtype == torch.bfloat16 else tensor).numpy()
    assert got["state_dict"][name].dtype == want.dtype, name
    np.testing.assert_array_equal(got["state_dict"][name], want, err_msg=name)
  storage_path = tmp_path / "untyped.pth"
  torch.save(torch.UntypedStorage(5), storage_path)
  assert torch_format.read_torch_file(storage_path).shape == (5,)
