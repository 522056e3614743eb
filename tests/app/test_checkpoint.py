"""Orbax checkpoints of a run: latest-N for resuming, the best one by average mAP."""

import asyncio
import errno
import logging
import os
import shutil
import sys
import types

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
from orbax.checkpoint._src.path import async_path
import pytest

from salx.app import checkpoints as checkpoints_lib
from salx.app import runtime
from salx.methods.sal import model as model_lib
from salx.core import sharding
from salx.core import train_step
from salx.methods.sal import hparams as sal_hparams
from salx.methods.sal.method import SAL_METHOD

VARIANT = sal_hparams.THUMOS14.replace(num_segments=32, hidden_dim=4)


@pytest.fixture(scope="module")
def state():
  """A replicated TrainState of a tiny model (its shapes and dtypes) holding values of
  its own in every array, step 1, as a trained state has (nothing is compiled)."""
  model = model_lib.build_model(3, VARIANT, feature_dim=16)
  shapes = jax.eval_shape(lambda key: train_step.create_train_state(
      SAL_METHOD, model, VARIANT, key, input_shape=(2, 32, 16)), jax.random.key(0))
  leaves, tree = jax.tree_util.tree_flatten(shapes)
  rng = np.random.default_rng(0)
  state = jax.tree_util.tree_unflatten(tree, [
      rng.normal(size=x.shape).astype(x.dtype) if np.issubdtype(x.dtype, np.floating)
      else np.ones(x.shape, x.dtype) for x in leaves])
  return sharding.replicate(state, sharding.make_mesh())


def _equal_trees(a, b):
  leaves_a, leaves_b = jax.tree_util.tree_leaves(a), jax.tree_util.tree_leaves(b)
  assert len(leaves_a) == len(leaves_b)
  return all(np.array_equal(np.asarray(x), np.asarray(y))
             for x, y in zip(leaves_a, leaves_b))


def test_empty_workdir_has_nothing_to_restore(tmp_path, state):
  with checkpoints_lib.RunCheckpoints(tmp_path) as ckpts:
    assert ckpts.latest_step() is None and ckpts.best_step() is None
    assert ckpts.restore_latest(state) is None
    assert ckpts.restore_best(state.params) is None


def test_latest_round_trip_is_exact_and_keeps_n(tmp_path, state):
  progress = {"best": {"step": 2, "average_mAP": 0.123456789012345678},
              "history": [{"step": 2, "average_mAP": float("nan")}]}
  with checkpoints_lib.RunCheckpoints(tmp_path, keep=2) as ckpts:
    for step in (1, 2, 3):
      assert ckpts.save_latest(step, state, dict(progress, step=step))
    assert not ckpts.save_latest(3, state, progress)   # Already saved.
  with checkpoints_lib.RunCheckpoints(tmp_path, keep=2) as ckpts:
    assert sorted(int(d) for d in os.listdir(ckpts.latest_dir) if d.isdigit()) == [2, 3]
    restored, restored_progress = ckpts.restore_latest(state)
  assert isinstance(restored, train_step.TrainState)
  assert _equal_trees(restored.params, state.params)
  assert _equal_trees(restored.opt_state, state.opt_state)
  assert float(restored.method_state.mu) == float(state.method_state.mu)
  assert float(restored.method_state.var) == float(state.method_state.var)
  assert int(restored.step) == int(state.step) == 1
  assert restored_progress["step"] == 3
  assert restored_progress["best"] == progress["best"]      # Floats exactly.
  assert np.isnan(restored_progress["history"][0]["average_mAP"])


def test_best_keeps_the_highest_average_map(tmp_path, state):
  with checkpoints_lib.RunCheckpoints(tmp_path) as ckpts:
    for step, score in ((10, 0.3), (20, 0.5), (30, 0.4)):
      ckpts.save_best(step, state.params, {"average_mAP": score, "step": step})
    ckpts.wait()
    assert ckpts.best_step() == 20
    params, record, step = ckpts.restore_best(state.params)
  assert step == 20 and record == {"average_mAP": 0.5, "step": 20}
  assert _equal_trees(params, state.params)
  assert sorted(os.listdir(os.path.join(tmp_path, checkpoints_lib.BEST_DIR))) == ["20"]


def test_best_of_a_killed_run_is_replaced_or_discarded(tmp_path, state):
  with checkpoints_lib.RunCheckpoints(tmp_path) as ckpts:
    ckpts.save_best(20, state.params, {"average_mAP": 0.5})
    ckpts.save_best(20, state.params, {"average_mAP": 0.6})   # Same step again.
    ckpts.wait()
    assert ckpts.restore_best(state.params)[1] == {"average_mAP": 0.6}
    assert ckpts.discard_best_after(20) == []
    assert ckpts.discard_best_after(19) == [20]
    assert ckpts.best_step() is None


def test_best_record_needs_the_score(tmp_path, state):
  with checkpoints_lib.RunCheckpoints(tmp_path) as ckpts:
    with pytest.raises(ValueError, match="average_mAP"):
      ckpts.save_best(1, state.params, {"mAP": 0.5})


def test_partial_checkpoint_of_a_killed_save_is_ignored(tmp_path, state):
  with checkpoints_lib.RunCheckpoints(tmp_path) as ckpts:
    ckpts.save_latest(5, state, {"step": 5})
  partial = os.path.join(tmp_path, checkpoints_lib.LATEST_DIR, "10.orbax-checkpoint-tmp-1")
  os.makedirs(os.path.join(partial, "state"))
  with checkpoints_lib.RunCheckpoints(tmp_path) as ckpts:
    assert ckpts.latest_step() == 5
    assert ckpts.restore_latest(state)[1] == {"step": 5}
  assert not os.path.exists(partial)   # Cleaned up by the next run.


def test_keep_must_be_positive(tmp_path):
  with pytest.raises(ValueError, match="keep_checkpoints"):
    checkpoints_lib.RunCheckpoints(tmp_path, keep=0)


# ----------------------------------------------------------------------------
# Faults: damaged checkpoints, another model config, failed writes. Small trees.


def _tree(rows=16, cols=8, seed=0):
  """A small params-like pytree: {params: {fc1: {kernel [rows, cols], bias [cols]}},
  count []}."""
  kernel = jax.random.normal(jax.random.key(seed), (rows, cols))
  return {"params": {"fc1": {"kernel": kernel, "bias": jnp.full((cols,), seed + 1.0)}},
          "count": jnp.array(seed, jnp.int32)}


def _save_steps(workdir, steps, keep=3, **tree_args):
  with checkpoints_lib.RunCheckpoints(workdir, keep=keep) as ckpts:
    for step in steps:
      assert ckpts.save_latest(step, _tree(seed=step, **tree_args), {"step": step})


def _truncate_arrays(step_dir):
  """Halves every array data file of the step's state."""
  files = [p for p in (step_dir / "state" / "d").iterdir()]
  assert files
  for path in files:
    with open(path, "r+b") as f:
      f.truncate(path.stat().st_size // 2)


_DAMAGE = {
    "truncated array file": _truncate_arrays,
    "deleted progress file": lambda d: (d / "progress" / "metadata").unlink(),
    "deleted array index": lambda d: (d / "state" / "manifest.ocdbt").unlink(),
}


def _warnings(caplog, text):
  return [r for r in caplog.records
          if r.levelname == "WARNING" and text in r.getMessage()]


def _no_tmp_folders(folder):
  return not [n for n in os.listdir(folder) if checkpoints_lib.TMP_SUFFIX in n]


@pytest.mark.parametrize("damage", sorted(_DAMAGE))
def test_unrestorable_newest_checkpoint_is_skipped_with_one_warning(
    damage, tmp_path, caplog):
  _save_steps(tmp_path, (10, 20, 30))
  newest = tmp_path / checkpoints_lib.LATEST_DIR / "30"
  _DAMAGE[damage](newest)
  with checkpoints_lib.RunCheckpoints(tmp_path, keep=3) as ckpts:
    with caplog.at_level("WARNING"):
      tree, progress = ckpts.restore_latest(_tree())
    assert progress == {"step": 20} and _equal_trees(tree, _tree(seed=20))
    skipped = _warnings(caplog, "cannot be restored")
    assert len(skipped) == 1
    assert f"step 30 in {ckpts.latest_dir}" in skipped[0].getMessage()
    assert "using step 20" in skipped[0].getMessage()
    assert newest.is_dir()                      # Kept for a look.
    assert ckpts.latest_step() == 20
    # The resumed run's next checkpoint supersedes the damaged one.
    assert ckpts.save_latest(30, _tree(seed=31), {"step": 30})
  with checkpoints_lib.RunCheckpoints(tmp_path, keep=3) as ckpts:
    assert ckpts._latest.steps() == [10, 20, 30]
    tree, progress = ckpts.restore_latest(_tree())
  assert progress == {"step": 30} and _equal_trees(tree, _tree(seed=31))


def test_deleted_tree_metadata_alone_still_restores(tmp_path):
  _save_steps(tmp_path, (10, 20))
  (tmp_path / checkpoints_lib.LATEST_DIR / "20" / "state" / "_METADATA").unlink()
  with checkpoints_lib.RunCheckpoints(tmp_path) as ckpts:
    tree, progress = ckpts.restore_latest(_tree())
  assert progress == {"step": 20} and _equal_trees(tree, _tree(seed=20))


def test_no_restorable_checkpoint_is_one_error_naming_the_folder(tmp_path):
  _save_steps(tmp_path, (10, 20))
  with checkpoints_lib.RunCheckpoints(tmp_path) as ckpts:
    ckpts.save_best(20, _tree()["params"], {"average_mAP": 0.5})
  latest, best = tmp_path / checkpoints_lib.LATEST_DIR, tmp_path / checkpoints_lib.BEST_DIR
  _truncate_arrays(latest / "10")
  (latest / "20" / "progress" / "metadata").unlink()
  (best / "20" / "params" / "manifest.ocdbt").unlink()
  with checkpoints_lib.RunCheckpoints(tmp_path) as ckpts:
    with pytest.raises(checkpoints_lib.CheckpointError) as raised:
      ckpts.restore_latest(_tree())
    message = str(raised.value)
    assert message.startswith(f"no checkpoint in {latest} can be restored (step 20: ")
    assert "; step 10: " in message and "\n" not in message
    with pytest.raises(checkpoints_lib.CheckpointError,
                       match=f"no checkpoint in {best} can be restored .step 20: "):
      ckpts.restore_best(_tree()["params"])
  assert sorted(os.listdir(latest)) == ["10", "20"] and os.listdir(best) == ["20"]


def test_checkpoint_of_another_config_names_the_differing_arrays(tmp_path):
  _save_steps(tmp_path, (10, 20), rows=256, cols=16)
  with checkpoints_lib.RunCheckpoints(tmp_path) as ckpts:
    ckpts.save_best(20, _tree(256, 16)["params"], {"average_mAP": 0.5})
  template = _tree(64, 8)
  template["count"] = template["count"].astype(jnp.float32)
  template["params"]["fc2"] = {"bias": jnp.zeros(3)}
  with checkpoints_lib.RunCheckpoints(tmp_path) as ckpts:
    with pytest.raises(checkpoints_lib.CheckpointError) as raised:
      ckpts.restore_latest(template)
    assert str(raised.value) == (
        f"the checkpoint of step 20 in {ckpts.latest_dir} was written by another "
        "model config: params/fc1/bias: checkpoint [16], config [8]; "
        "params/fc1/kernel: checkpoint [256, 16], config [64, 8]; params/fc2/bias: "
        "checkpoint missing, config float32[3]; count: checkpoint int32[], config "
        "float32[]; use the config it was trained with, or another workdir")
    with pytest.raises(checkpoints_lib.CheckpointError,
                       match=(f"step 20 in {ckpts.best_dir} was written by another "
                              r"model config: params/fc1/bias: checkpoint \[16\], "
                              r"config \[8\]; params/fc1/kernel: checkpoint "
                              r"\[256, 16\], config \[64, 8\]; use")):
      ckpts.restore_best(_tree(64, 8)["params"])
    # The right config still restores: nothing was touched.
    assert ckpts.restore_latest(_tree(256, 16))[1] == {"step": 20}


def test_train_state_of_another_hidden_dim(tmp_path, state):
  with checkpoints_lib.RunCheckpoints(tmp_path) as ckpts:
    ckpts.save_latest(1, state, {"step": 1})
  hp = VARIANT.replace(hidden_dim=8)
  model = model_lib.build_model(3, hp, feature_dim=16)
  wider = jax.eval_shape(lambda: train_step.create_train_state(
      SAL_METHOD, model, hp, jax.random.key(0), input_shape=(2, 32, 16)))
  with checkpoints_lib.RunCheckpoints(tmp_path) as ckpts:
    with pytest.raises(checkpoints_lib.CheckpointError) as raised:
      ckpts.restore_latest(wider)
  message = str(raised.value)
  # The first array of the params (in path order) whose shape changed.
  saved = {jax.tree_util.keystr(k, simple=True, separator="/"): v.shape
           for k, v in jax.tree_util.tree_leaves_with_path(state.params)}
  new = {jax.tree_util.keystr(k, simple=True, separator="/"): v.shape
         for k, v in jax.tree_util.tree_leaves_with_path(wider.params)}
  first = min(k for k in saved if saved[k] != new[k])
  assert (f"was written by another model config: params/{first}: checkpoint "
          f"{list(saved[first])}, config {list(new[first])}; ") in message
  assert message.endswith("more); use the config it was trained with, or another "
                          "workdir")   # The Adam moments differ as well.


def test_best_falls_back_to_the_next_best(tmp_path, caplog):
  with checkpoints_lib.RunCheckpoints(tmp_path) as ckpts:
    ckpts.save_best(10, _tree(seed=10)["params"], {"average_mAP": 0.5})
  best = tmp_path / checkpoints_lib.BEST_DIR
  # A run killed between saving a better checkpoint and deleting the old one.
  shutil.copytree(best / "10", best / "20")
  (best / "20" / "metrics" / "metrics").write_text('{"average_mAP": 0.9}')
  (best / "20" / "params" / "manifest.ocdbt").unlink()
  with checkpoints_lib.RunCheckpoints(tmp_path) as ckpts:
    with caplog.at_level("WARNING"):
      params, record, step = ckpts.restore_best(_tree()["params"])
  assert step == 10 and record == {"average_mAP": 0.5}
  assert _equal_trees(params, _tree(seed=10)["params"])
  skipped = _warnings(caplog, "cannot be restored")
  assert len(skipped) == 1 and f"step 20 in {best}" in skipped[0].getMessage()


def _orbax_errors(caplog):
  return [r for r in caplog.records if r.levelno >= logging.ERROR]


def test_read_only_folder_fails_the_save_with_one_error(tmp_path, monkeypatch, caplog):
  """Root ignores chmod, so the read-only folder is Orbax's mkdir failing."""
  _save_steps(tmp_path, (10, 20), keep=2)

  async def read_only_mkdir(path, *args, **kwargs):
    raise OSError(errno.EROFS, "Read-only file system", str(path))

  monkeypatch.setattr(async_path, "mkdir", read_only_mkdir)
  with checkpoints_lib.RunCheckpoints(tmp_path, keep=2) as ckpts:
    with caplog.at_level("INFO"), pytest.raises(checkpoints_lib.CheckpointError) as raised:
      ckpts.save_latest(30, _tree(seed=30), {"step": 30})
    assert str(raised.value) == (
        f"could not write the checkpoint of step 30 in {ckpts.latest_dir}: [Errno 30] "
        "Read-only file system (the checkpoints already there are kept: steps 10, 20)")
    assert not _orbax_errors(caplog)
    assert _no_tmp_folders(ckpts.latest_dir)
    assert ckpts.latest_step() == 20
  monkeypatch.undo()
  with checkpoints_lib.RunCheckpoints(tmp_path, keep=2) as ckpts:
    assert ckpts._latest.steps() == [10, 20]
    assert ckpts.restore_latest(_tree())[1] == {"step": 20}


def _fail_json_writes(monkeypatch, step, item):
  """The JSON file of `item` at `step` hits a full disk (in the background write)."""
  save_fn = ocp.JsonCheckpointHandler._save_fn

  async def full_disk(self, x, directory):
    if f"{os.sep}{step}{checkpoints_lib.TMP_SUFFIX}" in str(directory) and item in str(
        directory):
      raise OSError(errno.ENOSPC, "No space left on device", str(directory))
    return await save_fn(self, x, directory)

  monkeypatch.setattr(ocp.JsonCheckpointHandler, "_save_fn", full_disk)


@pytest.mark.parametrize("seen_at", ["wait", "next save", "close"])
def test_full_disk_in_the_background_write_is_one_error(seen_at, tmp_path,
                                                        monkeypatch, caplog):
  _save_steps(tmp_path, (10, 20), keep=2)
  _fail_json_writes(monkeypatch, 30, "progress")
  ckpts = checkpoints_lib.RunCheckpoints(tmp_path, keep=2)
  with caplog.at_level("INFO"):
    assert ckpts.save_latest(30, _tree(seed=30), {"step": 30})   # Returns at once.
    with pytest.raises(checkpoints_lib.CheckpointError) as raised:
      {"wait": ckpts.wait, "close": ckpts.close,
       "next save": lambda: ckpts.save_latest(40, _tree(), {"step": 40})}[seen_at]()
  assert str(raised.value) == (
      f"could not write the checkpoint of step 30 in {ckpts.latest_dir}: [Errno 28] "
      "No space left on device (the checkpoints already there are kept: steps 10, 20)")
  assert not _orbax_errors(caplog)              # No tracebacks on the console.
  assert _no_tmp_folders(ckpts.latest_dir)      # The half-written step is gone.
  if seen_at == "next save":                    # Raised once; the folder works on.
    assert ckpts.latest_step() == 20
    assert ckpts.save_latest(40, _tree(seed=40), {"step": 40})
  ckpts.close()
  with checkpoints_lib.RunCheckpoints(tmp_path, keep=2) as ckpts:
    expected = [20, 40] if seen_at == "next save" else [10, 20]
    assert ckpts._latest.steps() == expected    # Step 10 was not pruned for 30.
    tree, progress = ckpts.restore_latest(_tree())
  assert progress == {"step": expected[-1]}
  assert _equal_trees(tree, _tree(seed=expected[-1]))


def test_full_disk_in_a_best_write_keeps_the_previous_best(tmp_path, monkeypatch):
  with checkpoints_lib.RunCheckpoints(tmp_path) as ckpts:
    ckpts.save_best(10, _tree(seed=10)["params"], {"average_mAP": 0.5})
  _fail_json_writes(monkeypatch, 20, "record")
  with checkpoints_lib.RunCheckpoints(tmp_path) as ckpts:
    ckpts.save_best(20, _tree(seed=20)["params"], {"average_mAP": 0.7})
    with pytest.raises(checkpoints_lib.CheckpointError,
                       match=(f"could not write the checkpoint of step 20 in "
                              f"{ckpts.best_dir}: .Errno 28. No space left on device "
                              r"\(the checkpoints already there are kept: steps 10\)")):
      ckpts.wait()
    assert _no_tmp_folders(ckpts.best_dir) and ckpts.best_step() == 10
    params, record, step = ckpts.restore_best(_tree()["params"])
  assert step == 10 and record == {"average_mAP": 0.5}
  assert _equal_trees(params, _tree(seed=10)["params"])


def test_only_orbax_noise_is_kept_off_the_console(tmp_path, monkeypatch):
  seen = []
  monkeypatch.setattr(sys, "unraisablehook", seen.append)
  loop = asyncio.new_event_loop()
  loop.close()
  try:   # What a tensorstore callback meets once Orbax has closed its loop.
    loop.call_soon_threadsafe(lambda: None)
  except RuntimeError as e:
    late_callback = e
  other = RuntimeError("something else")
  with checkpoints_lib.RunCheckpoints(tmp_path):
    assert sys.unraisablehook == seen.append    # The library leaves the hook alone.
  runtime.quiet_late_callbacks()               # What the command line does at start.
  for error in (late_callback, other):
    sys.unraisablehook(types.SimpleNamespace(
        exc_type=RuntimeError, exc_value=error, exc_traceback=error.__traceback__,
        err_msg=None, object=None))
  assert [info.exc_value for info in seen] == [other]


def test_unusable_workdir_is_one_error_naming_the_folder(tmp_path):
  hook = sys.unraisablehook
  not_a_folder = tmp_path / "file"
  not_a_folder.write_text("x")
  with pytest.raises(checkpoints_lib.CheckpointError,
                     match=(f"cannot open the checkpoint folder {not_a_folder}/"
                            f"{checkpoints_lib.LATEST_DIR}: .Errno 20. Not a directory")):
    checkpoints_lib.RunCheckpoints(not_a_folder)
  assert sys.unraisablehook == hook   # Nothing left installed.
