"""Loss terms and pseudo labels on small hand-made cases (SPEC 2.4-2.7)."""

import jax
import jax.numpy as jnp
import numpy as np

from salx.core import losses
from salx.core import pseudo_labels
from salx.core import scores
from salx.core import variants


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


def test_pseudo_label_thumos_gate_and_activitynet_fixed_k():
  t, c = 40, 3
  rng = np.random.default_rng(0)
  cas = jnp.asarray(rng.normal(size=(2, t, c)), jnp.float32)
  a_flow = jnp.asarray(rng.uniform(size=(2, t)), jnp.float32)
  a_rgb = jnp.asarray(rng.uniform(size=(2, t)), jnp.float32)
  labels = jnp.asarray([[1, 0, 0], [0, 1, 1]], jnp.float32)
  thumos = variants.THUMOS14
  g = np.asarray(pseudo_labels.pseudo_label(cas, a_flow, a_rgb, labels, thumos))
  fused = 0.9 * np.asarray(a_flow) + 0.1 * np.asarray(a_rgb)
  k1 = t // 8 + 17
  conf = np.maximum(np.asarray(cas), 0).sum(-1)
  for b in range(2):
    top_a = set(np.argsort(-fused[b])[:k1])
    top_conf = set(np.argsort(-conf[b])[:t // 2])
    assert set(np.flatnonzero(g[b])) == top_a & top_conf
  anet = variants.ACTIVITYNET
  g = np.asarray(pseudo_labels.pseudo_label(cas, a_flow, a_rgb, labels, anet))
  fused = 0.7 * np.asarray(a_flow) + 0.3 * np.asarray(a_rgb)
  for b in range(2):
    assert set(np.flatnonzero(g[b])) == set(np.argsort(-fused[b])[:40])


def test_adaptive_mask_uses_updated_statistics():
  rng = np.random.default_rng(1)
  cas = jnp.asarray(rng.normal(size=(2, 6, 4)) * 3, jnp.float32)
  state = pseudo_labels.MaskState.initial(4)
  w, new = pseudo_labels.adaptive_mask(cas, state, variants.THUMOS14)
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
