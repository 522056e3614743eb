"""Loss terms and pseudo labels on small hand-made cases (SPEC 2.4-2.7)."""

import jax
import jax.numpy as jnp
import numpy as np

from salx.methods.sal import losses
from salx.methods.sal import pseudo_labels
from salx.core import topk as scores
from salx.methods.sal import hparams as sal_hparams


def test_video_cross_entropy_normalises_multi_hot_labels():
  logits = jnp.asarray([[0.0, 1.0, 2.0]])
  labels = jnp.asarray([[0.0, 1.0, 1.0]])
  log_p = jax.nn.log_softmax(logits)[0]
  yn = np.array([0, 0.5, 0.5]) + 1e-10
  np.testing.assert_allclose(losses.video_cross_entropy(logits, labels),
                             -np.sum(yn * log_p), rtol=1e-6)


def test_generalized_cross_entropy_weighs_positives_and_negatives_separately():
  p = jnp.asarray([[0.9, 0.2, 0.6]])
  g = jnp.asarray([[1.0, 0.0, 0.0]])
  w = jnp.asarray([[1.0, 0.5, 1.0]])
  pos = (1 - np.sqrt(0.9 + 1e-7)) / 0.5
  neg = (0.5 * (1 - np.sqrt(0.8 + 1e-7)) / 0.5 + (1 - np.sqrt(0.4 + 1e-7)) / 0.5) / 1.5
  np.testing.assert_allclose(losses.generalized_cross_entropy(p, g, w), pos + neg,
                             rtol=1e-5)


def test_uniform_kl_is_zero_for_uniform_logits_and_positive_otherwise():
  assert abs(float(losses.uniform_kl(jnp.zeros((2, 5))))) < 1e-7
  assert float(losses.uniform_kl(jnp.asarray([[3.0, 0, 0, 0, 0]]))) > 0.1


def test_topk_mean_averages_values_at_the_top_scores():
  values = jnp.arange(10.0).reshape(1, 5, 2)           # [B, T, C]
  ranking = jnp.asarray([[[5, 0], [1, 4], [3, 3], [0, 2], [4, 1]]], jnp.float32)
  out = scores.topk_mean(values, ranking, 2)
  # class 0: top scores at t=0 (5) and t=4 (4) -> values 0, 8; class 1: t=1, t=2 -> 3, 5.
  np.testing.assert_allclose(out, [[4.0, 4.0]])


def test_topk_indicator_marks_exactly_k():
  s = jnp.asarray([[0.1, 0.9, 0.5, 0.7]])
  np.testing.assert_array_equal(scores.topk_indicator(s, 2), [[0, 1, 0, 1]])


def test_pseudo_label_thumos_gate():
  t, c = 40, 3
  rng = np.random.default_rng(0)
  cas = jnp.asarray(rng.normal(size=(2, t, c)), jnp.float32)
  a_flow = jnp.asarray(rng.uniform(size=(2, t)), jnp.float32)
  a_rgb = jnp.asarray(rng.uniform(size=(2, t)), jnp.float32)
  labels = jnp.asarray([[1, 0, 0], [0, 1, 1]], jnp.float32)
  thumos = sal_hparams.THUMOS14
  g = np.asarray(pseudo_labels.pseudo_label(cas, a_flow, a_rgb, labels, thumos))
  fused = 0.9 * np.asarray(a_flow) + 0.1 * np.asarray(a_rgb)
  k1 = t // 8 + 17
  conf = np.maximum(np.asarray(cas), 0).sum(-1)
  for b in range(2):
    top_a = set(np.argsort(-fused[b])[:k1])
    top_conf = set(np.argsort(-conf[b])[:t // 2])
    assert set(np.flatnonzero(g[b])) == top_a & top_conf


def test_pseudo_label_activitynet_takes_a_fixed_top_40_without_gate():
  t = 64   # Larger than every k: 40 pseudo-label snippets, T // 4 = 16 for MIL.
  anet = sal_hparams.ACTIVITYNET
  assert (anet.pseudo_topk(t), anet.mil_topk(t)) == (40, 16)
  idx = np.arange(t)
  a_flow, a_rgb = np.zeros((3, t)), np.zeros((3, t))
  # Video 0: both streams equal, so any lam ranks alike; 40 snippets stand out.
  chosen0 = np.r_[0:10, 20:40, 54:64]
  a_flow[0] = np.where(np.isin(idx, chosen0), 0.9, 0.3) - 0.001 * idx
  a_rgb[0] = a_flow[0]
  # Video 1: the set depends on lam. Flow-heavy A = 48..63 (flow 0.77, rgb 0) and
  # rgb-heavy B = 0..15 (flow 0.4, rgb 0.8) both beat the lam-free C = 16..31 (0.5)
  # only for lam in about 0.25 .. 0.34; the top 8 of C (by a small decreasing
  # offset: 16..23) complete the 40. lam = 0.1 would take C and drop half of B,
  # lam = 0.5 take C and drop half of A.
  groups = [idx < 16, idx < 32, idx >= 48]
  a_flow[1] = np.select(groups, [0.4, 0.5 - 1e-4 * idx, 0.77 - 1e-3 * (idx - 48)], 0.1)
  a_rgb[1] = np.select(groups, [0.8, 0.5 - 1e-4 * idx, 0.0], 0.1)
  a_flow[2], a_rgb[2] = a_flow[0], a_rgb[0]
  # Video 2 has no label: no pseudo label at all.
  labels = jnp.asarray([[1, 0, 0], [0, 1, 1], [0, 0, 0]], jnp.float32)
  # sum_c relu(cas) is high only on 0..15 and 48..63: THUMOS's gate (top T // 2)
  # would drop 16..23 of video 1; ActivityNet has no gate.
  cas = np.where(((idx < 16) | (idx >= 48))[None, :, None], 1.0, -1.0) * np.ones((3, t, 3))
  g = np.asarray(pseudo_labels.pseudo_label(
      jnp.asarray(cas, jnp.float32), jnp.asarray(a_flow, jnp.float32),
      jnp.asarray(a_rgb, jnp.float32), labels, anet))
  np.testing.assert_array_equal(np.flatnonzero(g[0]), chosen0)
  np.testing.assert_array_equal(np.flatnonzero(g[1]), np.r_[0:24, 48:64])
  np.testing.assert_array_equal(g[2], np.zeros(t))


def test_adaptive_mask_uses_updated_statistics():
  rng = np.random.default_rng(1)
  cas = jnp.asarray(rng.normal(size=(2, 6, 4)) * 3, jnp.float32)
  state = pseudo_labels.MaskState.initial(4)
  w, new = pseudo_labels.adaptive_mask(cas, state, sal_hparams.THUMOS14)
  m = np.asarray(jax.nn.softmax(cas, -1)).max(-1)
  mu = 0.7 * 0.25 + 0.3 * m.mean()
  var = 0.7 * 1.0 + 0.3 * m.var(ddof=1)
  np.testing.assert_allclose([new.mu, new.var], [mu, var], rtol=1e-6)
  expected = np.exp(-np.minimum(m - mu, 0) ** 2 / (var / 2))
  np.testing.assert_allclose(w, expected, rtol=1e-6)
  assert np.all(np.asarray(w)[m >= mu] == 1.0)


def test_mix_labels_pairs_each_video_with_the_previous_one():
  g = jnp.asarray([[1, 0, 0], [0, 0, 1], [0, 0, 0]], jnp.float32)
  w = jnp.asarray([[1, 1, 1], [0.5, 0.5, 0.5], [0, 0, 0]], jnp.float32)
  g_mix, w_mix = pseudo_labels.mix_labels(g, w)
  np.testing.assert_array_equal(g_mix, [[1, 0, 0], [1, 0, 1], [0, 0, 1]])
  np.testing.assert_allclose(w_mix, [[0.5] * 3, [0.75] * 3, [0.25] * 3])
