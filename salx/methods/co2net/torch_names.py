"""The authors' CO2-Net / DELU state_dict names <-> salx params (SPEC-CO2NET-DELU 1.6).

Both methods' models have the same names, so a checkpoint of either loads into
`salx.methods.co2net.model.CO2Net`. Torch Conv1d weights are [out, in, k], Flax
conv kernels [k, in, out]. `feat_encoder.*` is built, initialised and saved by their
code but never used by the forward nor updated (1.6, 3.2): it is read and ignored.

    params = torch_names.params_from_torch(state_dict)
    state_dict = torch_names.params_to_torch(params)
    params = torch_names.load_checkpoint("best_delu_thumos.pkl")   # no torch needed
"""

from __future__ import annotations

import os
from typing import Any, Dict, Mapping, Optional

import numpy as np

from salx.core import torch_format
from salx.core import torch_writer

# (salx module path) -> torch prefix, in their state_dict order.
_CCM_MODULES = (("bit_wise_attn", "bit_wise_attn.0"), ("channel_conv", "channel_conv.0"),
                ("attention_0", "attention.0"), ("attention_3", "attention.3"),
                ("attention_5", "attention.5"))
MODULES = tuple(
    [((ccm, name), f"{ccm}.{torch}") for ccm in ("vAttn", "fAttn")
     for name, torch in _CCM_MODULES]
    + [(("fusion",), "fusion.0"), (("classifier_1",), "classifier.1"),
       (("classifier_4",), "classifier.4")])
UNUSED_PREFIX = "feat_encoder."      # read and ignored (SPEC-CO2NET-DELU 3.2).
_FEAT_ENCODER = "feat_encoder.0"


def _numpy(value: Any) -> np.ndarray:
  if hasattr(value, "detach"):
    value = value.detach().cpu().numpy()
  return np.asarray(value)


def _strip_module(name: str) -> str:
  """Drops DataParallel's `module.` prefix."""
  return name[len("module."):] if name.startswith("module.") else name


def params_from_torch(state_dict: Mapping[str, Any], source: str = "state dict"
                      ) -> Dict[str, Any]:
  """Their state_dict -> salx params (nested dict of numpy arrays, dtypes as given).

  Args:
    state_dict: torch name -> array or tensor (`module.` prefixes allowed);
      `feat_encoder.*` is ignored.
    source: what to name in error messages.

  Returns:
    {'vAttn': {'bit_wise_attn': {'kernel' [3, M, M], 'bias' [M]}, ...}, 'fAttn': ...,
     'fusion': ..., 'classifier_1': ..., 'classifier_4': ...}.
  """
  weights = {_strip_module(k): _numpy(v) for k, v in state_dict.items()}
  params: Dict[str, Any] = {}
  used = set()
  for path, prefix in MODULES:
    names = (f"{prefix}.weight", f"{prefix}.bias")
    missing = [n for n in names if n not in weights]
    if missing:
      raise ValueError(f"{source}: missing parameter(s) {missing}")
    weight = weights[names[0]]
    if weight.ndim != 3:
      raise ValueError(f"{source}: {names[0]} has shape {weight.shape}, expected a "
                       "Conv1d weight [out, in, k]")
    node = params
    for part in path[:-1]:
      node = node.setdefault(part, {})
    node[path[-1]] = {"kernel": np.ascontiguousarray(weight.transpose(2, 1, 0)),
                      "bias": weights[names[1]]}
    used.update(names)
  unexpected = sorted(n for n in set(weights) - used if not n.startswith(UNUSED_PREFIX))
  if unexpected:
    raise ValueError(f"{source}: unexpected parameter(s) {unexpected}")
  return params


def params_to_torch(params: Mapping[str, Any],
                    feat_encoder: Optional[Mapping[str, Any]] = None
                    ) -> Dict[str, np.ndarray]:
  """salx params -> their state_dict names and layouts (numpy), in their order.

  Args:
    params: the model's params (numpy or jax arrays).
    feat_encoder: optional {'weight', 'bias'} (torch layout) of the unused
      `feat_encoder.0`, written where their state_dict has it so that their code
      loads the result strictly; left out when None.
  """
  out = {}
  for path, prefix in MODULES:
    if feat_encoder is not None and prefix == "fusion.0":
      for field in ("weight", "bias"):
        out[f"{_FEAT_ENCODER}.{field}"] = np.array(_numpy(feat_encoder[field]))
    node = params
    for part in path:
      node = node[part]
    out[f"{prefix}.weight"] = np.array(np.asarray(node["kernel"]).transpose(2, 1, 0))
    out[f"{prefix}.bias"] = np.array(np.asarray(node["bias"]))
  return out


def feat_encoder_from_torch(state_dict: Mapping[str, Any]) -> Optional[Dict[str, np.ndarray]]:
  """{'weight', 'bias'} of their unused `feat_encoder.0`, or None when absent."""
  weights = {_strip_module(k): v for k, v in state_dict.items()}
  names = {f: f"{_FEAT_ENCODER}.{f}" for f in ("weight", "bias")}
  if not all(n in weights for n in names.values()):
    return None
  return {f: _numpy(weights[n]) for f, n in names.items()}


def load_checkpoint(path: str | os.PathLike) -> Dict[str, Any]:
  """The params of their checkpoint file (`torch.save(model.state_dict())`, saved
  from a GPU or not), read without torch (`salx.core.torch_format`); `feat_encoder`
  is ignored.

  Raises:
    FileNotFoundError, torch_format.CheckpointFormatError (an unreadable file), or
    ValueError (a state dict that is not CO2-Net's / DELU's).
  """
  path = os.fspath(path)
  state = torch_format.read_torch_file(path, arrays=True)
  if not isinstance(state, Mapping) or not all(isinstance(k, str) for k in state):
    raise torch_format.CheckpointFormatError(
        f"{path}: expected a state dict (name -> tensor), found {type(state).__name__}")
  return params_from_torch(state, source=path)


def save_checkpoint(params: Mapping[str, Any], path: str | os.PathLike) -> None:
  """Writes params as their code saves a model (a torch zip file of float32 tensors
  under their names, without feat_encoder), atomically."""
  state_dict = {name: np.asarray(value, np.float32)
                for name, value in params_to_torch(params).items()}
  torch_writer.write_torch_file(state_dict, path)
