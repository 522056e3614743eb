r"""SAL on THUMOS14 with the authors' hyperparameters (SPEC sections 2 and 3).

    python -m salx.main --config=configs/thumos.py --workdir=W --config.data_dir=DIR

DIR holds the two-stream I3D features in one of the layouts salx reads ('sal':
gt.json, split_{train,test}.txt, features/{train,test}/{rgb,flow}/<video>.npy;
'wtalc'; 'acmnet'; see salx/datasets/layouts.py). Any field below can be
overridden, e.g. `--config.seed=1 --config.compute_dtype=bfloat16`.

The authors' protocol: 100 epochs of the 200 training videos at batch 2 (10,000
steps), the full test evaluation every 10 steps after the first epoch, and the
checkpoint with the best average mAP(0.1:0.7) kept — selected on the test set. The
report shows it beside the last step's result.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  # Data.
  config.dataset = "thumos14"
  config.data_dir = ""          # Required: the folder of the features.
  config.layout = "auto"        # 'auto', 'sal', 'wtalc' or 'acmnet'.
  config.cache_data = True      # Keep the videos read in memory (~1 GB).
  config.check_data = "full"    # 'full' (every feature file), 'quick' (headers), 'none'.

  # Model (SPEC 1) and the SAL code path (salx/core/variants.py).
  config.variant = "thumos14"
  config.num_classes = 0        # 0: the number of classes of the data.
  config.feature_dim = 2048
  config.hidden_dim = 512
  config.dropout_rate = 0.5
  config.compute_dtype = "float32"   # or 'bfloat16' (params stay float32).

  # Training (SPEC 2.8, 2.9).
  config.num_segments = 750     # T, snippets sampled per video.
  config.batch_size = 2         # Global, over all devices and hosts.
  config.num_steps = 10_000
  config.learning_rate = 1e-4
  config.weight_decay = 5e-4    # Coupled L2, as PyTorch Adam.
  config.seed = 0

  # Evaluation (SPEC 3, 5): every eval_every steps from eval_start_step on, and at
  # the last step.
  config.eval_every = 10
  config.eval_start_step = 100  # One epoch: 200 videos / batch 2.
  config.eval_batch_size = 16   # Padded test batches (rounded up to the devices).
  config.eval_keep_all_if_shorter = False
  config.eval_untrained = True  # Report the untrained model's score too.
  config.eval_checkpoint = "best"    # What --mode=evaluate loads: 'best' or 'latest'.

  # Checkpoints and logs.
  config.checkpoint_every = 500
  config.keep_checkpoints = 2
  config.log_every = 50
  config.distributed = False    # jax.distributed.initialize() for multi-host runs.
  return config
