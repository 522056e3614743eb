"""Official PyTorch parameter names <-> salx params."""

import importlib.util

import jax
import numpy as np
import pytest

from salx.core import convert
from salx.core import variants
from salx.core.model import build_model
from salx.core.train_step import init_params


def _params(variant=variants.THUMOS14):
  model = build_model(5, variant, feature_dim=48, hidden_dim=16)
  return jax.tree_util.tree_map(np.asarray, init_params(model, jax.random.key(0),
                                                        (2, 40, 48)))


def test_round_trip_thumos_and_activitynet_names():
  for variant, encoder in ((variants.THUMOS14, "encoder.0"),
                           (variants.ACTIVITYNET, "base_module.0")):
    params = _params(variant)
    torch_names = convert.params_to_torch(params, encoder)
    assert torch_names[f"{encoder}.weight"].shape == (16, 48, variant.encoder_kernel)
    assert torch_names["fc1.weight"].shape == (16, 256)
    assert torch_names["cls_rgb.0.weight"].shape == (1, 16, 1)
    back = convert.params_from_torch(torch_names)
    jax.tree_util.tree_map(np.testing.assert_array_equal, back, params)


def test_dataparallel_prefixes_are_accepted():
  torch_names = convert.params_to_torch(_params())
  wrapped = {f"module.{k}": v for k, v in torch_names.items()}
  back = convert.params_from_torch(wrapped)
  np.testing.assert_array_equal(back["encoder"]["kernel"],
                                torch_names["encoder.0.weight"].transpose(2, 1, 0))


def test_missing_and_unexpected_names_are_clear_errors():
  torch_names = convert.params_to_torch(_params())
  missing = dict(torch_names)
  del missing["fc1.bias"]
  with pytest.raises(ValueError, match=r"ckpt.pkl: missing parameter\(s\) \['fc1.bias'\]"):
    convert.params_from_torch(missing, source="ckpt.pkl")
  extra = dict(torch_names, **{"head.weight": np.zeros(3)})
  with pytest.raises(ValueError, match="unexpected parameter.*head.weight"):
    convert.params_from_torch(extra)


@pytest.mark.skipif(importlib.util.find_spec("torch") is not None,
                    reason="torch is installed: the error path cannot be reached")
def test_reading_a_checkpoint_without_torch_says_how_to_install_it(tmp_path):
  path = tmp_path / "sal_thumos.pkl"
  path.write_bytes(b"not read")
  with pytest.raises(ImportError, match=r"sal_thumos.pkl: .*pip install 'salx\[torch\]'"):
    convert.load_torch_checkpoint(path)


@pytest.mark.skipif(importlib.util.find_spec("torch") is None, reason="needs torch")
def test_reading_an_official_checkpoint_file(tmp_path):
  import torch
  torch_names = convert.params_to_torch(_params())
  path = tmp_path / "sal_thumos.pkl"
  torch.save({k: torch.from_numpy(v) for k, v in torch_names.items()}, path)
  params = convert.load_torch_checkpoint(path)
  np.testing.assert_array_equal(params["fc"]["kernel"], torch_names["fc.weight"].T)
