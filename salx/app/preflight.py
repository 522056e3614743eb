"""Everything a run can be told before it starts: one line, exit 2, nothing made.

`check(config, workdir, mode)` runs before TensorFlow is imported, before any
device work and before the workdir is created: the config's fields and ranges
(seeds within the generators' range, batch sizes the method and the data allow),
the workdir (a file, or busy with another run), the data folder (missing, not a
folder, unreadable annotations, empty splits) and `config.init_checkpoint`
(readable, the method's, of the config's shapes). The run itself checks again
where it reads; this only makes the common mistakes cost seconds, not minutes.
"""

from __future__ import annotations

import os
import types

import ml_collections

from salx.app import data as data_lib
from salx.app import run_config
from salx.app import workdir_lock
from salx.app.run_config import ConfigError
from salx.datasets.errors import DataError

# Seeds feed numpy's and JAX's generators; JAX takes them as 32-bit integers.
MAX_SEED = 2 ** 31 - 1


def check(config: ml_collections.ConfigDict, workdir: str, mode: str = "train") -> None:
  """Raises ConfigError, DataError or WorkdirError for a run that cannot start."""
  run_config.check_config(config)
  count = max(config.num_seeds, len(config.get("members") or []))
  if config.seed + count - 1 > MAX_SEED:
    raise ConfigError(f"config.seed = {config.seed}: the members' seeds seed .. seed + "
                      f"{count - 1} must stay at most {MAX_SEED}")
  from salx.app import members as members_lib  # pylint: disable=g-import-not-at-top
  members = members_lib.members_of(config)
  workdir = os.path.abspath(os.path.expanduser(workdir))
  if os.path.exists(workdir) and not os.path.isdir(workdir):
    raise workdir_lock.WorkdirError(f"the workdir {workdir} is a file, not a folder")
  workdir_lock.WorkdirLock(workdir).check_free()
  method = run_config.method_of(config)
  source = _open_existing_data(config)
  num_classes = len(source.class_names) if source is not None else config.num_classes
  if mode == "train":
    shapes = types.SimpleNamespace(feature_dim=config.feature_dim,
                                   num_classes=max(num_classes, 1))
    try:
      method.check_batch_shapes(
          shapes, members[0].hp,
          (config.batch_size, method.num_segments(members[0].hp), config.feature_dim),
          (config.batch_size, max(num_classes, 1)))
    except ValueError as e:
      raise ConfigError(f"config.batch_size = {config.batch_size}: {e}") from None
  if config.init_checkpoint:
    _check_init_checkpoint(config, method, members[0].hp, num_classes)
  if source is None:
    return
  num_train = len(source.video_names("train"))
  num_test = len(source.video_names("test"))
  for split, count in (("train", num_train), ("test", num_test)):
    if count == 0:
      raise DataError(f"{source.split_file(split)} lists no video: the {split} split "
                      "is empty")
  if mode == "train":
    kept = num_train - int(num_train * config.holdout_fraction)
    if config.batch_size > kept:
      raise ConfigError(f"config.batch_size = {config.batch_size} is larger than the "
                        f"{kept} training videos of {source.data_dir}")


def _open_existing_data(config):
  """The data source, when it is a folder that exists (a synthetic dataset not yet
  generated, or a TFDS dataset, is checked by the run)."""
  if config.data_source != "folder":
    return None
  if config.dataset == "synthetic":
    folder = config.data_dir or data_lib.default_synthetic_dir(data_lib.synthetic_spec(config))
    if not os.path.isdir(folder):
      return None
  elif config.data_dir and os.path.exists(config.data_dir) \
      and not os.path.isdir(config.data_dir):
    raise DataError(f"config.data_dir: {config.data_dir} is a file, not a folder")
  return data_lib.open_data(config)


def _check_init_checkpoint(config, method, hp, num_classes: int) -> None:
  """An authors' file: readable, the method's, and of the config's shapes when the
  number of classes is known (0: the data is not there yet)."""
  path = os.path.abspath(os.path.expanduser(config.init_checkpoint))
  if os.path.isdir(path):
    return   # A salx run folder: its checkpoints are checked when restored.
  if not os.path.isfile(path):
    raise ConfigError(f"config.init_checkpoint: {path} does not exist")
  import jax  # pylint: disable=g-import-not-at-top
  try:
    params = method.load_authors_checkpoint(path)
  except (ValueError, TypeError) as e:
    raise ConfigError(f"config.init_checkpoint: {e}") from None
  if params is None:
    raise ConfigError(f"config.init_checkpoint: {path} is a file, but the "
                      f"{method.name} method reads no authors' checkpoint files")
  if not num_classes:
    return
  model = run_config.make_model(config, num_classes, method, hp)
  template = jax.eval_shape(
      lambda key: method.init_params(model, hp, key,
                                     (2, method.num_segments(hp), config.feature_dim)),
      jax.random.key(0))
  differences = sorted(shape_differences(params, template),
                       key=lambda d: "fc1/" not in d)   # SAL's FC1 holds H^3: first.
  if differences:
    more = f" (and {len(differences) - 4} more)" if len(differences) > 4 else ""
    raise ConfigError(f"config.init_checkpoint: {path} does not fit the config: "
                      + "; ".join(differences[:4]) + more
                      + f"; set the widths in config.{method.name}, config.feature_dim "
                      "and num_classes to the file's")


def shape_differences(loaded, template) -> list:
  """'<path>: checkpoint [..], config [..]' (or 'missing in the checkpoint') for
  each array of `template` whose counterpart in `loaded` differs in shape."""
  import jax  # pylint: disable=g-import-not-at-top
  import numpy as np  # pylint: disable=g-import-not-at-top
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
