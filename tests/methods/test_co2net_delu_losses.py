"""Unit tests of CO2-Net's and DELU's model, losses, sampler, names and hyperparameters.

Each test pins one quirk of SPEC-CO2NET-DELU that a plausible rewrite would lose.
"""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from salx.core import hparams
from salx.methods.co2net import hparams as hparams_lib
from salx.methods.co2net import losses
from salx.methods.co2net import sampling
from salx.methods.co2net import torch_names
from salx.methods.co2net.model import CO2Net, CO2NetOutputs
from salx.methods.delu import losses as delu_losses

B, T, M, H, C = 10, 24, 8, 6, 5


@pytest.fixture
def x64():
  previous = jax.config.jax_enable_x64
  jax.config.update("jax_enable_x64", True)
  yield
  jax.config.update("jax_enable_x64", previous)


def _labels(rng, batch=B, num_classes=C):
  y = np.zeros((batch, num_classes))
  classes = rng.integers(0, num_classes, batch)
  for i, j in losses.CONTRASTIVE_PAIRS:   # each pair shares a class (4.2)
    classes[j] = classes[i]
  y[np.arange(batch), classes] = 1
  y[batch - 1, (classes[-1] + 1) % num_classes] = 1   # one video with two classes
  return jnp.asarray(y, jnp.float32)


@functools.lru_cache(maxsize=None)
def _initialised(seed):
  """(model, params as initialised, x); once per seed (compiling init is slow)."""
  model = CO2Net(num_classes=C, feature_dim=2 * M, attention_hidden=H)
  x = jax.random.normal(jax.random.key(seed), (B, T, 2 * M))
  params = jax.jit(model.init)(jax.random.key(seed + 1), x)["params"]
  return model, jax.tree_util.tree_map(np.asarray, params), np.asarray(x)


def _model_and_params(dtype=jnp.float32, seed=0):
  """(model, params with non-zero biases, x [B, T, 2M]); computes in `dtype`."""
  model, params, x = _initialised(seed)
  rng = np.random.default_rng(seed)
  params = jax.tree_util.tree_map_with_path(
      lambda path, p: jnp.asarray(p if path[-1].key != "bias"
                                  else 0.1 * rng.normal(size=p.shape), dtype), params)
  return model, params, jnp.asarray(x, dtype)


def _outputs(seed=0, dtype=jnp.float32):
  model, params, x = _model_and_params(dtype, seed)
  return jax.jit(model.apply)({"params": params}, x)


# ----------------------------------------------------------------------------
# Model.


def test_model_has_no_feat_encoder_and_their_parameter_count():
  model = CO2Net(num_classes=20)
  shapes = jax.eval_shape(lambda: model.init(jax.random.key(0), jnp.zeros((1, 8, 2048))))
  count = sum(int(np.prod(p.shape)) for p in jax.tree_util.tree_leaves(shapes["params"]))
  # 46,717,975 in their state_dict, of which feat_encoder holds 12,584,960 (1.6).
  assert count == 46_717_975 - 12_584_960
  assert "feat_encoder" not in shapes["params"]


def test_init_is_kaiming_uniform_with_zero_biases():
  _, params, _ = _initialised(0)
  kernel = np.asarray(params["classifier_1"]["kernel"])               # [3, 2M, 2M]
  bound = np.sqrt(6.0 / (3 * 2 * M))
  assert np.max(np.abs(kernel)) <= bound and np.max(np.abs(kernel)) > 0.9 * bound
  for leaf_path, leaf in jax.tree_util.tree_leaves_with_path(params):
    if leaf_path[-1].key == "bias":
      assert not np.any(np.asarray(leaf)), leaf_path


def test_channel_conv_side_taps_get_exactly_zero_gradient():
  model, params, x = _model_and_params()
  y = _labels(np.random.default_rng(0))
  grads = jax.jit(jax.grad(
      lambda p: losses.loss_fn(model, p, x, y, hparams_lib.DELU_THUMOS14, 7)[0]))(params)
  for stream in ("vAttn", "fAttn"):
    g = np.asarray(grads[stream]["channel_conv"]["kernel"])             # [3, M, M]
    assert np.all(g[[0, 2]] == 0) and np.any(g[1] != 0)


def test_dropout_only_in_training_and_on_the_attention_logit():
  model, params, x = _model_and_params()
  apply = jax.jit(model.apply, static_argnames="train")
  eval_out = apply({"params": params}, x)
  again = apply({"params": params}, x)
  np.testing.assert_array_equal(eval_out.cas, again.cas)
  train_out = apply({"params": params}, x, train=True, rngs={"dropout": jax.random.key(3)})
  assert not np.allclose(train_out.cas, eval_out.cas)
  # A dropped logit gives sigmoid(0) = 0.5 exactly: dropout acts before the sigmoid.
  assert np.any(np.asarray(train_out.v_atn) == 0.5)
  with pytest.raises(ValueError, match="dropout_rng"):
    losses.loss_fn(model, params, x, _labels(np.random.default_rng(0)),
                   hparams_lib.CO2NET_THUMOS14, 0, train=True)


def test_receptive_field_of_attention_is_three_snippets_plus_the_global_mean():
  model, params, x = _model_and_params()
  apply = jax.jit(model.apply)
  base = apply({"params": params}, x)
  bumped = x.at[:, 12, M:].add(1.0)   # flow only: the rgb CCM sees it through bw, not the mean
  out = apply({"params": params}, bumped)
  changed = np.any(np.asarray(out.v_atn) != np.asarray(base.v_atn), axis=0)
  assert list(np.nonzero(changed)[0]) == list(range(9, 16))


# ----------------------------------------------------------------------------
# Losses.


def test_suppressed_cas_sends_the_min_gradient_to_one_tied_column():
  cas = jnp.asarray([[[0.3, -1.0, 2.0, -1.0]]])   # two exact minima
  attn = jnp.asarray([[0.25]])
  s = losses.suppressed_cas(cas, attn)
  np.testing.assert_allclose(s, 0.25 * (cas + 1.0) - 1.0, rtol=1e-6)
  g = np.asarray(jax.grad(lambda c: jnp.sum(losses.suppressed_cas(c, attn)))(cas))[0, 0]
  # d/dcas of sum_c (a (cas_c - m) + m) = a at every column, plus (1 - a) C at argmin.
  np.testing.assert_allclose(sorted(g), sorted([0.25, 0.25 + 0.75 * 4, 0.25, 0.25]),
                             rtol=1e-6)


def test_mil_topk_size_from_the_batch_length():
  hp = hparams_lib.CO2NetHparams()
  assert (hp.mil_topk(320), hp.mil_topk(500), hp.mil_topk(3)) == (45, 71, 1)
  assert (hp.edl_topk(320), hp.edl_topk(5)) == (35, 1)


def test_mil_label_normaliser_has_the_1e4():
  z = jnp.zeros((1, 7, 3))   # uniform video logits: log_softmax = -log 3
  y = jnp.asarray([[1.0, 0.0]])
  got = losses.mil_loss_per_video(z, y, 1.0, 1)
  np.testing.assert_allclose(got, [2.0 / 2.0001 * np.log(3.0)], rtol=1e-6)


def test_mutual_loss_has_the_value_but_half_the_gradient_of_the_plain_one(x64):
  rng = np.random.default_rng(0)
  v, f = jnp.asarray(rng.uniform(size=(B, T))), jnp.asarray(rng.uniform(size=(B, T)))
  plain = lambda v, f: jnp.mean((v - f) ** 2)
  np.testing.assert_allclose(losses.mutual_loss(v, f), plain(v, f), rtol=1e-14)
  ours = jax.grad(losses.mutual_loss, argnums=(0, 1))(v, f)
  theirs = jax.grad(plain, argnums=(0, 1))(v, f)
  for a, b in zip(ours, theirs):
    np.testing.assert_allclose(a, 0.5 * b, rtol=1e-14)


def test_guide_loss_uses_the_background_probability_with_its_gradient(x64):
  o = _outputs(dtype=jnp.float64)
  guide = jax.jit(lambda cas: losses.guide_loss(o.attn, o.v_atn, o.f_atn, cas))
  g = jax.jit(jax.grad(guide))(o.cas)
  assert np.any(np.asarray(g) != 0)
  # Against a finite difference on the background logit of one snippet.
  eps = 1e-6
  bump = jnp.zeros_like(o.cas).at[2, 5, -1].set(eps)
  fd = (guide(o.cas + bump) - guide(o.cas - bump)) / (2 * eps)
  np.testing.assert_allclose(g[2, 5, -1], fd, rtol=1e-6)


def test_contrastive_loss_needs_three_pairs_and_ignores_other_videos(x64):
  o = _outputs(dtype=jnp.float64)
  y = _labels(np.random.default_rng(1))
  s = losses.suppressed_cas(o.cas, o.attn)
  contrastive = jax.jit(losses.contrastive_loss)
  base = contrastive(o.feat, s, y)
  assert np.isfinite(base) and base > 0
  moved = contrastive(o.feat.at[6:].multiply(3.0), s.at[6:].add(1.0), y)
  np.testing.assert_allclose(moved, base, rtol=1e-14)
  with pytest.raises(ValueError, match="three pairs"):
    losses.contrastive_loss(o.feat[:5], s[:5], y[:5])


def test_edl_detaches_only_the_uncertainty(x64):
  rng = np.random.default_rng(2)
  s = jnp.asarray(rng.normal(size=(3, 9, C + 1)) * 4)
  attn = jnp.asarray(rng.uniform(size=(3, 9)))
  y = jnp.asarray(np.eye(C)[[0, 1, 2]] + np.eye(C)[[3, 3, 4]])
  k = 3

  def reference(s, frozen_u):   # numpy-free restatement of 2.7 with u a constant
    idx = jnp.argsort(-attn, axis=-1)[:, :k]
    vl = jnp.mean(jnp.take_along_axis(s, idx[..., None], axis=1), axis=1)[:, :C]
    alpha = jnp.exp(jnp.clip(vl, -10, 10)) + 1
    strength = jnp.sum(alpha, -1, keepdims=True)
    q = y / alpha
    g = (1 - frozen_u)[:, None] * jnp.sum(y, -1, keepdims=True) * q / jnp.sum(q, -1,
                                                                             keepdims=True)
    return jnp.mean(jnp.sum(g * (jnp.log(strength) - jnp.log(alpha)), -1))

  edl = jax.jit(lambda s: delu_losses.evidential_loss(s, attn, y, k))
  value, details = edl(s)
  u = details.uncertainty
  np.testing.assert_allclose(value, jax.jit(reference)(s, u), rtol=1e-13)
  np.testing.assert_allclose(u, C / jnp.sum(jnp.exp(jnp.clip(details.video_logits, -10, 10))
                                            + 1, -1), rtol=1e-13)
  ours = jax.jit(jax.grad(lambda s: edl(s)[0]))(s)
  theirs = jax.jit(jax.grad(lambda s: reference(s, u)))(s)
  np.testing.assert_allclose(ours, theirs, rtol=1e-12, atol=1e-15)
  assert np.any(np.asarray(ours) != 0)


def test_course_curve_shape_over_training():
  T_ = 320
  start = np.asarray(delu_losses.course_curve(0, T_, 5000, 0.7))
  np.testing.assert_allclose(start[[0, -1]], [1 - 0.7 * np.tanh(1 - 1 / T_),
                                              1 + 0.7 * np.tanh(1 - 1 / T_)], rtol=1e-6)
  assert np.all(np.diff(start) > 0)
  np.testing.assert_allclose(delu_losses.course_curve(2500, T_, 5000, 0.7), 1.0, rtol=1e-7)
  np.testing.assert_allclose(delu_losses.course_curve(5000, T_, 5000, 0.7), start[::-1],
                             rtol=1e-6)


def test_uct_guide_pairs_rank_with_curve_at_the_snippet_index_and_sorts_stably():
  num_classes = 2
  # sigma order of the 4 snippets: 2, 0, 3, 1 (larger s -> more evidence -> smaller sigma).
  s = jnp.asarray([[[2.0, 0, 0], [0, 0, 0], [5.0, 0, 0], [1.0, 0, 0]]])
  gamma = jnp.asarray([[1.0, 2.0, 3.0, 4.0]])
  loss, details = delu_losses.uct_guide_loss(s, gamma, 0, 10, 0.7, num_classes)
  np.testing.assert_array_equal(details.sort_index, [[2, 0, 3, 1]])
  curve = np.asarray(details.curve)
  np.testing.assert_allclose(loss, np.mean(curve[[2, 0, 3, 1]] * np.asarray(gamma[0])),
                             rtol=1e-6)
  sigma = delu_losses.snippet_uncertainty(s, num_classes)
  np.testing.assert_allclose(sigma[0, 1], 2.0 / 6.0, rtol=1e-6)   # numerator C, C + 1 terms
  ties = jnp.zeros((1, 6, 3))
  _, details = delu_losses.uct_guide_loss(ties, jnp.ones((1, 6)), 0, 10, 0.7, num_classes)
  np.testing.assert_array_equal(details.sort_index, [list(range(6))])


def test_delu_with_zero_evidential_weights_is_co2net():
  o = _outputs()
  y = _labels(np.random.default_rng(3))
  loss = jax.jit(lambda hp: losses.co2net_loss(o, y, hp, 10))
  co2, _ = loss(hparams_lib.CO2NET_THUMOS14)
  delu_zero = hparams_lib.DELU_THUMOS14.replace(alpha_edl=0.0, alpha_uct_guide=0.0,
                                                alpha2=0.8)
  delu, terms = loss(delu_zero)
  assert {"edl", "uct_guide"} <= set(terms)
  np.testing.assert_allclose(delu, co2, rtol=1e-6)
  log = losses.delu_loss_dict(terms, hparams_lib.DELU_THUMOS14)
  np.testing.assert_allclose(log["edl_loss"], 1.3 * terms["edl"], rtol=1e-6)
  np.testing.assert_allclose(log["guide_loss"], 0.4 * terms["guide"], rtol=1e-6)


def test_hparams_stack_per_member_under_vmap():
  o = _outputs()
  y = _labels(np.random.default_rng(4))
  members = [hparams_lib.DELU_THUMOS14,
             hparams_lib.DELU_THUMOS14.replace(alpha1=0.3, alpha2=1.7, alpha_edl=0.2,
                                               alpha_uct_guide=2.0, amplitude=0.1)]
  stacked = hparams.stack(members)
  assert stacked.alpha2.shape == (2,)
  loss = jax.jit(lambda hp: losses.co2net_loss(o, y, hp, 1234))
  totals, terms = jax.jit(jax.vmap(loss))(stacked)
  for m, hp in enumerate(members):
    total, single = loss(hp)
    np.testing.assert_allclose(totals[m], total, rtol=1e-6)
    np.testing.assert_allclose(terms["uct_guide"][m], single["uct_guide"], rtol=1e-6)
  assert abs(float(totals[0]) - float(totals[1])) > 1e-3
  with pytest.raises(ValueError, match="max_seqlen"):
    hparams.stack([hparams_lib.CO2NET_THUMOS14, hparams_lib.DELU_THUMOS14])


def test_presets_hold_the_script_values():
  co2, delu = hparams_lib.CO2NET_THUMOS14, hparams_lib.DELU_THUMOS14
  assert (co2.max_seqlen, delu.max_seqlen) == (500, 320)
  assert (co2.alpha2, delu.alpha2, delu.alpha_edl, delu.alpha_uct_guide) == (0.8, 0.4, 1.3, 0.4)
  assert not co2.evidential and delu.evidential
  assert (co2.num_thresholds, delu.num_thresholds) == (10, 20)
  assert set(hparams_lib.CO2NetHparams.leaf_fields) == {
      "learning_rate", "weight_decay", "alpha1", "alpha2", "alpha3", "alpha4", "alpha_edl",
      "alpha_uct_guide", "amplitude"}


# ----------------------------------------------------------------------------
# Torch names.


def _state_dict(seed=0):
  _, params, _ = _model_and_params(seed=seed)
  state = torch_names.params_to_torch(params)
  rng = np.random.default_rng(seed)
  state["feat_encoder.0.weight"] = rng.normal(size=(2 * M, 2 * M, 3)).astype(np.float32)
  state["feat_encoder.0.bias"] = rng.normal(size=(2 * M,)).astype(np.float32)
  return params, state


def test_torch_names_round_trip_exactly_and_feat_encoder_is_ignored():
  params, state = _state_dict()
  back = torch_names.params_from_torch(state)
  assert jax.tree_util.tree_structure(back) == jax.tree_util.tree_structure(
      jax.tree_util.tree_map(np.asarray, params))
  for a, b in zip(jax.tree_util.tree_leaves(back), jax.tree_util.tree_leaves(params)):
    np.testing.assert_array_equal(a, b)
  again = torch_names.params_to_torch(back, torch_names.feat_encoder_from_torch(state))
  assert list(again) == [n for n in _their_order()]
  for name, value in state.items():
    np.testing.assert_array_equal(again[name], value)
  assert state["vAttn.attention.5.weight"].shape == (1, H, 1)
  assert state["classifier.4.weight"].shape == (C + 1, 2 * M, 1)
  # DataParallel's prefix is accepted; a missing or unknown name is an error.
  prefixed = {"module." + k: v for k, v in state.items()}
  np.testing.assert_array_equal(torch_names.params_from_torch(prefixed)["fusion"]["kernel"],
                                back["fusion"]["kernel"])
  with pytest.raises(ValueError, match="missing"):
    torch_names.params_from_torch({k: v for k, v in state.items() if k != "fusion.0.bias"})
  with pytest.raises(ValueError, match="unexpected"):
    torch_names.params_from_torch(dict(state, **{"extra.weight": np.zeros(1)}))


def _their_order():
  ccm = ["bit_wise_attn.0", "channel_conv.0", "attention.0", "attention.3", "attention.5"]
  modules = ([f"vAttn.{m}" for m in ccm] + [f"fAttn.{m}" for m in ccm]
             + ["feat_encoder.0", "fusion.0", "classifier.1", "classifier.4"])
  return [f"{m}.{f}" for m in modules for f in ("weight", "bias")]


# ----------------------------------------------------------------------------
# Sampler.


def _synthetic_dataset(rng, num_videos=40, num_classes=6):
  train_videos = list(range(100, 100 + num_videos))
  labels = np.zeros((num_videos, num_classes))
  labels[np.arange(num_videos), np.arange(num_videos) % num_classes] = 1
  labels[::7, 0] = 1
  lengths = {v: int(rng.integers(3, 90)) for v in train_videos}
  return train_videos, labels, lengths


@pytest.mark.parametrize("draws", ["generator", "random_state"])
def test_sampler_pairs_share_a_class_and_snippets_follow_random_perturb(draws):
  rng = np.random.default_rng(5)
  train_videos, labels, lengths = _synthetic_dataset(rng)
  classwise = sampling.classwise_videos(train_videos, labels)
  position = {v: n for n, v in enumerate(train_videos)}
  make = (lambda s: np.random.default_rng(s)) if draws == "generator" else np.random.RandomState
  for seed in range(20):
    videos, snippets = sampling.sample_batch(make(seed), classwise, train_videos, lengths,
                                             batch_size=10, num_similar=3, max_seqlen=32)
    assert videos.shape == (10,) and snippets.shape == (10, 32)
    for i, j in losses.CONTRASTIVE_PAIRS:
      assert videos[i] != videos[j]
      assert np.any(labels[position[videos[i]]] * labels[position[videos[j]]] > 0)
    for v, idx in zip(videos, snippets):
      length = lengths[int(v)]
      grid = (np.arange(32) * length / 32).astype(int)
      upper = np.append(grid[1:], length - 1)
      assert np.all(np.diff(idx) >= 0) and np.all((grid <= idx) & (idx <= upper))
    again = sampling.sample_batch(make(seed), classwise, train_videos, lengths,
                                  batch_size=10, num_similar=3, max_seqlen=32)
    np.testing.assert_array_equal(again[1], snippets)   # a pure function of the seed


def test_random_perturb_identity_at_equal_length_and_reaches_both_ends():
  np.testing.assert_array_equal(sampling.random_perturb(np.random.RandomState(0), 16, 16),
                                np.arange(16))
  seen = np.stack([sampling.random_perturb(np.random.RandomState(s), 5, 16)
                   for s in range(200)])
  assert seen.min() == 0 and seen.max() == 4 and np.all(seen[:, 0] == 0)
  # Draws include both ends: index 1 (grid 0.3125 -> 0 .. 0) never; index 3 (0.9375 ->
  # 0 .. 1) takes 0 and 1.
  assert set(seen[:, 3].tolist()) == {0, 1}


def test_sampler_raises_small_batches_to_the_pairs():
  rng = np.random.default_rng(6)
  train_videos, labels, lengths = _synthetic_dataset(rng)
  classwise = sampling.classwise_videos(train_videos, labels)
  videos, _ = sampling.sample_batch(np.random.RandomState(0), classwise, train_videos,
                                    lengths, batch_size=4, num_similar=3, max_seqlen=8)
  assert videos.shape == (6,)


def test_outputs_are_a_pytree():
  o = CO2NetOutputs(*(jnp.zeros(i + 1) for i in range(5)))
  assert len(jax.tree_util.tree_leaves(o)) == 5
