"""Parity of model, pseudo labels, losses, gradients and one Adam step with the authors' code.

Every test computes with the shipped code path (`sal_hparams.THUMOS14` for the THUMOS
fixture, `sal_hparams.ACTIVITYNET` for the ActivityNet one, the default optimizer) at
the fixture's dims, after checking it agrees with every setting the fixture's `meta`
names; float64 throughout (x64 is switched on inside these tests only), dropout off.
"""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from salx.methods.sal import convert
from salx.methods.sal import losses
from salx.methods.sal import hparams as sal_hparams
from salx.methods.sal.pseudo_labels import MaskState
from salx.core.train_step import create_train_state, make_train_step
from salx.methods.sal.method import SAL_METHOD
from tests.conftest import fixture_file
from tests.parity.parity_utils import (POSTPROCESS_CONFIG_FIELDS, load_step_fixture,
                                postprocess_config_disagreements, prefixed,
                                step_meta_disagreements)

FIXTURES = ["sal_thumos_step_small.npz", "sal_activitynet_step_small.npz"]
POSTPROCESS_FIXTURES = [("thumos14_postprocess_expected.json", sal_hparams.THUMOS14),
                        ("anet13_postprocess_expected.json", sal_hparams.ACTIVITYNET)]
OUTPUT_KEYS = {  # salx field -> fixture key
    "cas": "out/cas", "cas_bg": "out/cas_bg",
    "action_flow": "out/action_flow", "action_rgb": "out/action_rgb",
    "action_flow_mix": "out/action_flow_aug", "action_rgb_mix": "out/action_rgb_aug",
    "video_logits": "out/sc", "video_logits_flow": "out/sc_flow",
    "video_logits_rgb": "out/sc_rgb",
}


@pytest.fixture
def x64():
  previous = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", previous)


def _setup(name, dtype=np.float64):
  arrays, meta, variant, model = load_step_fixture(fixture_file(name))
  disagreements = step_meta_disagreements(meta)
  assert not disagreements, (
      f"{name}: the shipped {variant.name} settings differ from the authors': {disagreements}")
  params = convert.params_from_torch(prefixed(arrays, "param/"))
  params = jax.tree_util.tree_map(lambda a: jnp.asarray(a, dtype), params)
  x = jnp.asarray(arrays["input/x"], dtype)
  labels = jnp.asarray(arrays["input/label"], dtype)
  state0 = MaskState(mu=jnp.asarray(arrays["state/mu0"], dtype),
                     var=jnp.asarray(arrays["state/var0"], dtype))
  return arrays, meta, variant, model, params, x, labels, state0


def _loss_fn(model, variant, x, labels, state0):
  def fn(params):
    outputs = model.apply({"params": params}, x, variant, train=False)
    total, (terms, aux) = losses.sal_loss(outputs, labels, state0, variant)
    return total, (outputs, terms, aux)
  return fn


def _reference_output(arrays, key):
  ref = arrays[key]
  return ref[:, 0, :] if ref.ndim == 3 and ref.shape[1] == 1 else ref


@pytest.mark.parametrize("name", FIXTURES)
def test_parity_model_outputs(name, x64):
  arrays, _, variant, model, params, x, _, _ = _setup(name)
  outputs = model.apply({"params": params}, x, variant, train=False)
  for field, key in OUTPUT_KEYS.items():
    ref = _reference_output(arrays, key)
    got = np.asarray(getattr(outputs, field))
    assert got.shape == ref.shape, field
    tol = 1e-10 * max(1.0, np.max(np.abs(ref)))
    np.testing.assert_allclose(got, ref, rtol=0, atol=tol, err_msg=field)


@pytest.mark.parametrize("name", FIXTURES)
def test_parity_pseudo_labels_masks_and_losses(name, x64):
  arrays, _, variant, model, params, x, labels, state0 = _setup(name)
  total, (_, terms, aux) = jax.jit(_loss_fn(model, variant, x, labels, state0))(params)

  np.testing.assert_array_equal(np.asarray(aux.pseudo_label), arrays["train/pseudo_label"])
  np.testing.assert_array_equal(np.asarray(aux.pseudo_label_mix),
                                arrays["train/pseudo_label_mix"])
  np.testing.assert_allclose(aux.mask, arrays["train/mask"], rtol=0, atol=1e-12)
  np.testing.assert_allclose(aux.mask_mix, arrays["train/mask_mix"], rtol=0, atol=1e-12)
  if "train/combined_cas" in arrays:
    np.testing.assert_allclose(aux.combined, arrays["train/combined_cas"], rtol=0,
                               atol=1e-12)

  weights = variant.loss_weights
  # The fixture's mc and bg include their weights (SPEC 2.7, fixture README).
  scaled = dict(terms, mc=weights.mc * terms["mc"], bg=weights.bg * terms["bg"])
  for term in ("mil", "bg", "act", "mix", "mc", "se"):
    np.testing.assert_allclose(float(scaled[term]), float(arrays[f"loss/{term}"]),
                               rtol=1e-10, atol=0, err_msg=term)
  np.testing.assert_allclose(float(total), float(arrays["loss/total"]), rtol=1e-10, atol=0)
  np.testing.assert_allclose(float(aux.mask_state.mu), float(arrays["state/mu1"]),
                             rtol=0, atol=1e-12)
  np.testing.assert_allclose(float(aux.mask_state.var), float(arrays["state/var1"]),
                             rtol=0, atol=1e-12)


@pytest.mark.parametrize("name", FIXTURES)
def test_parity_gradients_and_adam_step(name, x64):
  arrays, _, variant, model, params, x, labels, state0 = _setup(name)
  grads = jax.jit(jax.grad(lambda p: _loss_fn(model, variant, x, labels, state0)(p)[0]))(params)
  encoder_name = next(n for n in convert.ENCODER_NAMES if f"param/{n}.weight" in arrays)
  torch_grads = convert.params_to_torch(grads, encoder_name)
  assert set(torch_grads) == set(prefixed(arrays, "grad/"))
  for key, got in torch_grads.items():
    ref = arrays[f"grad/{key}"]
    tol = 1e-8 * np.max(np.abs(ref))
    np.testing.assert_allclose(got, ref, rtol=0, atol=tol, err_msg=key)

  # The shipped train step (its optimizer settings checked against meta in _setup;
  # the variant's dropout is off, as in the fixture).
  state = create_train_state(SAL_METHOD, model, variant, jax.random.key(0),
                             params=params).replace(method_state=state0)
  state, metrics = jax.jit(make_train_step(SAL_METHOD, model))(
      state, {"features": x, "labels": labels}, jax.random.key(0), variant)
  np.testing.assert_allclose(float(metrics["loss"]), float(arrays["loss/total"]),
                             rtol=1e-10, atol=0)
  stepped = convert.params_to_torch(state.params, encoder_name)
  for key, got in stepped.items():
    np.testing.assert_allclose(got, arrays[f"step1/{key}"], rtol=0, atol=1e-12,
                               err_msg=key)


@pytest.mark.parametrize("name", FIXTURES)
def test_parity_float32_forward(name):
  arrays, _, variant, model, params, x, _, _ = _setup(name, np.float32)
  # Full float32 products: on GPUs JAX's default lets matmuls and convs use TF32
  # (10-bit mantissa), which is a speed setting, not part of the method.
  with jax.default_matmul_precision("float32"):
    outputs = model.apply({"params": params}, x, variant, train=False)
  for field, key in OUTPUT_KEYS.items():
    ref = _reference_output(arrays, key)
    got = np.asarray(getattr(outputs, field), np.float64)
    assert got.dtype == np.float64 and getattr(outputs, field).dtype == jnp.float32
    np.testing.assert_allclose(got, ref, rtol=1e-4, atol=1e-4 * np.max(np.abs(ref)),
                               err_msg=field)


@pytest.mark.parametrize("name,variant", POSTPROCESS_FIXTURES, ids=["thumos14", "activitynet"])
def test_parity_postprocess_settings_are_the_shipped_ones(name, variant):
  with open(fixture_file(name)) as f:
    config = json.load(f)["config"]
  # Not vacuous: the fixture names (nearly) every post-processing setting.
  assert len(set(POSTPROCESS_CONFIG_FIELDS) & set(config)) >= 13, sorted(config)
  disagreements = postprocess_config_disagreements(config, variant)
  assert not disagreements, (
      f"{name}: the shipped {variant.name} settings differ from the authors': {disagreements}")
