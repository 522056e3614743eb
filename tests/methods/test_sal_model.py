"""SAL module: shapes, initialisation statistics, second-order pooling, masks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from salx.methods.sal import hparams as sal_hparams
from salx.methods.sal.method import SAL_METHOD
from salx.methods.sal.model import SAL, SALOutputs, build_model, second_order_pool

B, T, D, H, C = 3, 24, 64, 8, 4
HP = sal_hparams.THUMOS14.replace(hidden_dim=H)


def _model(**kw):
  return SAL(num_classes=C, feature_dim=D, hidden_dim=H, **kw)


def init_params(model, rng, input_shape, hp=HP):
  return SAL_METHOD.init_params(model, hp, rng, input_shape)


def test_outputs_have_the_nine_fields_and_shapes():
  model = _model()
  params = init_params(model, jax.random.key(0), (B, T, D))
  out = model.apply({"params": params}, jnp.ones((B, T, D)), HP)
  assert isinstance(out, SALOutputs)
  for name in ("cas", "cas_bg"):
    assert getattr(out, name).shape == (B, T, C)
  for name in ("action_flow", "action_rgb", "action_flow_mix", "action_rgb_mix"):
    value = getattr(out, name)
    assert value.shape == (B, T)
    assert np.all((value > 0) & (value < 1))
  for name in ("video_logits", "video_logits_flow", "video_logits_rgb"):
    assert getattr(out, name).shape == (B, C)


def test_parameter_layout_follows_official_names():
  hp = sal_hparams.ACTIVITYNET.replace(hidden_dim=H)
  model = build_model(C, hp, feature_dim=D)
  params = init_params(model, jax.random.key(0), (B, T, D), hp)
  shapes = jax.tree_util.tree_map(lambda a: a.shape, params)
  assert shapes["encoder"]["kernel"] == (7, D, H)
  assert shapes["action_rgb"]["kernel"] == (3, D // 2, H)
  assert shapes["cls"]["kernel"] == (1, H, C)
  assert shapes["cls_flow"]["kernel"] == (1, H, 1)
  assert shapes["fc"]["kernel"] == (H * H, C)
  assert shapes["fc1"]["kernel"] == (H * H, H)


def test_initialisation_matches_pytorch_distributions():
  # Full-size input widths so that the fan-ins are the real ones (2048, 1024, 512^2).
  model = SAL(num_classes=20, feature_dim=2048, hidden_dim=64)
  params = init_params(model, jax.random.key(0), (2, 8, 2048))
  h = 64

  def check_uniform(array, fan_in):
    bound = 1 / np.sqrt(fan_in)
    array = np.asarray(array)
    assert np.max(np.abs(array)) <= bound
    # U(-b, b) has std b / sqrt(3); tolerance from the sample size.
    np.testing.assert_allclose(array.std(), bound / np.sqrt(3), rtol=0.15)

  check_uniform(params["encoder"]["kernel"], 3 * 2048)
  check_uniform(params["encoder"]["bias"], 3 * 2048)
  check_uniform(params["action_rgb"]["kernel"], 3 * 1024)
  check_uniform(params["cls"]["kernel"], h)
  check_uniform(params["fc"]["kernel"], h * h)
  check_uniform(params["fc"]["bias"], h * h)
  fc1 = np.asarray(params["fc1"]["kernel"])
  np.testing.assert_allclose(fc1.std(), np.sqrt(2 / (h * h)), rtol=0.02)
  assert abs(fc1.mean()) < 0.05 * fc1.std()
  assert not np.any(np.asarray(params["fc1"]["bias"]))


def test_second_order_pool_is_normalised_signed_sqrt_of_gram():
  rng = np.random.default_rng(0)
  e = rng.normal(size=(2, 5, 3))
  pooled = np.asarray(second_order_pool(jnp.asarray(e, jnp.float32)))
  gram = np.einsum("bth,btg->bhg", e, e) / 25
  signed = np.sign(gram) * np.sqrt(np.abs(gram) + 1e-5)
  signed = signed.reshape(2, -1)
  expected = signed / np.linalg.norm(signed, axis=1, keepdims=True)
  np.testing.assert_allclose(pooled, expected, rtol=1e-5)
  np.testing.assert_allclose(np.linalg.norm(pooled, axis=1), 1.0, rtol=1e-6)


def test_mask_makes_a_padded_video_pool_like_the_unpadded_one():
  rng = np.random.default_rng(1)
  e = jnp.asarray(rng.normal(size=(1, 7, 4)), jnp.float32)
  padded = jnp.concatenate([e, jnp.asarray(rng.normal(size=(1, 3, 4)), jnp.float32)], 1)
  mask = jnp.asarray([[1] * 7 + [0] * 3], jnp.float32)
  np.testing.assert_allclose(second_order_pool(padded, mask), second_order_pool(e),
                             rtol=1e-6)


def test_padded_batch_gives_each_videos_own_video_logits():
  model = _model()
  params = init_params(model, jax.random.key(0), (2, T, D))
  rng = np.random.default_rng(2)
  short = rng.normal(size=(1, 10, D)).astype(np.float32)
  alone = model.apply({"params": params}, jnp.asarray(short), HP)
  padded = np.zeros((2, T, D), np.float32)
  padded[0, :10] = short[0]
  padded[1] = rng.normal(size=(T, D))
  mask = np.zeros((2, T), np.float32)
  mask[0, :10] = 1
  mask[1] = 1
  out = model.apply({"params": params}, jnp.asarray(padded), HP, mask=jnp.asarray(mask))
  np.testing.assert_allclose(out.video_logits[0], alone.video_logits[0], rtol=1e-5,
                             atol=1e-6)
  np.testing.assert_allclose(out.cas[0, :10], alone.cas[0], rtol=1e-4, atol=1e-5)


def test_dropout_is_random_in_training_and_off_in_eval():
  model = _model()
  params = init_params(model, jax.random.key(0), (B, T, D))
  x = jnp.ones((B, T, D))
  a = model.apply({"params": params}, x, HP, train=True,
                  rngs={"dropout": jax.random.key(1)})
  b = model.apply({"params": params}, x, HP, train=True,
                  rngs={"dropout": jax.random.key(2)})
  c = model.apply({"params": params}, x, HP, train=False)
  d = model.apply({"params": params}, x, HP, train=False)
  assert not np.allclose(a.cas, b.cas)
  np.testing.assert_array_equal(c.cas, d.cas)
  # The plain and mix-up branches draw their own masks: with identical inputs
  # (all-ones features, so x + prev(x) = 2x) their actionness differ beyond the scale.
  assert not np.allclose(a.action_rgb, b.action_rgb)


def test_wrong_feature_dim_is_a_clear_error():
  model = _model()
  with pytest.raises(ValueError, match=r"features \[B, T, 64\].*\(2, 5, 32\)"):
    model.init(jax.random.key(0), jnp.ones((2, 5, 32)), HP)


def test_bfloat16_compute_keeps_float32_params():
  model = _model(dtype=jnp.bfloat16)
  params = init_params(model, jax.random.key(0), (B, T, D))
  assert all(p.dtype == jnp.float32 for p in jax.tree_util.tree_leaves(params))
  out = model.apply({"params": params}, jnp.ones((B, T, D)), HP)
  assert out.cas.dtype == jnp.bfloat16


@pytest.mark.parametrize("kernel_size", [1, 3, 7])
def test_conv_as_matmul_equals_the_library_convolution(kernel_size):
  from salx.core.layers import Conv1d
  rng = np.random.default_rng(3)
  x = jnp.asarray(rng.normal(size=(2, 9, 6)), jnp.float32)
  gemm = Conv1d(5, kernel_size, matmul=True)
  library = Conv1d(5, kernel_size, matmul=False)
  variables = gemm.init(jax.random.key(0), x)
  np.testing.assert_allclose(gemm.apply(variables, x), library.apply(variables, x),
                             rtol=1e-5, atol=1e-5)
  # Zero padding: the first output sees only taps at t >= 0 (compare by hand).
  kernel = np.asarray(variables["params"]["kernel"])
  bias = np.asarray(variables["params"]["bias"])
  pad = kernel_size // 2
  expected = bias + sum(np.asarray(x)[:, j - pad] @ kernel[j]
                        for j in range(pad, kernel_size))
  np.testing.assert_allclose(gemm.apply(variables, x)[:, 0], expected, rtol=1e-5,
                             atol=1e-5)


def test_fc1_outer_product_gradient_equals_the_matrix_product():
  from salx.methods.sal.model import low_rank_matmul
  rng = np.random.default_rng(4)
  p = jnp.asarray(rng.normal(size=(3, 20)), jnp.float32)
  w = jnp.asarray(rng.normal(size=(20, 7)), jnp.float32)
  g = jnp.asarray(rng.normal(size=(3, 7)), jnp.float32)

  def loss(fn):
    return lambda p, w: jnp.sum(fn(p, w) * g)

  got = jax.grad(loss(low_rank_matmul), argnums=(0, 1))(p, w)
  want = jax.grad(loss(jnp.matmul), argnums=(0, 1))(p, w)
  for a, b in zip(got, want):
    np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6)


@pytest.mark.slow
def test_fused_and_plain_implementations_give_the_same_step():
  from salx.core.train_step import create_train_state, make_train_step
  variant = sal_hparams.THUMOS14.replace(num_segments=T, hidden_dim=8)
  rng = np.random.default_rng(5)
  batch = {"features": rng.normal(size=(2, T, D)).astype(np.float32),
           "labels": np.eye(C, dtype=np.float32)[[0, 2]]}
  results = []
  for fused in (True, False):
    model = SAL(num_classes=C, feature_dim=D, hidden_dim=8, conv_as_matmul=fused,
                fc1_outer_grad=fused)
    state = create_train_state(SAL_METHOD, model, variant, jax.random.key(0),
                               input_shape=(2, T, D))
    state, metrics = jax.jit(make_train_step(SAL_METHOD, model))(
        state, batch, jax.random.key(1), variant)
    results.append((float(metrics["loss"]), state.params))
  assert results[0][0] == pytest.approx(results[1][0], rel=1e-5)
  jax.tree_util.tree_map(
      lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6),
      results[0][1], results[1][1])
