"""The jitted train step: compiles once, learns, carries the mask state, rejects bad batches."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from salx.methods.sal import hparams as sal_hparams
from salx.methods.sal.method import SAL_METHOD
from salx.methods.sal.model import SAL
from salx.core.train_step import check_batch, create_train_state, make_train_step

B, T, D, H, C = 4, 40, 32, 8, 3
VARIANT = sal_hparams.THUMOS14.replace(num_segments=T, hidden_dim=H)


def _setup(learning_rate=1e-4):
  model = SAL(num_classes=C, feature_dim=D, hidden_dim=H)
  state = create_train_state(SAL_METHOD, model, VARIANT.replace(learning_rate=learning_rate),
                             jax.random.key(0), input_shape=(B, T, D))
  return model, state


def _batch(seed):
  rng = np.random.default_rng(seed)
  labels = np.eye(C, dtype=np.float32)[rng.integers(0, C, B)]
  features = rng.normal(size=(B, T, D)).astype(np.float32) * 0.1
  # Class-specific signal in the middle of each video.
  features[:, 10:20, :C] += 2 * labels[:, None, :]
  features[:, 10:20, D // 2:D // 2 + C] += 2 * labels[:, None, :]
  return {"features": features, "labels": labels}


def test_step_compiles_once_and_reduces_the_loss():
  model, state = _setup(learning_rate=1e-3)
  hp = VARIANT.replace(learning_rate=1e-3)
  traces = []

  def counting_step(state, batch, rng, hp):
    traces.append(1)
    return make_train_step(SAL_METHOD, model)(state, batch, rng, hp)

  step = jax.jit(counting_step, donate_argnums=0)
  rng = jax.random.key(1)
  history = []
  batch = _batch(0)
  for _ in range(40):  # one batch, over and over: the loss must fall
    state, metrics = step(state, batch, rng, hp)
    history.append(float(metrics["loss"]))
  assert len(traces) == 1
  assert int(state.step) == 40
  assert np.mean(history[-5:]) < 0.95 * np.mean(history[:5])
  assert float(metrics["mask_mu"]) != pytest.approx(1.0 / C)
  for key in ("mil", "bg", "act", "mix", "mc", "se"):
    assert np.isfinite(float(metrics[key]))


def test_same_rng_same_result_and_dropout_changes_with_the_step():
  model, state = _setup()
  step = jax.jit(make_train_step(SAL_METHOD, model))
  batch, rng = _batch(0), jax.random.key(3)
  _, m1 = step(state, batch, rng, VARIANT)
  _, m2 = step(state, batch, rng, VARIANT)
  assert float(m1["loss"]) == float(m2["loss"])
  later = state.replace(step=state.step + 1)
  _, m3 = step(later, batch, rng, VARIANT)
  assert float(m3["loss"]) != float(m1["loss"])


def test_mask_state_starts_at_one_over_c_and_one():
  _, state = _setup()
  assert float(state.method_state.mu) == pytest.approx(1 / C)
  assert float(state.method_state.var) == 1.0


def test_bad_batches_are_rejected_with_clear_errors():
  model, _ = _setup()
  good = _batch(0)
  check_batch(good, SAL_METHOD, model, VARIANT)

  wrong_dim = dict(good, features=good["features"][..., :16])
  with pytest.raises(ValueError, match=r"train batch 7: features must be \[B, T, 32\]"):
    check_batch(wrong_dim, SAL_METHOD, model, VARIANT, source="train batch 7")

  short = dict(good, features=good["features"][:, :16])
  with pytest.raises(ValueError, match="T = 16 snippets is smaller than the largest top-k"):
    check_batch(short, SAL_METHOD, model, VARIANT)

  no_label = dict(good, labels=good["labels"].copy(), names=["a", "b", "c", "d"])
  no_label["labels"][2] = 0
  with pytest.raises(ValueError, match=r"\['c'\] have no positive label"):
    check_batch(no_label, SAL_METHOD, model, VARIANT)

  nan = dict(good, features=good["features"].copy())
  nan["features"][1, 3, 5] = np.nan
  with pytest.raises(ValueError, match=r"NaN or infinite feature values in video\(s\) \[1\]"):
    check_batch(nan, SAL_METHOD, model, VARIANT)


def test_step_refuses_a_too_short_sequence_while_tracing():
  model, state = _setup()
  step = jax.jit(make_train_step(SAL_METHOD, model))
  batch = _batch(0)
  batch = dict(batch, features=batch["features"][:, :16])
  with pytest.raises(ValueError, match="smaller than the largest top-k"):
    step(state, batch, jax.random.key(0), VARIANT)


def test_step_counts_videos_with_bad_inputs_on_the_device():
  model, state = _setup()
  step = jax.jit(make_train_step(SAL_METHOD, model))
  batch = _batch(0)
  _, metrics = step(state, batch, jax.random.key(0), VARIANT)
  assert float(metrics["bad_videos"]) == 0
  bad = dict(batch, features=batch["features"].copy(), labels=batch["labels"].copy())
  bad["features"][0, 5, 3] = np.inf
  bad["labels"][2] = 0
  _, metrics = step(state, bad, jax.random.key(0), VARIANT)
  assert float(metrics["bad_videos"]) == 2
