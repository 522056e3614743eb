"""The data of a run: opening it (a data folder, a prepared TFDS dataset, or the
synthetic dataset generated on first use) and checking it before anything trains.

`config.data_source` says what to read: 'folder' (the default) reads
`config.data_dir` in its layout; 'tfds' reads the dataset prepared under
`config.tfds_data_dir` by `salx.datasets.tfds_builders.prepare` (for the synthetic
dataset, prepared on first use next to its folder). Both give the same records,
annotations and batches.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import os
from typing import Iterator

from absl import logging
import ml_collections

from salx.app.run_config import ConfigError
from salx.core import constants
from salx.datasets import layouts
from salx.datasets import synthesis
from salx.datasets.errors import DataError
from salx.datasets import source
from salx.datasets import validate

DATA_SOURCES = ("folder", "tfds")

MAX_PROBLEMS_SHOWN = 20
LAYOUT_HINT = (f"salx reads the layouts {layouts.LAYOUT_DESCRIPTIONS}; "
               "see salx/datasets/layouts.py")


def synthetic_spec(config: ml_collections.ConfigDict) -> synthesis.SyntheticSpec:
  """The SyntheticSpec of `config.synthetic` (feature_dim: config.feature_dim)."""
  try:
    return synthesis.SyntheticSpec(**config.synthetic.to_dict(),
                                   feature_dim=config.feature_dim)
  except (TypeError, ValueError) as e:
    raise ConfigError(f"config.synthetic: {e}") from None


def default_synthetic_dir(spec: synthesis.SyntheticSpec) -> str:
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
    synthesis.make_synthetic_dataset(data_dir, spec, layout=layout)
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
