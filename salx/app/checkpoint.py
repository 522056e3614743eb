"""Orbax checkpoints of a training run: the latest few (to resume) and the best one.

    workdir/checkpoints/<step>/state      TrainState (params, Adam moments, step and
                                          the adaptive-mask statistics mask_state)
    workdir/checkpoints/<step>/progress   JSON progress record (evaluations so far,
                                          the best one, the untrained model's result)
    workdir/best/<step>/params            params of the best evaluation by average mAP
    workdir/best/<step>/record            JSON: that evaluation's metrics

The latest `keep` checkpoints are kept (`LatestN`); of the best ones only the one
with the highest average mAP (`BestN`). A training batch is a pure function of
(seed, step) and the dropout key of a step is fold_in(key, step), so the state and
the progress record at a step are all a resumed run needs.

Orbax writes each step to a temporary folder and renames it when complete, so a
run killed at any moment leaves only complete checkpoints (partial ones are
ignored and cleaned up by the next run). Saves are asynchronous: arrays are copied
to host memory before `save` returns (donating the state afterwards is safe), the
files are written in the background. Every process calls every method (saves and
restores are collective); Orbax writes from the processes that must.
"""

from __future__ import annotations

import os
from typing import Any, Dict, Optional, Tuple

import jax
import orbax.checkpoint as ocp

LATEST_DIR = "checkpoints"
BEST_DIR = "best"
SCORE_KEY = "average_mAP"


def _abstract(tree: Any) -> Any:
  """ShapeDtypeStructs (with shardings) of a pytree of arrays: a restore target."""
  return jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, tree)


def _best_score(metrics: Dict[str, float]) -> float:
  return float(metrics[SCORE_KEY])


class RunCheckpoints:
  """The two checkpoint managers of one workdir.

  Args:
    workdir: the run's folder.
    keep: how many of the latest checkpoints to keep (at least 1).
    async_save: write in the background (True) or block in `save_*`.
  """

  def __init__(self, workdir: str, keep: int = 2, async_save: bool = True):
    if keep < 1:
      raise ValueError(f"keep_checkpoints must be at least 1, got {keep}")
    workdir = os.path.abspath(os.path.expanduser(os.fspath(workdir)))
    common = dict(create=True, cleanup_tmp_directories=True,
                  enable_async_checkpointing=async_save)
    self.latest_dir = os.path.join(workdir, LATEST_DIR)
    self.best_dir = os.path.join(workdir, BEST_DIR)
    self._latest = ocp.CheckpointManager(
        self.latest_dir, item_names=("state", "progress"),
        options=ocp.CheckpointManagerOptions(
            preservation_policy=ocp.checkpoint_managers.LatestN(n=keep), **common))
    self._best = ocp.CheckpointManager(
        self.best_dir, item_names=("params", "record"),
        options=ocp.CheckpointManagerOptions(
            best_fn=_best_score, best_mode="max",
            preservation_policy=ocp.checkpoint_managers.BestN(
                get_metric_fn=_best_score, n=1,
                keep_checkpoints_without_metrics=False),
            **common))

  # ----------------------------------------------------------------- latest

  def latest_step(self) -> Optional[int]:
    """The step of the newest complete checkpoint, None when there is none."""
    return self._latest.latest_step()

  def save_latest(self, step: int, state: Any, progress: Dict[str, Any]) -> bool:
    """Saves the TrainState and the JSON progress record at `step`.

    Returns False (and saves nothing) when `step` is already saved.
    """
    if step in self._latest.all_steps():
      return False
    # The best checkpoint named in `progress` must be on disk before a checkpoint
    # that names it.
    self._best.wait_until_finished()
    return self._latest.save(
        step, force=True,
        args=ocp.args.Composite(state=ocp.args.StandardSave(state),
                                progress=ocp.args.JsonSave(progress)))

  def restore_latest(self, state_template: Any
                     ) -> Optional[Tuple[Any, Dict[str, Any]]]:
    """(state, progress) of the newest checkpoint, None when there is none.

    Args:
      state_template: a TrainState of the run (arrays or ShapeDtypeStructs, placed
        as the restored arrays should be: replicated over the mesh).
    """
    step = self._latest.latest_step()
    if step is None:
      return None
    restored = self._latest.restore(
        step, args=ocp.args.Composite(
            state=ocp.args.StandardRestore(_abstract(state_template)),
            progress=ocp.args.JsonRestore()))
    return restored.state, dict(restored.progress)

  # ------------------------------------------------------------------- best

  def best_step(self) -> Optional[int]:
    """The step of the best checkpoint on disk, None when there is none."""
    return self._best.best_step()

  def save_best(self, step: int, params: Any, record: Dict[str, Any]) -> None:
    """Saves `params` and the evaluation `record` (which holds SCORE_KEY) at `step`.

    Orbax keeps the checkpoint with the highest `record[SCORE_KEY]`; an existing
    checkpoint of the same step (left by a run killed after it) is replaced.
    """
    if SCORE_KEY not in record:
      raise ValueError(f"the best-checkpoint record needs {SCORE_KEY!r}, got "
                       f"{sorted(record)}")
    if step in self._best.all_steps():
      self._best.wait_until_finished()
      self._best.delete(step)
    self._best.save(step, force=True, metrics={SCORE_KEY: float(record[SCORE_KEY])},
                    args=ocp.args.Composite(params=ocp.args.StandardSave(params),
                                            record=ocp.args.JsonSave(record)))

  def discard_best_after(self, step: int) -> list:
    """Deletes best checkpoints saved after `step` (by a run killed before it
    checkpointed them); a resumed run recomputes them. Returns the deleted steps."""
    self._best.wait_until_finished()
    stale = [s for s in self._best.all_steps() if s > step]
    for s in stale:
      self._best.delete(s)
    return stale

  def restore_best(self, params_template: Any
                   ) -> Optional[Tuple[Any, Dict[str, Any], int]]:
    """(params, record, step) of the best checkpoint, None when there is none."""
    step = self._best.best_step()
    if step is None:
      return None
    restored = self._best.restore(
        step, args=ocp.args.Composite(
            params=ocp.args.StandardRestore(_abstract(params_template)),
            record=ocp.args.JsonRestore()))
    return restored.params, dict(restored.record), step

  # ---------------------------------------------------------------- general

  def wait(self) -> None:
    """Blocks until every pending save is on disk."""
    self._best.wait_until_finished()
    self._latest.wait_until_finished()

  def close(self) -> None:
    """Waits for pending saves and releases the managers."""
    self.wait()
    self._best.close()
    self._latest.close()

  def __enter__(self) -> "RunCheckpoints":
    return self

  def __exit__(self, *exc) -> None:
    self.close()
