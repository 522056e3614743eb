"""Official PyTorch parameter names <-> salx params."""

import jax
import numpy as np
import pytest

from salx.methods.sal import convert
from salx.methods.sal import hparams as sal_hparams
from salx.methods.sal.method import SAL_METHOD
from salx.methods.sal.model import build_model


def _params(variant=sal_hparams.THUMOS14):
  """The model's params (their tree, shapes and dtypes) holding random values."""
  variant = variant.replace(hidden_dim=16)
  model = build_model(5, variant, feature_dim=48)
  shapes = jax.eval_shape(lambda key: SAL_METHOD.init_params(model, variant, key,
                                                             (2, 40, 48)),
                          jax.random.key(0))
  rng = np.random.default_rng(0)
  return jax.tree_util.tree_map(lambda s: rng.normal(size=s.shape).astype(s.dtype), shapes)


def test_round_trip_thumos_and_activitynet_names():
  for variant, encoder in ((sal_hparams.THUMOS14, "encoder.0"),
                           (sal_hparams.ACTIVITYNET, "base_module.0")):
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


def test_checkpoint_dims_from_names_and_shapes():
  for variant, encoder in ((sal_hparams.THUMOS14, "encoder.0"),
                           (sal_hparams.ACTIVITYNET, "base_module.0")):
    torch_names = convert.params_to_torch(_params(variant), encoder)
    dims = convert.checkpoint_dims({f"module.{k}": v for k, v in torch_names.items()})
    assert dims == convert.CheckpointDims(
        feature_dim=48, hidden_dim=16, num_classes=5, encoder_kernel=variant.encoder_kernel,
        encoder_name=encoder, variant=variant.name)
  torch_names = convert.params_to_torch(_params())
  narrow = dict(torch_names, **{"cls.0.weight": np.zeros((5, 8, 1))})
  with pytest.raises(ValueError,
                     match=r"ckpt.pkl: inconsistent widths: .*cls.0.weight \(5, 8, 1\)"):
    convert.checkpoint_dims(narrow, source="ckpt.pkl")
  flat = dict(torch_names, **{"encoder.0.weight": np.zeros((16, 48))})
  with pytest.raises(ValueError, match=r"ckpt.pkl: .*wrong rank.*encoder.0.weight"):
    convert.checkpoint_dims(flat, source="ckpt.pkl")
