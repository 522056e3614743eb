"""The data of a run: opening it (a data folder, a prepared TFDS dataset, or the
synthetic dataset generated on first use), checking it before anything trains,
holding part of the training videos out, and the members' training batches.

`config.data_source` says what to read: 'folder' (the default) reads
`config.data_dir` in its layout; 'tfds' reads the dataset prepared under
`config.tfds_data_dir` by `salx.datasets.tfds_builders.prepare` (for the synthetic
dataset, prepared on first use next to its folder). Both give the same records,
annotations and batches.

Honest model selection: with `config.holdout_fraction = f > 0`, a fraction f of
the training videos of each class (by a video's first label in sorted order; fixed
by `config.seed`) is left out of training and evaluated like a test split at every
evaluation; each member's step is then selected on it instead of on the test set.
`split_training_videos` draws the held-out names; `TrainingSubset` is the source
with only the kept training videos, `HeldOutSplit` the source whose 'test' split
is the held-out videos (read from the training split), so the feed and the
evaluator read them through the source interface as they read any folder.

`training_batches` feeds the K members: member m's batch of step s is the one a
single run with its seed draws, and the K feeds read through one reader, so one
cache holds the training split once.
"""

from __future__ import annotations

import collections
import dataclasses
import hashlib
import json
import os
from typing import Any, Dict, Iterator, List, Sequence, Tuple

from absl import logging
import jax
import ml_collections
import numpy as np

from salx.app.runtime import ConfigError
from salx.core import constants
from salx.core import sharding
from salx.datasets import layouts
from salx.datasets import synthetic
from salx.datasets.errors import DataError
from salx.datasets import source
from salx.datasets import validate

DATA_SOURCES = ("folder", "tfds")

MAX_PROBLEMS_SHOWN = 20
LAYOUT_HINT = (f"salx reads the layouts {layouts.LAYOUT_DESCRIPTIONS}; "
               "see salx/datasets/layouts.py")


def synthetic_spec(config: ml_collections.ConfigDict) -> synthetic.SyntheticSpec:
  """The SyntheticSpec of `config.synthetic` (feature_dim: config.feature_dim)."""
  try:
    return synthetic.SyntheticSpec(**config.synthetic.to_dict(),
                                   feature_dim=config.feature_dim)
  except (TypeError, ValueError) as e:
    raise ConfigError(f"config.synthetic: {e}") from None


def default_synthetic_dir(spec: synthetic.SyntheticSpec) -> str:
  """~/.cache/salx/synthetic-<hash of the spec> ($XDG_CACHE_HOME is honoured)."""
  cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
  text = json.dumps(dataclasses.asdict(spec), sort_keys=True)
  digest = hashlib.sha256(text.encode("utf-8")).hexdigest()[:12]
  return os.path.join(cache, "salx", f"synthetic-{digest}")


def _tfds_builders():
  """salx.datasets.tfds_builders, imported only by runs that read TFDS (slow to load)."""
  from salx.datasets import tfds_builders  # pylint: disable=g-import-not-at-top
  return tfds_builders


def _check_tfds_feature_dim(config: ml_collections.ConfigDict) -> None:
  if config.feature_dim != constants.FEATURE_DIM:
    raise ConfigError(
        f"config.feature_dim is {config.feature_dim}, but the salx TFDS datasets hold "
        f"{constants.FEATURE_DIM}-d I3D features; set --config.feature_dim="
        f"{constants.FEATURE_DIM} or --config.data_source=folder")


def open_data(config: ml_collections.ConfigDict) -> source.FeatureSource:
  """The data source of the run; generates the synthetic dataset on first use.

  Raises:
    ConfigError: an unknown config.data_source, or a feature_dim TFDS cannot hold.
    DataError: no or a missing data folder, one no layout can read, or no prepared
      TFDS dataset in config.tfds_data_dir; the message names the folder.
  """
  data_source = config.get("data_source", "folder")
  tfds_data_dir = config.get("tfds_data_dir", "")
  if data_source not in DATA_SOURCES:
    raise ConfigError(
        f"config.data_source {data_source!r} is not one of {DATA_SOURCES}")
  if data_source == "tfds":
    _check_tfds_feature_dim(config)
  if config.dataset == "synthetic":
    spec = synthetic_spec(config)
    data_dir = config.data_dir or default_synthetic_dir(spec)
    layout = "sal" if config.layout == "auto" else config.layout
    if not os.path.isdir(data_dir):
      logging.info("Generating the synthetic dataset into %s (once).", data_dir)
    synthetic.make_synthetic_dataset(data_dir, spec, layout=layout)
    if data_source == "tfds":
      return _tfds_builders().prepare("thumos14", data_dir,
                                      tfds_data_dir or f"{data_dir}-tfds")
    return layouts.open_source(data_dir, "thumos14", layout,
                               feature_dim=config.feature_dim)
  if data_source == "tfds":
    return _tfds_builders().open_prepared(config.dataset, tfds_data_dir)
  if not config.data_dir:
    raise DataError(
        f"no data folder given for {config.dataset}: pass --config.data_dir=DIR, the "
        f"folder of the two-stream I3D features. {LAYOUT_HINT}; "
        f"{layouts.SYNTHETIC_HINT}")
  return layouts.open_source(config.data_dir, config.dataset, config.layout,
                             feature_dim=config.feature_dim)


def _quick_problems(source: source.FeatureSource) -> Iterator[validate.Problem]:
  """Problems visible without reading the features: missing files, shapes from the
  .npy headers, RGB/flow length mismatches, annotations and labels."""
  known = set(source.class_names)
  for split in constants.SPLITS:
    for name in source.video_names(split):
      try:
        source.num_snippets(split, name)
      except DataError as e:
        yield validate.Problem(e.path or source.feature_file(split, name), str(e))
      annotation = source.annotation(name)
      if annotation is None:
        yield validate.Problem(source.annotation_file,
                                f"video {name} of the {split} split has no annotation")
        continue
      for label in sorted(set(annotation.video_labels) | set(annotation.segment_labels)):
        if label not in known:
          yield validate.Problem(source.annotation_file,
                                  f"video {name} has label {label!r}, which is not one "
                                  f"of the {len(known)} classes of the class list")
      if split == "train" and not annotation.video_labels:
        yield validate.Problem(source.annotation_file,
                                f"training video {name} has no labels")


def check_data(source: source.FeatureSource, mode: str, dataset: str) -> None:
  """Stops the run before training when the data folder has problems.

  Args:
    source: the opened data folder.
    mode: 'full' (read every feature file: also NaN values), 'quick' (file
      headers and annotations only) or 'none'.
    dataset: for the hint on the full validator's command.

  Raises:
    DataError: listing the problems, each with its file.
  """
  if mode == "none":
    return
  problems = list(validate.iter_problems(source) if mode == "full"
                  else _quick_problems(source))
  if not problems:
    return
  # A prepared TFDS dataset names the folder it was prepared from: the one to check.
  folder = getattr(source, "source_data_dir", source.data_dir)
  shown = "\n  ".join(str(p) for p in problems[:MAX_PROBLEMS_SHOWN])
  more = len(problems) - MAX_PROBLEMS_SHOWN
  raise DataError(
      f"{len(problems)} problem(s) in the data folder {source.data_dir} "
      f"({source.layout} layout); training did not start:\n  {shown}"
      + (f"\n  ... and {more} more" if more > 0 else "")
      + f"\nList them all with: python -m salx.datasets.check --dataset {dataset} "
      f"--data_dir {folder}", problems[0].file)


def num_classes_of(config: ml_collections.ConfigDict,
                   source: source.FeatureSource) -> int:
  """C from the data; config.num_classes, when set, must agree."""
  num_classes = len(source.class_names)
  if config.num_classes and config.num_classes != num_classes:
    raise DataError(
        f"config.num_classes is {config.num_classes} but the data at "
        f"{source.data_dir} has {num_classes} classes (its class list); set "
        "--config.num_classes=0 to take them from the data", source.annotation_file)
  return num_classes


# ----------------------------------------------------------------------------
# Held-out training videos.


_HOLDOUT_STREAM = 2   # Apart from the feed's streams 0 (order) and 1 (sampling).


def split_training_videos(source, fraction: float, seed: int
                          ) -> Tuple[List[str], List[str]]:
  """(kept, held out) training video names, in the source's order.

  Per class (a video's first label, sorted), round(fraction * n) videos are held
  out, at least one when the class has two or more.
  """
  names = source.video_names("train")
  groups = collections.defaultdict(list)
  for name in names:
    annotation = source.annotation(name)
    labels = sorted(annotation.video_labels) if annotation is not None else []
    groups[labels[0] if labels else ""].append(name)
  rng = np.random.default_rng([seed, _HOLDOUT_STREAM])
  held = set()
  for label in sorted(groups):
    group = groups[label]
    count = int(round(fraction * len(group)))
    if len(group) >= 2:
      count = min(max(count, 1), len(group) - 1)
    else:
      count = 0
    held.update(group[i] for i in rng.permutation(len(group))[:count])
  if not held:
    raise ConfigError(f"config.holdout_fraction = {fraction} holds out no training "
                      "video (each class needs two or more)")
  return [n for n in names if n not in held], [n for n in names if n in held]


class _Delegate:
  """Everything of the wrapped source but the split membership (and so no
  index-based reading, which follows the wrapped source's own splits)."""

  def __init__(self, source):
    self._source = source

  def __getattr__(self, name):
    if name == "load_index":
      raise AttributeError(name)
    return getattr(self._source, name)


class TrainingSubset(_Delegate):
  """`source` whose training split is `kept` (the test split is unchanged)."""

  def __init__(self, source, kept: Sequence[str]):
    super().__init__(source)
    self._kept = list(kept)

  def video_names(self, split: str) -> List[str]:
    return list(self._kept) if split == "train" else self._source.video_names(split)


class HeldOutSplit(_Delegate):
  """`source` whose 'test' split is the held-out training videos."""

  def __init__(self, source, held: Sequence[str]):
    super().__init__(source)
    self._held = list(held)

  def _split(self, split: str) -> str:
    return "train" if split == "test" else split

  def video_names(self, split: str) -> List[str]:
    return list(self._held) if split == "test" else self._source.video_names(split)

  def load(self, split: str, name: str):
    return self._source.load(self._split(split), name)

  def num_snippets(self, split: str, name: str) -> int:
    return self._source.num_snippets(self._split(split), name)

  def feature_file(self, split: str, name: str) -> str:
    return self._source.feature_file(self._split(split), name)

  def ground_truth(self) -> dict:
    """The held-out videos' instances as the 'test' subset."""
    database = self._source.ground_truth()["database"]
    return {"database": {name: dict(database[name], subset="test")
                         for name in self._held if name in database}}


# ----------------------------------------------------------------------------
# The members' training batches.


def training_batches(source, members: Sequence[Any], config, start_step: int,
                    method, hp, mesh, size: int = 2) -> Iterator[Dict[str, jax.Array]]:
  """The members' global batches [K, B, ...] on the mesh, `size` ahead of the step.

  Member m's batch of step s is the one a single run with its seed draws. The K
  feeds read through one reader: one cache holds the training split once.
  """
  # The tf.data feed: imported by the runs that train, not by the checks before them.
  from salx.datasets import batches as batches_lib  # pylint: disable=g-import-not-at-top
  from salx.datasets import input_pipeline  # pylint: disable=g-import-not-at-top
  reader = batches_lib.SplitReader(input_pipeline.as_source(source), "train",
                                   cache=config.cache_data)
  feeds = [input_pipeline.train_batches(
      source, batch_size=config.batch_size, num_segments=method.num_segments(hp),
      seed=m.seed, start_step=start_step, num_steps=config.num_steps - start_step,
      process_index=jax.process_index(), process_count=jax.process_count(),
      sampling=method.train_sampling(hp), video_sampler=method.video_sampler(hp),
      reader=reader) for m in members]
  queue = collections.deque()
  for host_batches in zip(*feeds):
    stacked = {k: np.stack([b[k] for b in host_batches]) for k in ("features", "labels")}
    queue.append(sharding.members_global_batch(stacked, mesh))
    if len(queue) == size:
      yield queue.popleft()
  while queue:
    yield queue.popleft()
