"""`--mode=evaluate`: score saved weights on the test split and print the table.

The weights are `config.init_checkpoint` when set (the authors' checkpoint file, or
a salx run folder), else the workdir's `config.eval_checkpoint` ('best' or
'latest'). Writes workdir/predictions_eval_<which>.json and
workdir/metrics_eval_<which>.json; creates nothing when there is nothing to
evaluate.
"""

from __future__ import annotations

import os
from typing import Any, Tuple

import jax
import ml_collections
import numpy as np

from salx.app import checkpoint as checkpoint_lib
from salx.app import data as data_lib
from salx.app import evaluator as evaluator_lib
from salx.app import members as members_lib
from salx.app import preflight
from salx.app import report
from salx.app import run_config
from salx.app import workdir_lock
from salx.app.run_config import ConfigError
from salx.core import sharding
from salx.postprocess import json_limits


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
    if not os.path.isdir(os.path.join(path, checkpoint_lib.BEST_DIR)):
      raise FileNotFoundError(f"config.init_checkpoint: {path} holds no salx best "
                              f"checkpoint ({checkpoint_lib.BEST_DIR}/)")
    count = _members_of_run(path)
    stacked = jax.tree_util.tree_map(
        lambda t: jax.device_put(np.zeros((count,) + t.shape, t.dtype)), template)
    with checkpoint_lib.RunCheckpoints(path, keep=keep) as ckpts:
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
  differences = sorted(preflight.shape_differences(params, template),
                       key=lambda d: not d.startswith("fc1/"))   # FC1 holds H^3.
  if differences:
    more = f" (and {len(differences) - 4} more)" if len(differences) > 4 else ""
    raise ConfigError(f"config.init_checkpoint: {path} does not fit the config: "
                      + "; ".join(differences[:4]) + more + f"; set the widths in config.{method.name}, "
                      "config.feature_dim, num_classes and the preset to the file's")
  params = jax.tree_util.tree_map(lambda x, t: np.asarray(x, t.dtype), params, template)
  return sharding.replicate(params, mesh), f"the official checkpoint {path}"


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str
                        ) -> Tuple[report.Record, str]:
  """Evaluates saved weights on the test split (module docstring).

  Returns:
    (the evaluation record, the printed table).
  """
  preflight.check(config, workdir, mode="evaluate")
  workdir = os.path.abspath(os.path.expanduser(workdir))
  which = config.eval_checkpoint
  if not config.init_checkpoint:
    folder = os.path.join(workdir, checkpoint_lib.BEST_DIR if which == "best"
                          else checkpoint_lib.LATEST_DIR)
    if not os.path.isdir(folder):
      raise FileNotFoundError(f"no {which} checkpoint to evaluate: {folder} does not "
                              "exist (train first, or set --config.init_checkpoint)")
  with workdir_lock.WorkdirLock(workdir, enabled=jax.process_index() == 0):
    return _evaluate(config, workdir, which)


def _evaluate(config: ml_collections.ConfigDict, workdir: str, which: str
              ) -> Tuple[report.Record, str]:
  """`evaluate_checkpoint` with the workdir locked."""
  source = data_lib.open_data(config)
  members = members_lib.members_of(config)[:1 if config.init_checkpoint else None]
  method = run_config.method_of(config)
  hp = members[0].hp
  model = run_config.make_model(config, data_lib.num_classes_of(config, source), method, hp)
  mesh = sharding.make_mesh(num_members=len(members))
  state, _, stacked_hp = members_lib.init_members(method, model, config, members, mesh)
  if config.init_checkpoint:
    one = jax.tree_util.tree_map(lambda x: x[0], state.params)
    params, what = load_init_params(method, config.init_checkpoint, one, mesh)
    params = jax.device_put(jax.tree_util.tree_map(lambda x: np.asarray(x)[None], params),
                            sharding.member_sharded(mesh))
    step, which = 0, "init"
  else:
    with checkpoint_lib.RunCheckpoints(workdir, keep=config.keep_checkpoints) as ckpts:
      if which == "best":
        restored = ckpts.restore_best(state.params)
        params, step = (None, None) if restored is None else (restored[0], restored[2])
      else:
        restored = ckpts.restore_latest(state)
        params, step = ((None, None) if restored is None else
                        (restored[0].params, int(jax.device_get(restored[0].step)[0])))
    if params is None:
      raise FileNotFoundError(f"no {which} checkpoint in {workdir}")
    what = f"{which} checkpoint"
  evaluator = evaluator_lib.SplitEvaluator(method, model, source, hp, config, mesh)
  results = evaluator.evaluate_members(params, stacked_hp, [m.hp for m in members], step)
  label = f"{which} checkpoint" if step else "weights"
  rows = ([(label, results[0][0])] if len(members) == 1 else
          [(f"{label} m{m.index} seed {m.seed}", r) for m, (r, _) in zip(members, results)])
  table = report.format_table(rows, title=report.run_title(config, source, method, hp))
  table += f"\nweights: {what}\nevaluation: {results[0][0]['protocol']}"
  if jax.process_index() == 0:
    print(table, flush=True)
    for m, (_, detections) in zip(members, results):
      name = f"eval_{which}" + (f"_member{m.index}" if len(members) > 1 else "")
      report.write_predictions(workdir, name, step, detections)
    report.write_json(os.path.join(workdir, f"metrics_eval_{which}.json"),
                      results[0][0] if len(members) == 1 else
                      {"members": [r for r, _ in results]})
  return results[0][0], table
