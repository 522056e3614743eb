r"""Every field of a salx run, with SAL's THUMOS14 values (docs/sal.md 2, 3, 5).

The method and dataset configs (`thumos.py`, `activitynet12.py`, `activitynet13.py`,
`synthetic.py`, `co2net_thumos.py`, `delu_thumos.py`) start from `get_config()` and
change only what differs. Any field can be overridden on the command line,
`--config.field=value`. The method's hyperparameters live in `config.<method>`
(`config.sal` for SAL), every field of its hyperparameter dataclass under the same
name: e.g. `--config.sal.nms_thresh=0.5`, `--config.sal.learning_rate=3e-4`,
`--config.sal.num_segments=128` or `--config.sal.loss_weights.mix=0`.

A config file of your own can build on this one from anywhere:

    from configs import base            # salx's configs/ (importable once salx is)

    def get_config():
      config = base.get_config()
      config.sal.hidden_dim = 256
      return config
"""

import dataclasses

import ml_collections

from salx.methods import registry


def method_config(method: str, preset: str) -> ml_collections.ConfigDict:
  """Every hyperparameter of `method`'s preset `preset` as a ConfigDict (the fields
  of its hyperparameter dataclass under the same names, nested groups nested)."""
  def to_config(hp):
    out = {}
    for field in dataclasses.fields(hp):
      value = getattr(hp, field.name)
      if dataclasses.is_dataclass(value):
        out[field.name] = to_config(value)
      elif value is None:
        out[field.name] = ml_collections.config_dict.placeholder(int)
      else:
        out[field.name] = value
    return ml_collections.ConfigDict(out)

  return to_config(registry.get_method(method).presets[preset])


def use_method(config: ml_collections.ConfigDict, method: str, preset: str) -> None:
  """Switches `config` to `method`'s `preset` (its hyperparameters in config.<method>)."""
  with config.unlocked():
    if config.get("method") and config.method != method and config.method in config:
      del config[config.method]
    config.method = method
    config.preset = preset
    config[method] = method_config(method, preset)
    config.protocol = registry.get_method(method).default_protocol


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  # Data.
  config.dataset = "thumos14"
  config.data_source = "folder"  # 'folder' (data_dir) or 'tfds' (tfds_data_dir).
  config.data_dir = ""           # The folder of the features.
  config.tfds_data_dir = ""      # With data_source 'tfds': where it was prepared.
  config.layout = "auto"         # 'auto', 'sal', 'wtalc' or 'acmnet'.
  config.cache_data = True       # Keep the videos read in memory.
  config.check_data = "full"     # 'full' (every feature file), 'quick' (headers), 'none'.

  # The method and every one of its hyperparameters (model widths, T, the loss
  # weights, the optimizer's lr and decay, the localization): config.<method>,
  # filled from the preset.
  use_method(config, "sal", "thumos14")
  config.num_classes = 0         # 0: the number of classes of the data.
  config.feature_dim = 2048
  config.compute_dtype = "float32"    # or 'bfloat16' (params stay float32).
  config.init_checkpoint = ""    # An official file or a salx checkpoint folder.

  # Training (docs/sal.md 2.8, 2.9).
  config.batch_size = 2          # Global, over all devices and hosts.
  config.num_steps = 10_000
  config.seed = 0

  # Members: num_seeds runs with seeds seed + m, trained at once; `members`, when
  # set (in a config file), is a list of per-member overrides of the method's float
  # fields by their config names ({"sal.loss_weights.mix": 0.0}) and of "seed".
  config.num_seeds = 1
  config.members = ml_collections.config_dict.placeholder(list)
  config.holdout_fraction = 0.0  # Training videos held out to select each member's step.

  # Evaluation (SPEC 3, 5): every eval_every steps from eval_start_step on, and at
  # the last step.
  config.eval_every = 10
  config.eval_start_step = 100   # One epoch: 200 videos / batch 2.
  config.eval_batch_size = 16    # Padded test batches (rounded up to the devices).
  config.eval_keep_all_if_shorter = False
  config.eval_untrained = True   # Report the untrained model's score too.
  config.eval_checkpoint = "best"     # What --mode=evaluate loads: 'best' or 'latest'.
  config.eval_workers = 0        # CPU processes for localization and AP (0: in-process).
  # The evaluation protocol (salx/postprocess/protocols.py, docs/protocols.md): the
  # method's authors' by default (use_method sets it), and more scored at the end.
  config.extra_protocols = ()    # e.g. ('wtalc', 'thumos14_official').
  # Each protocol's annotations ('': the data's own; thumos14_official needs the
  # official per-class folder, e.g. --config.protocol_ground_truth.thumos14_official=DIR).
  config.protocol_ground_truth = ml_collections.ConfigDict(
      {"activitynet": "", "thumos14_official": "", "wtalc": ""})
  config.ambiguous_file = ""     # Ambiguous_test.txt ('': none).

  # Checkpoints, logs and pictures.
  config.checkpoint_every = 500
  config.keep_checkpoints = 2
  config.log_every = 50
  config.timeline_videos = 0     # Test videos drawn to TensorBoard at each evaluation.
  config.distributed = False     # jax.distributed.initialize() for multi-host runs.
  return config
