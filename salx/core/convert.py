"""Conversion between the authors' PyTorch parameters and salx variables.

Official names (SPEC section 1): `encoder.0.{weight,bias}` (THUMOS14; the
ActivityNet code names it `base_module.0`), `action_rgb.0.*`, `action_flow.0.*`,
`cls.0.*`, `cls_rgb.0.*`, `cls_flow.0.*`, `fc.*`, `fc1.*`. PyTorch layouts: Conv1d
weight [out, in, k], Linear weight [out, in]; Flax: conv kernel [k, in, out], dense
kernel [in, out].

    params = convert.params_from_torch(state_dict)          # names -> numpy arrays
    params = convert.load_torch_checkpoint("sal_thumos.pkl")  # needs torch
    state_dict = convert.params_to_torch(params, encoder_name="encoder")
"""

from __future__ import annotations

import os
from typing import Any, Dict, Mapping

import numpy as np

# salx module name -> (official module prefix, is a conv layer).
_CONV_MODULES = ("encoder", "action_rgb", "action_flow", "cls", "cls_rgb", "cls_flow")
_DENSE_MODULES = ("fc", "fc1")
ENCODER_NAMES = ("encoder.0", "base_module.0")


def _official_prefix(module: str, encoder_name: str) -> str:
  if module == "encoder":
    return encoder_name
  if module in _CONV_MODULES:
    return f"{module}.0"
  return module


def _strip_wrappers(state_dict: Mapping[str, Any]) -> Dict[str, np.ndarray]:
  """Drops `module.` (DataParallel) prefixes and turns tensors into numpy."""
  out = {}
  for name, value in state_dict.items():
    if name.startswith("module."):
      name = name[len("module."):]
    if hasattr(value, "detach"):
      value = value.detach().cpu().numpy()
    out[name] = np.asarray(value)
  return out


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
  encoder_names = [n for n in ENCODER_NAMES if f"{n}.weight" in weights]
  if len(encoder_names) != 1:
    raise ValueError(
        f"{source}: expected exactly one of {[n + '.weight' for n in ENCODER_NAMES]}, "
        f"found {encoder_names or 'none'}; keys are {sorted(weights)}")
  encoder_name = encoder_names[0]
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


def load_torch_checkpoint(path: str | os.PathLike) -> Dict[str, Dict[str, np.ndarray]]:
  """Reads an official `.pkl` / `.pth` checkpoint into salx params (needs torch).

  Accepts a bare state dict or one wrapped as {'state_dict': ...} / {'model': ...}.
  Install torch with `pip install 'salx[torch]'` (CPU builds are enough).
  """
  path = os.fspath(path)
  if not os.path.exists(path):
    raise FileNotFoundError(f"{path}: checkpoint file not found")
  try:
    import torch  # pylint: disable=g-import-not-at-top
  except ImportError:
    raise ImportError(
        f"{path}: reading a PyTorch checkpoint needs torch, which is not installed; "
        "run `pip install 'salx[torch]'` (a CPU build is enough), or pass the "
        "parameters as a name -> numpy array mapping to params_from_torch") from None
  try:
    state = torch.load(path, map_location="cpu", weights_only=True)
  except Exception as e:  # pylint: disable=broad-except
    raise ValueError(f"{path}: not a readable PyTorch checkpoint ({e})") from e
  for key in ("state_dict", "model", "model_state_dict"):
    if isinstance(state, Mapping) and key in state and isinstance(state[key], Mapping):
      state = state[key]
  if not isinstance(state, Mapping):
    raise ValueError(f"{path}: expected a state dict, found {type(state).__name__}")
  return params_from_torch(state, source=path)
