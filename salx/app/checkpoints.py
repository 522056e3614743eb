"""Orbax checkpoints of a training run: the latest few (to resume) and the best one.

    workdir/checkpoints/<step>/state      TrainState (params, Adam moments, step and
                                          the method state, e.g. SAL's mask statistics)
    workdir/checkpoints/<step>/progress   JSON progress record (evaluations so far,
                                          the best one, the untrained model's result)
    workdir/best/<step>/params            params of the best evaluation by average mAP
    workdir/best/<step>/record            JSON: that evaluation's metrics

The latest `keep` checkpoints are kept (`LatestN`); of the best ones only the one
with the highest average mAP (`BestN`). A training batch is a pure function of
(seed, step) and the dropout key of a step is fold_in(key, step), so the state and
the progress record at a step are all a resumed run needs.

Orbax writes each step to a temporary folder and renames it when complete, so a
run killed at any moment leaves only complete checkpoints (partial ones are cleaned
up by the next run). Saves are asynchronous: arrays are copied to host memory
before `save` returns (donating the state then is safe), the files are written
in the background (a failure there is raised by the next `save_*`, `wait` or
`close`). Every process calls every
method (saves and restores are collective).

Faults are one `CheckpointError` line each, and nothing on disk is lost: a
checkpoint that cannot be restored is skipped with one warning (its folder stays
until the resumed run's first save supersedes it); one of another model config
names the arrays that differ; a failed write (read-only folder, full disk) names
the folder and the OS error, and leaves no temporary folder behind.
"""

from __future__ import annotations

import dataclasses
import glob
import json
import logging as std_logging
import os
import re
import shutil
import threading
import time
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from absl import logging
import jax
import numpy as np
import orbax.checkpoint as ocp

from salx.app import config as config_lib
from salx.app.runtime import ConfigError
from salx.core import sharding
from salx.postprocess import json_limits

LATEST_DIR = "checkpoints"
BEST_DIR = "best"
SCORE_KEY = "average_mAP"
TMP_SUFFIX = ".orbax-checkpoint-tmp"   # Orbax's temporary folders: <step><suffix>.
_MAX_LISTED = 4                         # Differing arrays named in one error line.


class CheckpointError(ValueError):
  """A checkpoint folder cannot be read or written; the message is one line."""


def _reason(error: BaseException) -> str:
  """A short one-line description of `error`, the OS error when there is one
  (tensorstore gives it as text: "... [os_error_code='28']")."""
  if isinstance(error, OSError) and error.errno:
    return f"[Errno {error.errno}] {error.strerror or os.strerror(error.errno)}"
  code = re.search(r"os_error_code='?(\d+)", str(error))
  if code:
    return f"[Errno {code.group(1)}] {os.strerror(int(code.group(1)))}"
  lines = str(error).split(" [tensorstore_spec", 1)[0].strip().splitlines()
  text = lines[0] if lines else type(error).__name__
  return text if len(text) <= 300 else text[:297] + "..."


class _QuietOrbax(std_logging.Filter):
  """While a RunCheckpoints is open (it raises failures as one line), Orbax's
  ERROR records (a traceback per writer thread of a failed write) become DEBUG."""

  def __init__(self):
    super().__init__()
    self.users, self.lock = 0, threading.Lock()

  def filter(self, record: std_logging.LogRecord) -> bool:
    if record.levelno >= std_logging.ERROR and (
        f"{os.sep}orbax{os.sep}" in record.pathname):
      record.levelno, record.levelname = std_logging.DEBUG, "DEBUG"
      return std_logging.getLogger("absl").isEnabledFor(std_logging.DEBUG)
    return True

  def use(self, delta: int) -> None:
    with self.lock:
      self.users += delta
      if self.users == 1 and delta > 0:
        std_logging.getLogger("absl").addFilter(self)
      elif self.users == 0:
        std_logging.getLogger("absl").removeFilter(self)


_QUIET_ORBAX = _QuietOrbax()


def _abstract(tree: Any) -> Any:
  """ShapeDtypeStructs (with shardings) of a pytree of arrays: a restore target."""
  return jax.tree_util.tree_map(ocp.utils.to_shape_dtype_struct, tree)


def _mismatches(saved: Any, template: Any, prefix: str) -> List[str]:
  """'<prefix>path: checkpoint X, config Y' for each array of the saved tree
  metadata or of the template (arrays, ShapeDtypeStructs) that is missing on the
  other side or differs in shape or dtype; params first."""
  saved = ocp.tree.to_flat_dict(saved, sep="/")
  wanted = ocp.tree.to_flat_dict(template, sep="/")
  out = []

  def describe(leaf, dtype):   # 'float32[64, 8]', '[64, 8]' or 'missing'.
    return "missing" if leaf is None else (
        f"{np.dtype(leaf.dtype).name if dtype else ''}{list(leaf.shape)}")

  for key in sorted(set(saved) | set(wanted),
                    key=lambda k: (not f"{prefix}{k}".startswith("params"), k)):
    have, want = saved.get(key), wanted.get(key)
    same_dtype = (have is not None and want is not None
                  and np.dtype(have.dtype) == np.dtype(want.dtype))
    if same_dtype and tuple(have.shape) == tuple(want.shape):
      continue
    out.append(f"{prefix}{key}: checkpoint {describe(have, not same_dtype)}, "
               f"config {describe(want, not same_dtype)}")
  return out


# Top-level train-state names of checkpoints written before methods were a seam
# (SAL's mask statistics were `mask_state`), and today's names for them.
_RENAMED = {"mask_state": "method_state"}


def _legacy_target(saved: Any, template: Any) -> Tuple[Any, Callable[[Any], Any]]:
  """(restore target, function from the restored tree to the template's type).

  When the saved tree names a field by an earlier name, the target is a dict
  under the saved names and the function rebuilds the template's dataclass.
  """
  if saved is None or not hasattr(saved, "keys") or not hasattr(template, "replace"):
    return template, lambda tree: tree
  old = {name: new for name, new in _RENAMED.items()
         if name in saved.keys() and hasattr(template, new)}
  if not old:
    return template, lambda tree: tree
  fields = {f.name: getattr(template, f.name) for f in dataclasses.fields(template)}
  target = {next((o for o, n in old.items() if n == name), name): value
            for name, value in fields.items()}

  def rebuild(tree):
    return template.replace(**{old.get(name, name): value for name, value in tree.items()})

  return target, rebuild


# The JSON files of a finished step folder (Orbax's metadata, the metrics the
# best-checkpoint policy reads, the JSON items, the array metadata).
_JSON_FILES = ("_CHECKPOINT_METADATA", "metrics/metrics", "*/metadata", "*/_METADATA")
DAMAGED_SUFFIX = ".damaged"


def _damage(step_dir: str) -> Optional[str]:
  """'<file>: <reason>' for the first unreadable JSON file of a step folder."""
  for pattern in _JSON_FILES:
    for path in sorted(glob.glob(os.path.join(step_dir, pattern))):
      try:
        with open(path, encoding="utf-8") as f:
          json.load(f)
      except (OSError, ValueError, RecursionError) as e:
        return f"{path}: {type(e).__name__}"
  return None


def _move_damaged_aside(directory: str, what: str) -> List[str]:
  """Renames the step folders of `directory` holding unreadable JSON to
  '<step>.damaged' (kept for the user, skipped by Orbax), with one warning each:
  a torn file can never block a resume. Returns the folders moved."""
  if not os.path.isdir(directory) or jax.process_index() != 0:
    return []
  moved = []
  for name in sorted(os.listdir(directory)):
    step_dir = os.path.join(directory, name)
    if not name.isdigit() or not os.path.isdir(step_dir):
      continue
    reason = _damage(step_dir)
    if reason is None:
      continue
    target = step_dir + DAMAGED_SUFFIX
    while os.path.exists(target):
      target += "_"
    try:
      os.rename(step_dir, target)
    except OSError as e:
      raise CheckpointError(f"the {what} checkpoint {step_dir} is damaged ({reason}) "
                            f"and could not be moved aside: {_reason(e)}; move it "
                            "away by hand") from e
    logging.warning("The %s checkpoint %s is damaged (%s); moved aside to %s. The run "
                    "goes on from the newest intact checkpoint.", what, step_dir, reason,
                    target)
    moved.append(target)
  return moved


class _Folder:
  """A CheckpointManager of two items, `arrays` (a pytree) and `record` (JSON),
  whose errors are CheckpointErrors; `what` and `prefix` (of array paths) are for
  messages. It remembers the step of the save in flight, reported (and cleaned
  up) if that fails."""

  def __init__(self, directory: str, what: str, arrays: str, record: str,
               prefix: str, options: ocp.CheckpointManagerOptions):
    self.directory, self.what, self.pending = directory, what, None
    self.arrays, self.record, self.prefix = arrays, record, prefix
    _move_damaged_aside(directory, what)
    try:
      self.manager = ocp.CheckpointManager(directory, options=options, item_handlers={
          arrays: ocp.StandardCheckpointHandler(),
          record: ocp.JsonCheckpointHandler()})
    except OSError as e:
      raise CheckpointError(f"cannot open the checkpoint folder {directory}: "
                            f"{_reason(e)}") from e

  def steps(self) -> List[int]:
    return sorted(self.manager.all_steps())

  def _settle(self) -> None:
    """Waits for the other writes of a failed save (Orbax raises at the first
    failure; the others go on creating files in the temporary folder)."""
    try:
      self.manager.wait_until_finished()
    except Exception:  # pylint: disable=broad-except
      pass   # Failed or cancelled: either way it has stopped writing.

  def _failed(self, step: int, error: BaseException) -> None:
    """Removes the temporary folder of `step`, rereads the folder, raises."""
    self._settle()
    # Tensorstore may still finish a write that Orbax gave up on and recreate
    # the folder: remove it until it stays away for a moment.
    for attempt in range(20 if jax.process_index() == 0 else 0):
      names = [n for n in os.listdir(self.directory) if n.startswith(
          f"{step}{TMP_SUFFIX}")] if os.path.isdir(self.directory) else []
      for name in names:
        shutil.rmtree(os.path.join(self.directory, name), ignore_errors=True)
      if attempt and not names:
        break
      time.sleep(0.2)
    self.manager.reload()
    kept = ", ".join(map(str, self.steps())) or "none"
    raise CheckpointError(
        f"could not write the checkpoint of step {step} in {self.directory}: "
        f"{_reason(error)} (the checkpoints already there are kept: steps {kept})"
    ) from error

  def wait(self) -> None:
    """Blocks until the save in flight is on disk (CheckpointError if it failed)."""
    step, self.pending = self.pending, None
    try:
      self.manager.wait_until_finished()
    except Exception as e:  # pylint: disable=broad-except
      if step is None:
        raise
      self._failed(step, e)   # Whatever stopped a background write: not on disk.

  def save(self, step: int, arrays: Any, record: Dict[str, Any],
           metrics: Optional[Dict[str, float]] = None) -> None:
    self.wait()
    try:
      self.manager.save(step, force=True, metrics=metrics, args=ocp.args.Composite(**{
          self.arrays: ocp.args.StandardSave(arrays),
          self.record: ocp.args.JsonSave(record)}))
    except Exception as e:  # pylint: disable=broad-except
      if not (isinstance(e, OSError) or "os_error_code" in str(e)):
        raise   # Not the file system's doing.
      self._failed(step, e)
    self.pending = step

  def delete(self, step: int) -> None:
    self.wait()
    try:
      self.manager.delete(step)
    except OSError as e:
      raise CheckpointError(f"could not delete the checkpoint of step {step} in "
                            f"{self.directory}: {_reason(e)}") from e

  def restore(self, step: int, template: Any) -> Tuple[Any, Dict[str, Any]]:
    """(arrays, record) of `step`: CheckpointError when the arrays do not fit
    `template`, any other error when the checkpoint is damaged. A train state
    saved under earlier names (`_RENAMED`) is read into today's."""
    saved = self.manager.item_metadata(step)[self.arrays]
    template, rebuild = _legacy_target(saved, template)
    differ = [] if saved is None else _mismatches(saved, template, self.prefix)
    if differ:   # (No tree metadata: the restore itself checks the shapes.)
      more = (f" (and {len(differ) - _MAX_LISTED} more)"
              if len(differ) > _MAX_LISTED else "")
      raise CheckpointError(
          f"the checkpoint of step {step} in {self.directory} was written by "
          f"another model config: {'; '.join(differ[:_MAX_LISTED])}{more}; use "
          "the config it was trained with, or another workdir")
    restored = self.manager.restore(step, args=ocp.args.Composite(**{
        self.arrays: ocp.args.StandardRestore(_abstract(template)),
        self.record: ocp.args.JsonRestore()}))
    return rebuild(restored[self.arrays]), dict(restored[self.record])

  def restore_first(self, candidates: Sequence[int], template: Any
                    ) -> Tuple[int, Any, List[int]]:
    """(step, (arrays, record), steps skipped) of the first of `candidates` that
    restores; one warning per skipped one."""
    failures = []
    for step in candidates:
      try:
        restored = self.restore(step, template)
      except CheckpointError:
        raise
      except Exception as e:  # pylint: disable=broad-except
        failures.append((step, _reason(e)))
        continue
      for bad, reason in failures:
        logging.warning("The %s checkpoint of step %d in %s cannot be restored "
                        "(%s); using step %d. Its folder is kept.", self.what, bad,
                        self.directory, reason, step)
      return step, restored, [s for s, _ in failures]
    details = "; ".join(f"step {s}: {r}" for s, r in failures)
    raise CheckpointError(f"no checkpoint in {self.directory} can be restored "
                          f"({details}); move the folder away to start over")

  def close(self) -> None:
    try:
      self.wait()
    finally:
      self.manager.close()


def _best_score(metrics: Dict[str, float]) -> float:
  return float(metrics[SCORE_KEY])


class RunCheckpoints:
  """The two checkpoint folders of one workdir.

  Args:
    workdir: the run's folder (CheckpointError if its checkpoint folders cannot
      be created, e.g. read-only).
    keep: how many of the latest checkpoints to keep (at least 1).
    async_save: write in the background (True) or block in `save_*`.
  """

  def __init__(self, workdir: str, keep: int = 2, async_save: bool = True):
    if keep < 1:
      raise ValueError(f"keep_checkpoints must be at least 1, got {keep}")
    workdir = os.path.abspath(os.path.expanduser(os.fspath(workdir)))
    # Step folders are made in `save`, not in the background: a read-only folder
    # fails there at once (in the background, Orbax's writers would wait minutes).
    common = dict(create=True, cleanup_tmp_directories=True,
                  enable_async_checkpointing=async_save,
                  async_options=ocp.options.AsyncOptions(
                      create_directories_asynchronously=False))
    self.latest_dir = os.path.join(workdir, LATEST_DIR)
    self.best_dir = os.path.join(workdir, BEST_DIR)
    self._unrestorable: List[int] = []   # Skipped by restore_latest.
    self._open = True
    _QUIET_ORBAX.use(+1)
    try:
      self._latest = _Folder(
          self.latest_dir, "latest", "state", "progress", "",
          ocp.CheckpointManagerOptions(
              preservation_policy=ocp.checkpoint_managers.LatestN(n=keep), **common))
      self._best = _Folder(
          self.best_dir, "best", "params", "record", "params/",
          ocp.CheckpointManagerOptions(
              best_fn=_best_score, best_mode="max",
              preservation_policy=ocp.checkpoint_managers.BestN(
                  get_metric_fn=_best_score, n=1,
                  keep_checkpoints_without_metrics=False),
              **common))
    except BaseException:
      _QUIET_ORBAX.use(-1)
      raise

  def latest_step(self) -> Optional[int]:
    """The newest checkpoint's step (not one found unrestorable), or None."""
    return max(set(self._latest.steps()) - set(self._unrestorable), default=None)

  def save_latest(self, step: int, state: Any, progress: Dict[str, Any]) -> bool:
    """Saves the TrainState and the JSON progress record at `step`.

    Returns False (and saves nothing) when `step` is already saved. The first
    save after `restore_latest` skipped unrestorable checkpoints deletes them
    (they are newer than the resumed state; this run writes its own).

    Raises CheckpointError when this write, or the background part of the
    previous one, failed (the checkpoints written before are kept).
    """
    if step in self._latest.steps() and step not in self._unrestorable:
      return False
    # The best checkpoint named in `progress` must be on disk before a checkpoint
    # that names it.
    self._best.wait()
    for stale in self._unrestorable:
      logging.warning("Deleting the unrestorable checkpoint of step %d in %s: "
                      "this run resumed before it.", stale, self.latest_dir)
      self._latest.delete(stale)
    self._unrestorable = []
    self._latest.save(step, state, progress)
    return True

  def restore_latest(self, state_template: Any
                     ) -> Optional[Tuple[Any, Dict[str, Any]]]:
    """(state, progress) of the newest checkpoint that restores, None if none.

    Args:
      state_template: a TrainState of the run (arrays or ShapeDtypeStructs, placed
        as the restored arrays should be: replicated over the mesh).

    Raises CheckpointError when none restores, or when the newest readable one
    was written by another model config.
    """
    steps = self._latest.steps()
    if not steps:
      return None
    _, restored, self._unrestorable = self._latest.restore_first(
        steps[::-1], state_template)
    return restored

  def best_step(self) -> Optional[int]:
    """The step of the best checkpoint on disk, None when there is none."""
    return self._best.manager.best_step()

  def save_best(self, step: int, params: Any, record: Dict[str, Any]) -> None:
    """Saves `params` and the evaluation `record` (which holds SCORE_KEY) at `step`.

    Orbax keeps the checkpoint with the highest `record[SCORE_KEY]`; an existing
    checkpoint of the same step (left by a run killed after it) is replaced.
    CheckpointError as `save_latest`.
    """
    if SCORE_KEY not in record:
      raise ValueError(f"the best-checkpoint record needs {SCORE_KEY!r}, got "
                       f"{sorted(record)}")
    if step in self._best.steps():
      self._best.delete(step)
    self._best.save(step, params, record, {SCORE_KEY: float(record[SCORE_KEY])})

  def discard_best_after(self, step: int) -> list:
    """Deletes best checkpoints saved after `step` (by a run killed before it
    checkpointed them); a resumed run recomputes them. Returns the deleted steps."""
    self._best.wait()
    stale = [s for s in self._best.steps() if s > step]
    for s in stale:
      self._best.delete(s)
    return stale

  def restore_best(self, params_template: Any
                   ) -> Optional[Tuple[Any, Dict[str, Any], int]]:
    """(params, record, step) of the best checkpoint that restores (the next
    best when the best cannot), None when there is none; CheckpointError as
    `restore_latest`."""
    self._best.wait()
    steps = self._best.steps()
    if not steps:
      return None

    def score(step):
      try:
        return _best_score(self._best.manager.metrics(step))
      except Exception:  # pylint: disable=broad-except
        return -np.inf   # No readable metrics: tried last.

    step, (params, record), _ = self._best.restore_first(
        sorted(steps, key=lambda s: (score(s), s), reverse=True), params_template)
    return params, record, step

  def wait(self) -> None:
    """Blocks until every pending save is on disk (CheckpointError if one failed)."""
    try:
      self._best.wait()
    finally:
      self._latest.wait()

  def close(self) -> None:
    """Waits for pending saves (CheckpointError as `wait`), releases the managers."""
    if not self._open:
      return
    self._open = False
    try:
      try:
        self._best.close()
      finally:
        self._latest.close()
    finally:
      _QUIET_ORBAX.use(-1)

  def __enter__(self) -> "RunCheckpoints":
    return self

  def __exit__(self, *exc) -> None:
    self.close()


# ----------------------------------------------------------------------------
# The weights a run starts from.


def _members_of_run(path: str) -> int:
  """How many members the salx run in `path` trained (its metrics.json), else 1."""
  try:
    metrics = json_limits.load_json(os.path.join(path, "metrics.json"))
    return max(1, len(metrics.get("members") or [None]))
  except (OSError, ValueError, AttributeError):
    return 1


def load_init_params(method, path: str, template: Any, mesh, keep: int = 2
                     ) -> Tuple[Any, str]:
  """(params replicated on the mesh, a description) from `config.init_checkpoint`.

  Args:
    method: the run's method (it reads its authors' checkpoint files).
    path: the authors' checkpoint file (torch zip or legacy format, read without
      torch), or a salx run folder (its best params, else its latest state).
    template: params of the model the config describes (for the shapes).

  Raises:
    FileNotFoundError: nothing at `path`.
    ConfigError: the weights do not fit the config (the fields are named).
  """
  path = os.path.abspath(os.path.expanduser(path))
  if os.path.isdir(path):
    if not os.path.isdir(os.path.join(path, BEST_DIR)):
      raise FileNotFoundError(f"config.init_checkpoint: {path} holds no salx best "
                              f"checkpoint ({BEST_DIR}/)")
    count = _members_of_run(path)
    stacked = jax.tree_util.tree_map(
        lambda t: jax.device_put(np.zeros((count,) + t.shape, t.dtype)), template)
    with RunCheckpoints(path, keep=keep) as ckpts:
      restored = ckpts.restore_best(stacked)
    if restored is None:
      raise FileNotFoundError(f"config.init_checkpoint: {path} holds no best params")
    params = jax.tree_util.tree_map(lambda x: np.asarray(x)[0], restored[0])
    return (sharding.replicate(params, mesh),
            f"best params of {path} (member 0, step {restored[2]})")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"config.init_checkpoint: {path} does not exist")
  params = method.load_authors_checkpoint(path)
  if params is None:
    raise ConfigError(f"config.init_checkpoint: {path} is a file, but the "
                      f"{method.name} method reads no authors' checkpoint files; give "
                      "a salx run folder")
  differences = sorted(config_lib.shape_differences(params, template),
                       key=lambda d: not d.startswith("fc1/"))   # FC1 holds H^3.
  if differences:
    more = f" (and {len(differences) - 4} more)" if len(differences) > 4 else ""
    raise ConfigError(f"config.init_checkpoint: {path} does not fit the config: "
                      + "; ".join(differences[:4]) + more + f"; set the widths in config.{method.name}, "
                      "config.feature_dim, num_classes and the preset to the file's")
  params = jax.tree_util.tree_map(lambda x, t: np.asarray(x, t.dtype), params, template)
  return sharding.replicate(params, mesh), f"the official checkpoint {path}"


def load_init_members(method, path: str, members_params: Any, mesh) -> Tuple[Any, str]:
  """(every member's params [K, ...] on the mesh, a description): the weights of
  `config.init_checkpoint` (`load_init_params`) given to each of the K members
  whose params `members_params` [K, ...] has the shapes of."""
  count = jax.tree_util.tree_leaves(members_params)[0].shape[0]
  one = jax.tree_util.tree_map(lambda x: x[0], members_params)
  params, what = load_init_params(method, path, one, mesh)
  params = jax.device_put(
      jax.tree_util.tree_map(lambda x: np.stack([np.asarray(x)] * count), params),
      sharding.member_sharded(mesh))
  return params, what
