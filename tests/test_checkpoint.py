"""Orbax checkpoints of a run: latest-N for resuming, the best one by average mAP."""

import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from salx.app import checkpoint
from salx.core import model as model_lib
from salx.core import sharding
from salx.core import train_step
from salx.core import variants

VARIANT = variants.THUMOS14.replace(num_segments=32)


@pytest.fixture(scope="module")
def state():
  """A replicated TrainState of a tiny model, one step trained (Adam moments set)."""
  model = model_lib.build_model(3, VARIANT, feature_dim=16, hidden_dim=4)
  mesh = sharding.make_mesh()
  state = sharding.replicate(
      train_step.create_train_state(model, VARIANT, jax.random.key(0),
                                    input_shape=(2, 32, 16)), mesh)
  batch = {"features": jax.random.normal(jax.random.key(1), (2, 32, 16)),
           "labels": jnp.eye(3)[jnp.array([0, 2])]}
  step = jax.jit(train_step.make_train_step(model, VARIANT))
  state, _ = step(state, batch, jax.random.key(2))
  return state


def _equal_trees(a, b):
  leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
  assert len(leaves_a) == len(leaves_b)
  return all(np.array_equal(np.asarray(x), np.asarray(y))
             for x, y in zip(leaves_a, leaves_b))


def test_empty_workdir_has_nothing_to_restore(tmp_path, state):
  with checkpoint.RunCheckpoints(tmp_path) as ckpts:
    assert ckpts.latest_step() is None and ckpts.best_step() is None
    assert ckpts.restore_latest(state) is None
    assert ckpts.restore_best(state.params) is None


def test_latest_round_trip_is_exact_and_keeps_n(tmp_path, state):
  progress = {"best": {"step": 2, "average_mAP": 0.123456789012345678},
              "history": [{"step": 2, "average_mAP": float("nan")}]}
  with checkpoint.RunCheckpoints(tmp_path, keep=2) as ckpts:
    for step in (1, 2, 3):
      assert ckpts.save_latest(step, state, dict(progress, step=step))
    assert not ckpts.save_latest(3, state, progress)   # Already saved.
  with checkpoint.RunCheckpoints(tmp_path, keep=2) as ckpts:
    assert sorted(int(d) for d in os.listdir(ckpts.latest_dir) if d.isdigit()) == [2, 3]
    restored, restored_progress = ckpts.restore_latest(state)
  assert isinstance(restored, train_step.TrainState)
  assert _equal_trees(restored.params, state.params)
  assert _equal_trees(restored.opt_state, state.opt_state)
  assert float(restored.mask_state.mu) == float(state.mask_state.mu)
  assert float(restored.mask_state.var) == float(state.mask_state.var)
  assert int(restored.step) == int(state.step) == 1
  assert restored_progress["step"] == 3
  assert restored_progress["best"] == progress["best"]      # Floats exactly.
  assert np.isnan(restored_progress["history"][0]["average_mAP"])


def test_best_keeps_the_highest_average_map(tmp_path, state):
  with checkpoint.RunCheckpoints(tmp_path) as ckpts:
    for step, score in ((10, 0.3), (20, 0.5), (30, 0.4)):
      ckpts.save_best(step, state.params, {"average_mAP": score, "step": step})
    ckpts.wait()
    assert ckpts.best_step() == 20
    params, record, step = ckpts.restore_best(state.params)
  assert step == 20 and record == {"average_mAP": 0.5, "step": 20}
  assert _equal_trees(params, state.params)
  assert sorted(os.listdir(os.path.join(tmp_path, checkpoint.BEST_DIR))) == ["20"]


def test_best_of_a_killed_run_is_replaced_or_discarded(tmp_path, state):
  with checkpoint.RunCheckpoints(tmp_path) as ckpts:
    ckpts.save_best(20, state.params, {"average_mAP": 0.5})
    ckpts.save_best(20, state.params, {"average_mAP": 0.6})   # Same step again.
    ckpts.wait()
    assert ckpts.restore_best(state.params)[1] == {"average_mAP": 0.6}
    assert ckpts.discard_best_after(20) == []
    assert ckpts.discard_best_after(19) == [20]
    assert ckpts.best_step() is None


def test_best_record_needs_the_score(tmp_path, state):
  with checkpoint.RunCheckpoints(tmp_path) as ckpts:
    with pytest.raises(ValueError, match="average_mAP"):
      ckpts.save_best(1, state.params, {"mAP": 0.5})


def test_partial_checkpoint_of_a_killed_save_is_ignored(tmp_path, state):
  with checkpoint.RunCheckpoints(tmp_path) as ckpts:
    ckpts.save_latest(5, state, {"step": 5})
  partial = os.path.join(tmp_path, checkpoint.LATEST_DIR, "10.orbax-checkpoint-tmp-1")
  os.makedirs(os.path.join(partial, "state"))
  with checkpoint.RunCheckpoints(tmp_path) as ckpts:
    assert ckpts.latest_step() == 5
    assert ckpts.restore_latest(state)[1] == {"step": 5}
  assert not os.path.exists(partial)   # Cleaned up by the next run.


def test_keep_must_be_positive(tmp_path):
  with pytest.raises(ValueError, match="keep_checkpoints"):
    checkpoint.RunCheckpoints(tmp_path, keep=0)
