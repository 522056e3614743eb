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
from salx.app import report
from salx.app import run_config
from salx.app.run_config import ConfigError
from salx.core import convert
from salx.core import sharding
from salx.core import train_step as train_step_lib


def init_state(model, variant, config: ml_collections.ConfigDict, rng: jax.Array,
               mesh) -> train_step_lib.TrainState:
  """A fresh TrainState, created directly replicated over the mesh."""
  tx = train_step_lib.make_optimizer(config.learning_rate, config.weight_decay)

  def create(key):
    return train_step_lib.create_train_state(
        model, variant, key, input_shape=(2, config.num_segments, config.feature_dim),
        tx=tx)

  return jax.jit(create, out_shardings=sharding.replicated(mesh))(rng)


def _shape_differences(loaded: Any, template: Any) -> list:
  flat_loaded = dict(jax.tree_util.tree_flatten_with_path(loaded)[0])
  out = []
  for path, leaf in jax.tree_util.tree_flatten_with_path(template)[0]:
    name = "/".join(str(getattr(k, "key", k)) for k in path)
    got = flat_loaded.get(path)
    if got is None:
      out.append(f"{name}: missing in the checkpoint")
    elif tuple(np.shape(got)) != tuple(leaf.shape):
      out.append(f"{name}: checkpoint {list(np.shape(got))}, config {list(leaf.shape)}")
  return out


def load_init_params(path: str, template: Any, mesh, keep: int = 2) -> Tuple[Any, str]:
  """(params replicated on the mesh, a description) from `config.init_checkpoint`.

  Args:
    path: the authors' checkpoint file (torch zip or legacy format, read without
      torch), or a salx run folder (its best params, else its latest state).
    template: params of the model the config describes (for the shapes).

  Raises:
    FileNotFoundError: nothing at `path`.
    ConfigError: the weights do not fit the config (the fields are named).
  """
  path = os.path.abspath(os.path.expanduser(path))
  if os.path.isdir(path):
    if not any(os.path.isdir(os.path.join(path, d)) for d in
               (checkpoint_lib.BEST_DIR, checkpoint_lib.LATEST_DIR)):
      raise FileNotFoundError(f"config.init_checkpoint: {path} holds no salx checkpoint "
                              f"({checkpoint_lib.BEST_DIR}/ or {checkpoint_lib.LATEST_DIR}/)")
    with checkpoint_lib.RunCheckpoints(path, keep=keep) as ckpts:
      restored = ckpts.restore_best(template)
      if restored is not None:
        return restored[0], f"best params of {path} (step {restored[2]})"
      raise FileNotFoundError(f"config.init_checkpoint: {path} holds no best params")
  if not os.path.isfile(path):
    raise FileNotFoundError(f"config.init_checkpoint: {path} does not exist")
  params = convert.load_official_checkpoint(path)
  differences = _shape_differences(params, template)
  if differences:
    raise ConfigError(f"config.init_checkpoint: {path} does not fit the config: "
                      + "; ".join(differences[:6]) + " (set config.hidden_dim, "
                      "feature_dim, num_classes and the code path to the file's)")
  params = jax.tree_util.tree_map(lambda x, t: np.asarray(x, t.dtype), params, template)
  return sharding.replicate(params, mesh), f"the official checkpoint {path}"


def evaluate_checkpoint(config: ml_collections.ConfigDict, workdir: str
                        ) -> Tuple[report.Record, str]:
  """Evaluates saved weights on the test split (module docstring).

  Returns:
    (the evaluation record, the printed table).
  """
  run_config.check_config(config)
  workdir = os.path.abspath(os.path.expanduser(workdir))
  which = config.eval_checkpoint
  if not config.init_checkpoint:
    folder = os.path.join(workdir, checkpoint_lib.BEST_DIR if which == "best"
                          else checkpoint_lib.LATEST_DIR)
    if not os.path.isdir(folder):
      raise FileNotFoundError(f"no {which} checkpoint to evaluate: {folder} does not "
                              "exist (train first, or set --config.init_checkpoint)")
  source = data_lib.open_data(config)
  variant = run_config.make_variant(config)
  model = run_config.make_model(config, data_lib.num_classes_of(config, source), variant)
  mesh = sharding.make_mesh()
  state = init_state(model, variant, config, jax.random.key(0), mesh)
  if config.init_checkpoint:
    params, what = load_init_params(config.init_checkpoint, state.params, mesh)
    step, which = 0, "init"
  else:
    with checkpoint_lib.RunCheckpoints(workdir, keep=config.keep_checkpoints) as ckpts:
      if which == "best":
        restored = ckpts.restore_best(state.params)
        params, step = (None, None) if restored is None else (restored[0], restored[2])
      else:
        restored = ckpts.restore_latest(state)
        params, step = ((None, None) if restored is None else
                        (restored[0].params, int(jax.device_get(restored[0].step))))
    if params is None:
      raise FileNotFoundError(f"no {which} checkpoint in {workdir}")
    what = f"{which} checkpoint"
  record, localized = evaluator_lib.TestEvaluator(model, source, variant, config,
                                                  mesh)(params, step)
  table = report.format_table([(f"{which} checkpoint" if step else "weights", record)],
                              title=report.run_title(config, source, variant))
  table += f"\nweights: {what}\nprotocol: {record['protocol']}"
  if jax.process_index() == 0:
    print(table, flush=True)
    os.makedirs(workdir, exist_ok=True)
    report.write_predictions(workdir, f"eval_{which}", step, localized)
    report.write_json(os.path.join(workdir, f"metrics_eval_{which}.json"), record)
  return record, table
