r"""Every field of a salx run, with the authors' THUMOS14 values (SPEC 2, 3, 5).

The dataset configs (`thumos.py`, `activitynet12.py`, `activitynet13.py`,
`synthetic.py`) start from `get_config()` and change only what differs. Any field
can be overridden on the command line, `--config.field=value`, including every
SAL hyperparameter in `config.sal` (e.g. `--config.sal.nms_thresh=0.5` or
`--config.sal.loss_weights.mix=0`).
"""

import dataclasses

import ml_collections

from salx.core import variants


def sal_config(variant_name: str) -> ml_collections.ConfigDict:
  """Every hyperparameter of the SAL code path `variant_name` as a ConfigDict.

  The fields are those of `salx.core.variants.Variant` under the same names
  (`loss_weights` nested), except T, which is `config.num_segments`.
  """
  fields = dataclasses.asdict(variants.get_variant(variant_name))
  del fields["num_segments"]
  if fields["pseudo_topk_fixed"] is None:
    fields["pseudo_topk_fixed"] = ml_collections.config_dict.placeholder(int)
  return ml_collections.ConfigDict(fields)


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

  # Model (SPEC 1) and every hyperparameter of the SAL code path (SPEC 2-4).
  config.variant = "thumos14"    # The code path that filled config.sal.
  config.sal = sal_config(config.variant)
  config.num_classes = 0         # 0: the number of classes of the data.
  config.feature_dim = 2048
  config.hidden_dim = 512
  config.dropout_rate = 0.5
  config.compute_dtype = "float32"    # or 'bfloat16' (params stay float32).
  config.init_checkpoint = ""    # An official file or a salx checkpoint folder.

  # Training (SPEC 2.8, 2.9).
  config.num_segments = 750      # T, snippets sampled per video.
  config.batch_size = 2          # Global, over all devices and hosts.
  config.num_steps = 10_000
  config.learning_rate = 1e-4
  config.weight_decay = 5e-4     # Coupled L2, as PyTorch Adam.
  config.seed = 0

  # Members: num_seeds runs with seeds seed + m, trained at once; `members`, when
  # set (in a config file), is a list of per-member overrides of float fields.
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

  # Checkpoints, logs and pictures.
  config.checkpoint_every = 500
  config.keep_checkpoints = 2
  config.log_every = 50
  config.timeline_videos = 0     # Test videos drawn to TensorBoard at each evaluation.
  config.distributed = False     # jax.distributed.initialize() for multi-host runs.
  return config
