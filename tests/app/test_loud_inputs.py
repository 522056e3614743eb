"""Inputs are loud once and bounded: NaN features warn once per video with the checks
off, deeply nested run files are one error naming the file, and a resume with the
same command compares configs in one form (no spurious 'differs' warning)."""

import logging
import pathlib

import numpy as np
import pytest

from salx.app import pictures
from salx.app import trainer
from salx.datasets import batches
from salx.datasets import synthetic


def test_nan_features_warn_once_per_video(tmp_path, caplog):
  folder = synthetic.make_synthetic_dataset(tmp_path / "d", synthetic.SyntheticSpec(
      num_classes=2, num_train=2, num_test=2, min_length=8, max_length=10,
      feature_dim=16))
  from salx.datasets import layouts  # pylint: disable=g-import-not-at-top
  source = layouts.open_source(folder, "thumos14", feature_dim=16)
  name = source.video_names("test")[0]
  path = pathlib.Path(folder) / "features" / "test" / "rgb" / f"{name}.npy"
  features = np.load(path)
  features[0, 0] = np.nan
  np.save(path, features)
  reader = batches.SplitReader(source, "test")
  with caplog.at_level(logging.WARNING):
    for _ in range(3):
      reader.load(0)
      reader.load(1)
  warnings = [r for r in caplog.records if "NaN or infinite" in r.getMessage()]
  assert len(warnings) == 1 and name in warnings[0].getMessage()


def test_a_deeply_nested_metrics_file_is_one_error_naming_it(tmp_path):
  (tmp_path / "metrics.json").write_text("[" * 100_000 + "]" * 100_000)
  with pytest.raises(pictures.NoRunError) as error:
    pictures.read_metrics(str(tmp_path))
  assert "metrics.json" in str(error.value) and "\n" not in str(error.value)


def test_saved_lists_and_current_tuples_are_the_same_config():
  saved = {"sal": {"act_thresholds": [0.1, 0.2]}, "extra_protocols": []}
  current = {"sal": {"act_thresholds": (0.1, 0.2)}, "extra_protocols": ()}
  assert trainer._changed_fields(saved, current) == {}   # pylint: disable=protected-access
  changed = trainer._changed_fields(saved, {"sal": {"act_thresholds": (0.1, 0.3)},   # pylint: disable=protected-access
                                          "extra_protocols": ()})
  assert changed == {"sal.act_thresholds": ([0.1, 0.2], [0.1, 0.3])}
