"""Conversion between the authors' PyTorch parameters and salx variables, and their files.

Official names (SPEC section 1): `encoder.0.{weight,bias}` (THUMOS14; the
ActivityNet code names it `base_module.0`), `action_rgb.0.*`, `action_flow.0.*`,
`cls.0.*`, `cls_rgb.0.*`, `cls_flow.0.*`, `fc.*`, `fc1.*`. PyTorch layouts: Conv1d
weight [out, in, k], Linear weight [out, in]; Flax: conv kernel [k, in, out], dense
kernel [in, out].

Checkpoint files are read and written by `salx.core.torch_format` (no torch needed).

    params = convert.params_from_torch(state_dict)              # names -> numpy arrays
    state_dict = convert.params_to_torch(params, encoder_name="encoder.0")
    params = convert.load_official_checkpoint("CAS_Only.pkl")   # the authors' file
    dims = convert.official_checkpoint_dims("CAS_Only.pkl")     # what to build it with
    convert.save_official_checkpoint(params, "salx_thumos.pkl") # for the authors' code
"""

from __future__ import annotations

import dataclasses
import os
from typing import Any, Dict, Mapping

import numpy as np

from salx.core import torch_format
from salx.core import torch_writer

# salx module name -> (official module prefix, is a conv layer).
_CONV_MODULES = ("encoder", "action_rgb", "action_flow", "cls", "cls_rgb", "cls_flow")
_DENSE_MODULES = ("fc", "fc1")
ENCODER_NAMES = ("encoder.0", "base_module.0")
# Encoder name -> the SAL preset of that code path.
_VARIANT_OF_ENCODER = {"encoder.0": "thumos14", "base_module.0": "activitynet"}
# Keys under which training scripts nest the state dict; other keys ('epoch', ...) are ignored.
_WRAPPER_KEYS = ("state_dict", "model", "model_state_dict")


def _official_prefix(module: str, encoder_name: str) -> str:
  if module == "encoder":
    return encoder_name
  if module in _CONV_MODULES:
    return f"{module}.0"
  return module


def _strip_module(name: str) -> str:
  """Drops DataParallel's `module.` prefix."""
  return name[len("module."):] if name.startswith("module.") else name


def _strip_wrappers(state_dict: Mapping[str, Any]) -> Dict[str, np.ndarray]:
  """Drops `module.` (DataParallel) prefixes and turns tensors into numpy."""
  out = {}
  for name, value in state_dict.items():
    name = _strip_module(name)
    if hasattr(value, "detach"):
      value = value.detach().cpu().numpy()
    out[name] = np.asarray(value)
  return out


def _encoder_name(names, source: str) -> str:
  """'encoder.0' or 'base_module.0': whichever encoder the (unprefixed) names hold."""
  found = [n for n in ENCODER_NAMES if f"{n}.weight" in names]
  if len(found) != 1:
    raise ValueError(
        f"{source}: expected exactly one of {[n + '.weight' for n in ENCODER_NAMES]}, "
        f"found {found or 'none'}; keys are {sorted(names)}")
  return found[0]


def params_from_torch(state_dict: Mapping[str, Any], source: str = "state dict"
                      ) -> Dict[str, Dict[str, np.ndarray]]:
  """Official parameter mapping -> salx `params` (a nested dict of numpy arrays).

  Args:
    state_dict: official name -> array or tensor (`module.` prefixes allowed).
    source: what to name in error messages (e.g. the checkpoint path).

  Returns:
    {'encoder': {'kernel' [k, D, H], 'bias' [H]}, ..., 'fc1': {'kernel' [H*H, H], ...}},
    dtypes as given. Use it as `model.apply({'params': params}, x)`.
  """
  weights = _strip_wrappers(state_dict)
  encoder_name = _encoder_name(weights, source)
  expected = set()
  params = {}
  for module in _CONV_MODULES + _DENSE_MODULES:
    prefix = _official_prefix(module, encoder_name)
    names = (f"{prefix}.weight", f"{prefix}.bias")
    missing = [n for n in names if n not in weights]
    if missing:
      raise ValueError(f"{source}: missing parameter(s) {missing}")
    expected.update(names)
    weight, bias = weights[names[0]], weights[names[1]]
    want_ndim = 3 if module in _CONV_MODULES else 2
    if weight.ndim != want_ndim:
      raise ValueError(f"{source}: {names[0]} has shape {weight.shape}, "
                       f"expected {want_ndim} dims")
    kernel = weight.transpose(2, 1, 0) if want_ndim == 3 else weight.T
    params[module] = {"kernel": np.ascontiguousarray(kernel), "bias": bias}
  unexpected = sorted(set(weights) - expected)
  if unexpected:
    raise ValueError(f"{source}: unexpected parameter(s) {unexpected}")
  return params


def params_to_torch(params: Mapping[str, Mapping[str, Any]],
                    encoder_name: str = "encoder.0") -> Dict[str, np.ndarray]:
  """salx `params` -> official name -> numpy array in PyTorch layout.

  Args:
    params: the model's params (numpy or jax arrays).
    encoder_name: 'encoder.0' (THUMOS14 code) or 'base_module.0' (ActivityNet code).
  """
  if encoder_name not in ENCODER_NAMES:
    raise ValueError(f"encoder_name must be one of {ENCODER_NAMES}, got {encoder_name!r}")
  out = {}
  for module in _CONV_MODULES + _DENSE_MODULES:
    kernel = np.asarray(params[module]["kernel"])
    prefix = _official_prefix(module, encoder_name)
    out[f"{prefix}.weight"] = (kernel.transpose(2, 1, 0) if kernel.ndim == 3
                               else kernel.T).copy()
    out[f"{prefix}.bias"] = np.asarray(params[module]["bias"]).copy()
  return out


def _read_state_dict(path: str, arrays: bool) -> Mapping[str, Any]:
  """The state dict of an official file: bare or under one of _WRAPPER_KEYS."""
  state = torch_format.read_torch_file(path, arrays=arrays)
  for key in _WRAPPER_KEYS:
    if isinstance(state, Mapping) and isinstance(state.get(key), Mapping):
      state = state[key]
      break
  if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
    raise torch_format.CheckpointFormatError(
        f"{path}: expected a state dict (name -> tensor), bare or under one of "
        f"{list(_WRAPPER_KEYS)}, found {type(state).__name__}")
  return state


def load_official_checkpoint(path: str | os.PathLike) -> Dict[str, Dict[str, np.ndarray]]:
  """Reads the authors' checkpoint (`CAS_Only.pkl`, `model_best.pth.tar`) into salx params.

  Needs no torch: `salx.core.torch_format` reads both torch file formats, ignores
  storage locations (files saved from a GPU load anywhere) and never runs code from
  the file. Accepts a bare state dict or one under 'state_dict', 'model' or
  'model_state_dict' (other keys such as 'epoch' are ignored), with or without
  DataParallel's `module.` prefixes, in THUMOS14 (`encoder.0.*`) or ActivityNet
  (`base_module.0.*`) naming.

  Returns:
    params as `params_from_torch` gives them (dtypes as saved, float32 for the
    authors' files); build the model from `official_checkpoint_dims(path)`.

  Raises:
    FileNotFoundError, torch_format.CheckpointFormatError (unreadable file), or
    ValueError (a state dict that is not SAL's).
  """
  path = os.fspath(path)
  return params_from_torch(_read_state_dict(path, arrays=True), source=path)


@dataclasses.dataclass(frozen=True)
class CheckpointDims:
  """What a model needs to take a checkpoint's weights.

  Attributes:
    feature_dim: D (RGB and flow halves of D / 2).
    hidden_dim: H.
    num_classes: C.
    encoder_kernel: k of the main embedding conv.
    encoder_name: 'encoder.0' (THUMOS14 code) or 'base_module.0' (ActivityNet code).
    variant: the SAL preset of that code path ('thumos14', 'activitynet').
  """
  feature_dim: int
  hidden_dim: int
  num_classes: int
  encoder_kernel: int
  encoder_name: str
  variant: str


def checkpoint_dims(state_dict: Mapping[str, Any], source: str = "state dict"
                    ) -> CheckpointDims:
  """Dims from official name -> anything with a `.shape` (arrays, tensors, TensorInfo)."""
  shapes = {_strip_module(k): tuple(v.shape) for k, v in state_dict.items()}
  encoder_name = _encoder_name(shapes, source)
  want = {f"{encoder_name}.weight": 3, "cls.0.weight": 3, "fc1.weight": 2}
  bad = {n: shapes.get(n) for n, ndim in want.items() if len(shapes.get(n, ())) != ndim}
  if bad:
    raise ValueError(f"{source}: parameter(s) missing or of the wrong rank: {bad}")
  hidden, feature_dim, kernel = shapes[f"{encoder_name}.weight"]
  num_classes, cls_in, _ = shapes["cls.0.weight"]
  if cls_in != hidden or shapes["fc1.weight"] != (hidden, hidden * hidden):
    raise ValueError(
        f"{source}: inconsistent widths: {encoder_name}.weight {shapes[f'{encoder_name}.weight']}, "
        f"cls.0.weight {shapes['cls.0.weight']}, fc1.weight {shapes['fc1.weight']}")
  return CheckpointDims(feature_dim=feature_dim, hidden_dim=hidden, num_classes=num_classes,
                        encoder_kernel=kernel, encoder_name=encoder_name,
                        variant=_VARIANT_OF_ENCODER[encoder_name])


def official_checkpoint_dims(path: str | os.PathLike) -> CheckpointDims:
  """The dims and code path of a checkpoint file, from its shapes alone (no weights read).

      dims = official_checkpoint_dims(path)
      hp = hparams.PRESETS[dims.variant].replace(hidden_dim=dims.hidden_dim)
      model = build_model(dims.num_classes, hp, feature_dim=dims.feature_dim)
  """
  path = os.fspath(path)
  return checkpoint_dims(_read_state_dict(path, arrays=False), source=path)


def save_official_checkpoint(params: Mapping[str, Mapping[str, Any]], path: str | os.PathLike,
                             encoder_name: str = "encoder.0") -> None:
  """Writes salx params as the authors' code saves its weights (`torch.save(state_dict)`).

  The file is torch's zip format holding an OrderedDict of float32 CPU tensors in
  torch layouts; the authors' `model.load_state_dict(torch.load(path))` takes it.
  It is written to a temporary file and renamed, so `path` is never left half written.

  Args:
    params: the model's params (numpy or jax arrays).
    path: e.g. 'CAS_Only.pkl'.
    encoder_name: 'encoder.0' (THUMOS14 code) or 'base_module.0' (ActivityNet code).
  """
  state_dict = {name: np.asarray(value, dtype=np.float32)
                for name, value in params_to_torch(params, encoder_name).items()}
  torch_writer.write_torch_file(state_dict, path)
