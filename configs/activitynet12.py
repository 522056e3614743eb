r"""SAL on ActivityNet 1.2 with the authors' hyperparameters (SPEC section 4).

    python -m salx.main --config=configs/activitynet12.py --workdir=W --config.data_dir=DIR

DIR holds the two-stream I3D features of ActivityNet 1.2 (100 classes) in one of
the layouts salx reads (W-TALC's `ActivityNet1.2-I3D-JOINTFeatures.npy` and
`ActivityNet1.2-Annotations/`, or 'sal' / 'acmnet'; see salx/datasets/layouts.py).

The authors' ActivityNet code: T = 50 snippets, batch 32, 50,000 iterations, Adam
lr 1e-4 with coupled weight decay 5e-4, the test evaluation every 200 iterations
and the best average mAP(0.5:0.95) kept (selected on the test set; the report
shows the last step beside it). Test videos shorter than T are kept whole.
"""

from configs import base


def get_config():
  config = base.get_config()
  config.dataset = "activitynet12"
  config.cache_data = False      # Thousands of videos: read them from disk each time.
  config.check_data = "quick"
  base.use_method(config, "sal", "activitynet")   # T = 50 among its fields.
  config.batch_size = 32
  config.num_steps = 50_000
  config.eval_every = 200
  config.eval_start_step = 0
  config.eval_batch_size = 64
  config.eval_keep_all_if_shorter = True
  config.checkpoint_every = 1000
  config.log_every = 100
  return config
