"""The train step learns: Adam's first update, the carried mask statistics, a run that improves.

Tiny dims and dropout off (rate 0) so every step is deterministic and can be
recomputed by hand.
"""

import functools

import jax
import numpy as np
import pytest

from salx.app import data
from salx.app import trainer
from salx.methods.sal import losses
from salx.methods.sal import hparams as sal_hparams
from salx.methods.sal.method import SAL_METHOD
from salx.core.train_step import create_train_state, make_train_step
from tests.conftest import tiny_config

B, T, D, H, C = 3, 48, 16, 8, 4
LR, WD = 1e-2, 0.05   # A large decay, so coupled and decoupled decay differ clearly.
EPS = 1e-8            # Adam's eps (SPEC 2.8).


@functools.lru_cache(maxsize=None)
def _setup(name):
  """(variant at T, SAL at tiny dims without dropout, fresh TrainState, jitted step).

  Cached per variant so the tests of this file compile each step once.
  """
  variant = sal_hparams.PRESETS[name].replace(
      num_segments=T, hidden_dim=H, dropout_rate=0.0, learning_rate=LR, weight_decay=WD)
  model = SAL_METHOD.build_model(variant, num_classes=C, feature_dim=D)
  params = jax.jit(lambda key: SAL_METHOD.init_params(model, variant, key, (B, T, D)))(
      jax.random.key(0))
  state = create_train_state(SAL_METHOD, model, variant, None, params=params)
  jitted = jax.jit(make_train_step(SAL_METHOD, model))
  return variant, model, state, lambda state, batch, rng: jitted(state, batch, rng, variant)


def _random_batch(seed):
  """{'features' [B, T, D], 'labels' [B, C]}: one class per video, its signal in a window."""
  rng = np.random.default_rng(seed)
  classes = rng.integers(0, C, B)
  features = rng.normal(scale=0.5, size=(B, T, D)).astype(np.float32)
  for b, c in enumerate(classes):
    start = rng.integers(0, T - 12)
    features[b, start:start + 12, c] += 2.0
    features[b, start:start + 12, D // 2 + c] += 2.0
  return {"features": features, "labels": np.eye(C, dtype=np.float32)[classes]}


def test_first_step_is_adams_first_update_with_coupled_decay():
  variant, model, state, step = _setup("thumos14")
  batch = _random_batch(0)

  def loss(params):
    outputs = model.apply({"params": params}, batch["features"], variant, train=True)
    return losses.sal_loss(outputs, batch["labels"], state.method_state, variant)[0]

  grads = jax.jit(jax.grad(loss))(state.params)
  stepped, _ = step(state, batch, jax.random.key(1))
  assert int(stepped.step) == 1

  leaves = zip(jax.tree_util.tree_leaves_with_path(state.params),
               jax.tree_util.tree_leaves(grads), jax.tree_util.tree_leaves(stepped.params))
  decoupled_differs = False
  for (path, p), g, p1 in leaves:
    p, g, p1 = (np.asarray(a, np.float64) for a in (p, g, p1))
    g_decayed = g + WD * p
    # Bias-corrected m / sqrt(v) after one step is g' / |g'|: the update is
    # -lr * g' / (|g'| + eps), elementwise.
    expected = -LR * g_decayed / (np.abs(g_decayed) + EPS)
    np.testing.assert_allclose(p1 - p, expected, rtol=1e-4, atol=1e-7,
                               err_msg=jax.tree_util.keystr(path))
    decoupled = -LR * (g / (np.abs(g) + EPS) + WD * p)
    decoupled_differs |= bool(np.any(np.abs(decoupled - expected) > 1e-5))
  assert decoupled_differs   # The check tells coupled from decoupled (AdamW) decay.


@pytest.mark.parametrize("name", ["thumos14", "activitynet"])
def test_mask_statistics_carried_in_the_state_are_the_running_ema(name):
  variant, model, state, step = _setup(name)
  rng = jax.random.key(2)
  mu, var = 1.0 / C, 1.0   # SPEC 2.5: the initial statistics.
  ema = variant.mask_ema
  for seed in range(3):
    batch = _random_batch(seed)
    # The cas the step sees: the model at the params before this step.
    cas = model.apply({"params": state.params}, batch["features"], variant,
                      train=True).cas
    top = np.asarray(jax.nn.softmax(cas, axis=-1), np.float64).max(axis=-1).ravel()  # [B*T]
    mu = ema * mu + (1 - ema) * top.mean()
    var = ema * var + (1 - ema) * top.var(ddof=1)
    state, metrics = step(state, batch, rng)
    np.testing.assert_allclose([metrics["mask_mu"], metrics["mask_var"]], [mu, var],
                               rtol=1e-5)
  np.testing.assert_allclose([state.method_state.mu, state.method_state.var], [mu, var],
                             rtol=1e-5)
  # Three steps moved the statistics well away from (1 / C, 1): a state that is
  # not written back (or written back once only) fails the check above.
  assert abs(var - 1.0) > 1e-2 and abs(mu - 1.0 / C) > 1e-3


@pytest.mark.slow
def test_a_short_synthetic_run_beats_the_untrained_model(tmp_path):
  # Observed (60 steps at lr 3e-3, the tiny synthetic set): average mAP untrained
  # 0.046 -> last 0.177 (seed 0), 0.046 -> 0.237 (seed 1), 0.079 -> 0.191 (seed 2);
  # with learning_rate 0 the last step equals the untrained model exactly.
  steps = 60
  overrides = dict(num_steps=steps, eval_every=steps, eval_start_step=steps,
                   checkpoint_every=steps, seed=0)
  data_dir = tmp_path / "data"
  data.open_data(tiny_config(data_dir))
  result = trainer.train_and_evaluate(
      tiny_config(data_dir, sal={"learning_rate": 3e-3}, **overrides),
      str(tmp_path / "work"))
  untrained, last = result.metrics["untrained"], result.metrics["last"]
  assert (untrained["step"], last["step"]) == (0, steps)
  assert last["average_mAP"] > untrained["average_mAP"] + 0.05, (untrained, last)
