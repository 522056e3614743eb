"""Mistakes a run can be told before it starts: one error naming the field or file,
before any device work, and nothing created (salx.app.config)."""

import numpy as np
import pytest

from salx.app import data
from salx.app import config as config_lib
from salx.app import runtime
from salx.app.runtime import ConfigError
from salx.core import torch_writer
from salx.datasets.errors import DataError
from tests.conftest import tiny_config

import configs.base


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory):
  folder = tmp_path_factory.mktemp("data") / "tiny"
  data.open_data(tiny_config(folder))
  return folder


def _check(config, workdir):
  config_lib.preflight(config, str(workdir))
  assert not workdir.exists()


def test_a_good_config_passes_and_creates_nothing(data_dir, tmp_path):
  _check(tiny_config(data_dir), tmp_path / "run")


@pytest.mark.parametrize("overrides,message", [
    (dict(seed=2 ** 31), "config.seed"),
    (dict(seed=2 ** 31 - 2, num_seeds=3), "config.seed"),
    (dict(batch_size=1), "needs a batch of at least 2"),
    (dict(batch_size=13), "larger than the 12 training videos"),
    (dict(batch_size=12, holdout_fraction=0.5), "larger than the 6 training videos"),
])
def test_config_ranges_are_checked_against_the_method_and_the_data(overrides, message,
                                                                   data_dir, tmp_path):
  with pytest.raises(ConfigError, match=message):
    _check(tiny_config(data_dir, **overrides), tmp_path / "run")
  assert not (tmp_path / "run").exists()


def test_co2net_batches_need_three_pairs(data_dir, tmp_path):
  config = tiny_config(data_dir, batch_size=4)
  configs.base.use_method(config, "co2net", "thumos14")
  with pytest.raises(ConfigError, match="three|3 same-class pairs"):
    _check(config, tmp_path / "run")


def test_an_empty_split_is_named(data_dir, tmp_path):
  import shutil  # pylint: disable=g-import-not-at-top
  copy = tmp_path / "copy"
  shutil.copytree(data_dir, copy)
  (copy / "split_test.txt").write_text("")
  with pytest.raises(DataError, match="split_test.txt lists no video"):
    _check(tiny_config(copy, dataset="thumos14", layout="sal"), tmp_path / "run")


def test_a_data_dir_that_is_a_file(tmp_path):
  path = tmp_path / "features.npy"
  path.write_bytes(b"x")
  config = configs.base.get_config()
  config.data_dir = str(path)
  with pytest.raises(DataError, match="is a file, not a folder"):
    _check(config, tmp_path / "run")


def test_a_workdir_that_is_a_file_or_busy(data_dir, tmp_path):
  file = tmp_path / "file"
  file.write_text("x")
  with pytest.raises(runtime.WorkdirError, match="is a file"):
    config_lib.preflight(tiny_config(data_dir), str(file))
  busy = tmp_path / "busy"
  with runtime.WorkdirLock(str(busy)):
    with pytest.raises(runtime.WorkdirBusyError, match="in use by another run"):
      config_lib.preflight(tiny_config(data_dir), str(busy))
  config_lib.preflight(tiny_config(data_dir), str(busy))   # Free again once released.


def test_init_checkpoint_is_read_and_checked_before_the_run(data_dir, tmp_path):
  missing = tmp_path / "missing.pkl"
  with pytest.raises(ConfigError, match="config.init_checkpoint: .* does not exist"):
    _check(tiny_config(data_dir, init_checkpoint=str(missing)), tmp_path / "run")
  other = tmp_path / "other.pkl"   # A well-formed torch file, not SAL's state dict.
  torch_writer.write_torch_file({"layer.weight": np.zeros((2, 2), np.float32)}, other)
  with pytest.raises(ConfigError, match="config.init_checkpoint"):
    _check(tiny_config(data_dir, init_checkpoint=str(other)), tmp_path / "run")
  from tests.conftest import fixture_file  # pylint: disable=g-import-not-at-top
  wrong_dims = fixture_file("checkpoints/thumos_CAS_Only.pkl")
  with pytest.raises(ConfigError, match="does not fit the config"):
    _check(tiny_config(data_dir, init_checkpoint=str(wrong_dims)), tmp_path / "run")
