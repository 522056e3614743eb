"""The configs: the authors' hyperparameters, run commands, command-line overrides."""

import dataclasses
import pathlib

from absl import flags
from ml_collections import config_flags
import numpy as np
import pytest

import configs.activitynet12
import configs.activitynet13
import configs.base
import configs.synthetic
import configs.thumos
from salx.app import data
from salx.app import config as config_lib
from salx.methods.sal import hparams as sal_hparams
from salx.datasets import synthetic

ROOT = pathlib.Path(__file__).resolve().parents[2]
CONFIGS = ("synthetic", "thumos", "activitynet12", "activitynet13")
FIELDS = ("dataset", "data_dir", "layout", "method", "preset", "num_classes",
          "feature_dim", "batch_size", "num_steps", "eval_every", "eval_start_step", "seed",
          "compute_dtype", "checkpoint_every", "keep_checkpoints", "log_every",
          "distributed")


def load(name):
  return getattr(configs, name)


@pytest.mark.slow
@pytest.mark.parametrize("name", CONFIGS)
def test_config_is_complete_valid_and_documents_its_command(name):
  module = load(name)
  config = module.get_config()
  for field in FIELDS:
    assert field in config, field
  config_lib.check_config(config)
  assert f"python -m salx.main --config=configs/{name}.py --workdir=" in module.__doc__
  assert config.distributed is False and config.feature_dim == 2048
  assert config[config.method].learning_rate == 1e-4 or name == "synthetic"


def test_thumos_is_the_authors_setting():
  config = load("thumos").get_config()
  assert (config.dataset, config.method, config.preset) == ("thumos14", "sal", "thumos14")
  assert (config.sal.num_segments, config.batch_size, config.num_steps) == (750, 2, 10_000)
  assert (config.sal.hidden_dim, config.sal.dropout_rate) == (512, 0.5)
  assert (config.sal.learning_rate, config.sal.weight_decay) == (1e-4, 5e-4)
  assert (config.eval_every, config.eval_start_step) == (10, 100)   # After epoch 1.
  assert not config.eval_keep_all_if_shorter
  assert "--config.data_dir=DIR" in load("thumos").__doc__


@pytest.mark.parametrize("name,dataset", [("activitynet12", "activitynet12"),
                                          ("activitynet13", "activitynet13")])
def test_activitynet_is_the_authors_setting(name, dataset):
  config = load(name).get_config()
  assert (config.dataset, config.method, config.preset) == (dataset, "sal", "activitynet")
  assert (config.sal.num_segments, config.batch_size, config.num_steps) == (50, 32, 50_000)
  assert (config.sal.learning_rate, config.sal.weight_decay) == (1e-4, 5e-4)
  assert config.eval_every == 200 and config.eval_keep_all_if_shorter


def test_synthetic_knobs_are_the_spec_fields():
  config = load("synthetic").get_config()
  spec = data.synthetic_spec(config)
  fields = {f.name for f in dataclasses.fields(synthetic.SyntheticSpec)}
  assert set(config.synthetic) == fields - {"feature_dim"}
  assert spec.feature_dim == config.feature_dim
  other = data.synthetic_spec(load("synthetic").get_config().unlock())
  assert data.default_synthetic_dir(spec) == data.default_synthetic_dir(other)
  config.synthetic.noise_std = 2.0
  assert (data.default_synthetic_dir(data.synthetic_spec(config))
          != data.default_synthetic_dir(spec))


def test_command_line_overrides_any_field():
  argv = ["salx", f"--config={ROOT / 'configs' / 'synthetic.py'}", "--config.seed=3",
          "--config.compute_dtype=bfloat16", "--config.synthetic.noise_std=2.5",
          "--config.data_dir=/data/x"]
  values = flags.FlagValues()
  holder = config_flags.DEFINE_config_file("config", flag_values=values, sys_argv=argv)
  values(argv)
  config = holder.value
  assert (config.seed, config.compute_dtype, config.data_dir) == (3, "bfloat16", "/data/x")
  assert config.synthetic.noise_std == 2.5


@pytest.mark.parametrize("field,value,message", [
    ("dataset", "kinetics", "config.dataset"), ("method", "x", "config.method"),
    ("compute_dtype", "float16", "config.compute_dtype"),
    ("eval_every", 0, "config.eval_every"), ("check_data", "some", "config.check_data"),
    ("seed", -1, "config.seed"), ("sal.learning_rate", -1e-4, "config.sal.learning_rate"),
    ("sal.nms_thresh", 1.5, "config.sal.nms_thresh"),
    ("sal.loss_weights.mix", -1.0, "config.sal.loss_weights.mix"),
    ("sal.act_thresholds", (0.5, 1.5), "config.sal.act_thresholds"),
    ("sal.encoder_kernel", 4, "config.sal.encoder_kernel"),
    ("sal.num_segments", 16, "largest top-k"),
    ("sal.hidden_dim", 0, "config.sal.hidden_dim"),
    ("sal.sampling", "kinetics", "config.sal.sampling"),
    ("sal.rgb_weight", float("nan"), "config.sal.rgb_weight must be a finite number")])
def test_bad_fields_are_named(field, value, message):
  config = load("thumos").get_config()
  *parents, leaf = field.split(".")
  node = config
  for key in parents:
    node = node[key]
  node[leaf] = value
  with pytest.raises(config_lib.ConfigError, match=message):
    config_lib.check_config(config)


def test_unknown_synthetic_knob_is_a_config_error():
  config = load("synthetic").get_config()
  with config.unlocked():
    config.synthetic.loudness = 3.0
  with pytest.raises(config_lib.ConfigError, match="config.synthetic"):
    data.synthetic_spec(config)


@pytest.mark.parametrize("name,variant", [("thumos", sal_hparams.THUMOS14),
                                          ("activitynet12", sal_hparams.ACTIVITYNET),
                                          ("activitynet13", sal_hparams.ACTIVITYNET)])
def test_config_sal_holds_every_field_of_the_code_path(name, variant):
  config = load(name).get_config()
  fields = {f.name for f in dataclasses.fields(sal_hparams.SALHparams)}
  assert set(config.sal) == fields
  assert set(config.sal.loss_weights) == {f.name for f in dataclasses.fields(
      sal_hparams.LossWeights)}
  assert config_lib.make_hparams(config) == variant


def test_command_line_overrides_reach_the_hyperparameters():
  argv = ["salx", f"--config={ROOT / 'configs' / 'thumos.py'}",
          "--config.sal.nms_thresh=0.5", "--config.sal.loss_weights.mix=0",
          "--config.sal.act_thresholds=(0.2, 0.4)", "--config.sal.num_segments=320"]
  values = flags.FlagValues()
  holder = config_flags.DEFINE_config_file("config", flag_values=values, sys_argv=argv)
  values(argv)
  variant = config_lib.make_hparams(holder.value)
  assert (variant.nms_thresh, variant.loss_weights.mix) == (0.5, 0.0)
  assert variant.act_thresholds == (0.2, 0.4) and variant.num_segments == 320
  assert variant.loss_weights.mc == sal_hparams.THUMOS14.loss_weights.mc


def test_a_changed_nms_threshold_changes_the_detections():
  from salx.postprocess import localization  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  cas, flow, rgb = rng.normal(size=(2, 64, 4)), rng.uniform(size=(2, 64)), rng.uniform(
      size=(2, 64))
  logits = rng.normal(size=(2, 4)) * 3
  counts = {}
  for value in (0.4, 0.9):
    config = configs.thumos.get_config()
    config.sal.num_segments = 64
    config.sal.nms_thresh = value
    config.sal.soft_nms = False    # Plain NMS: a higher threshold keeps more.
    variant = config_lib.make_hparams(config)
    counts[value] = len(localization.localize(
        cas, flow, rgb, logits, None, [100, 200], variant, video_names=["a", "b"],
        class_names=list("wxyz")).detections)
  assert counts[0.9] > counts[0.4] > 0
