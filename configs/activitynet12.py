r"""SAL on ActivityNet 1.2 with the authors' hyperparameters (SPEC section 4).

    python -m salx.main --config=configs/activitynet12.py --workdir=W --config.data_dir=DIR

DIR holds the two-stream I3D features of ActivityNet 1.2 (100 classes) in one of
the layouts salx reads (W-TALC's `ActivityNet1.2-I3D-JOINTFeatures.npy` and
`ActivityNet1.2-Annotations/`, or 'sal' / 'acmnet'; see salx/datasets/layouts.py).
Any field can be overridden, e.g. `--config.compute_dtype=bfloat16`.

The authors' ActivityNet code: T = 50 snippets, batch 32, 50,000 iterations, Adam
lr 1e-4 with coupled weight decay 5e-4, the test evaluation every 200 iterations
and the best average mAP(0.5:0.95) kept (selected on the test set; the report
shows the last step beside it). Test videos shorter than T are kept whole.
"""

import ml_collections


def get_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()

  # Data.
  config.dataset = "activitynet12"
  config.data_dir = ""          # Required: the folder of the features.
  config.layout = "auto"        # 'auto', 'sal', 'wtalc' or 'acmnet'.
  config.cache_data = False     # Thousands of videos: read them from disk each time.
  config.check_data = "quick"   # 'full' (every feature file), 'quick' (headers), 'none'.

  # Model (SPEC 1, 4) and the SAL code path (salx/core/variants.py).
  config.variant = "activitynet"
  config.num_classes = 0        # 0: the number of classes of the data.
  config.feature_dim = 2048
  config.hidden_dim = 512
  config.dropout_rate = 0.5
  config.compute_dtype = "float32"   # or 'bfloat16' (params stay float32).

  # Training.
  config.num_segments = 50
  config.batch_size = 32        # Global, over all devices and hosts.
  config.num_steps = 50_000
  config.learning_rate = 1e-4
  config.weight_decay = 5e-4
  config.seed = 0

  # Evaluation: every 200 iterations, and at the last step.
  config.eval_every = 200
  config.eval_start_step = 0
  config.eval_batch_size = 64
  config.eval_keep_all_if_shorter = True
  config.eval_untrained = True
  config.eval_checkpoint = "best"

  # Checkpoints and logs.
  config.checkpoint_every = 1000
  config.keep_checkpoints = 2
  config.log_every = 100
  config.distributed = False
  return config
