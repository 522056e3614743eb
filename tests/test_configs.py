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
from salx.app import run_config
from salx.core import variants
from salx.datasets import synthesis

ROOT = pathlib.Path(__file__).resolve().parents[1]
CONFIGS = ("synthetic", "thumos", "activitynet12", "activitynet13")
FIELDS = ("dataset", "data_dir", "layout", "variant", "num_classes", "feature_dim",
          "hidden_dim", "dropout_rate", "num_segments", "batch_size", "num_steps",
          "learning_rate", "weight_decay", "eval_every", "eval_start_step", "seed",
          "compute_dtype", "checkpoint_every", "keep_checkpoints", "log_every",
          "distributed")


def load(name):
  return getattr(configs, name)


@pytest.mark.parametrize("name", CONFIGS)
def test_config_is_complete_valid_and_documents_its_command(name):
  module = load(name)
  config = module.get_config()
  for field in FIELDS:
    assert field in config, field
  run_config.check_config(config)
  assert f"python -m salx.main --config=configs/{name}.py --workdir=" in module.__doc__
  assert config.distributed is False and config.feature_dim == 2048
  assert config.learning_rate == 1e-4 or name == "synthetic"


def test_thumos_is_the_authors_setting():
  config = load("thumos").get_config()
  assert (config.dataset, config.variant) == ("thumos14", "thumos14")
  assert (config.num_segments, config.batch_size, config.num_steps) == (750, 2, 10_000)
  assert (config.hidden_dim, config.dropout_rate) == (512, 0.5)
  assert (config.learning_rate, config.weight_decay) == (1e-4, 5e-4)
  assert (config.eval_every, config.eval_start_step) == (10, 100)   # After epoch 1.
  assert not config.eval_keep_all_if_shorter
  assert "--config.data_dir=DIR" in load("thumos").__doc__


@pytest.mark.parametrize("name,dataset", [("activitynet12", "activitynet12"),
                                          ("activitynet13", "activitynet13")])
def test_activitynet_is_the_authors_setting(name, dataset):
  config = load(name).get_config()
  assert (config.dataset, config.variant) == (dataset, "activitynet")
  assert (config.num_segments, config.batch_size, config.num_steps) == (50, 32, 50_000)
  assert (config.learning_rate, config.weight_decay) == (1e-4, 5e-4)
  assert config.eval_every == 200 and config.eval_keep_all_if_shorter


def test_synthetic_knobs_are_the_spec_fields():
  config = load("synthetic").get_config()
  spec = data.synthetic_spec(config)
  fields = {f.name for f in dataclasses.fields(synthesis.SyntheticSpec)}
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
    ("dataset", "kinetics", "config.dataset"), ("variant", "x", "config.variant"),
    ("compute_dtype", "float16", "config.compute_dtype"),
    ("eval_every", 0, "config.eval_every"), ("check_data", "some", "config.check_data"),
    ("seed", -1, "config.seed"), ("learning_rate", -1e-4, "config.learning_rate"),
    ("sal.nms_thresh", 1.5, "config.sal.nms_thresh"),
    ("sal.loss_weights.mix", -1.0, "config.sal.loss_weights.mix"),
    ("sal.act_thresholds", (0.5, 1.5), "config.sal.act_thresholds"),
    ("sal.encoder_kernel", 4, "config.sal.encoder_kernel"),
    ("num_segments", 16, "largest top-k"),
    ("variant", "activitynet", "config.sal holds the 'thumos14' code path")])
def test_bad_fields_are_named(field, value, message):
  config = load("thumos").get_config()
  *parents, leaf = field.split(".")
  node = config
  for key in parents:
    node = node[key]
  node[leaf] = value
  with pytest.raises(run_config.ConfigError, match=message):
    run_config.check_config(config)


def test_unknown_synthetic_knob_is_a_config_error():
  config = load("synthetic").get_config()
  with config.unlocked():
    config.synthetic.loudness = 3.0
  with pytest.raises(run_config.ConfigError, match="config.synthetic"):
    data.synthetic_spec(config)


@pytest.mark.parametrize("name,variant", [("thumos", variants.THUMOS14),
                                          ("activitynet12", variants.ACTIVITYNET),
                                          ("activitynet13", variants.ACTIVITYNET)])
def test_config_sal_holds_every_field_of_the_code_path(name, variant):
  config = load(name).get_config()
  fields = {f.name for f in dataclasses.fields(variants.Variant)} - {"num_segments"}
  assert set(config.sal) == fields
  assert set(config.sal.loss_weights) == {f.name for f in dataclasses.fields(
      variants.LossWeights)}
  assert run_config.make_variant(config) == variant.replace(
      num_segments=config.num_segments)


def test_command_line_overrides_reach_the_variant():
  argv = ["salx", f"--config={ROOT / 'configs' / 'thumos.py'}",
          "--config.sal.nms_thresh=0.5", "--config.sal.loss_weights.mix=0",
          "--config.sal.act_thresholds=(0.2, 0.4)", "--config.num_segments=320"]
  values = flags.FlagValues()
  holder = config_flags.DEFINE_config_file("config", flag_values=values, sys_argv=argv)
  values(argv)
  variant = run_config.make_variant(holder.value)
  assert (variant.nms_thresh, variant.loss_weights.mix) == (0.5, 0.0)
  assert variant.act_thresholds == (0.2, 0.4) and variant.num_segments == 320
  assert variant.loss_weights.mc == variants.THUMOS14.loss_weights.mc


def test_a_changed_nms_threshold_changes_the_detections():
  from salx.postprocess import localization  # pylint: disable=g-import-not-at-top
  rng = np.random.default_rng(0)
  cas, flow, rgb = rng.normal(size=(2, 64, 4)), rng.uniform(size=(2, 64)), rng.uniform(
      size=(2, 64))
  logits = rng.normal(size=(2, 4)) * 3
  counts = {}
  for value in (0.4, 0.9):
    config = configs.thumos.get_config()
    config.num_segments = 64
    config.sal.nms_thresh = value
    config.sal.soft_nms = False    # Plain NMS: a higher threshold keeps more.
    variant = run_config.make_variant(config)
    counts[value] = len(localization.localize(
        cas, flow, rgb, logits, None, [100, 200], variant, video_names=["a", "b"],
        class_names=list("wxyz")).detections)
  assert counts[0.9] > counts[0.4] > 0
