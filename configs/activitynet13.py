r"""SAL on ActivityNet 1.3 with the authors' hyperparameters (SPEC section 4).

    python -m salx.main --config=configs/activitynet13.py --workdir=W --config.data_dir=DIR

DIR holds the two-stream I3D features of ActivityNet 1.3 (200 classes), usually in
ACM-Net's layout ('acmnet': `train/`, `test/`, `gt.json`, `split_*.txt`; 'sal' also
works; see salx/datasets/layouts.py). Class order: `action_name.csv`, or a
`classlist.txt` in DIR. Everything else is the ActivityNet 1.2 config
(configs/activitynet12.py): T = 50, batch 32, 50,000 iterations, evaluation every
200 iterations at tIoU 0.5:0.95.
"""

import importlib.util
import os


def _activitynet12():
  path = os.path.join(os.path.dirname(os.path.abspath(__file__)), "activitynet12.py")
  spec = importlib.util.spec_from_file_location("salx_config_activitynet12", path)
  module = importlib.util.module_from_spec(spec)
  spec.loader.exec_module(module)
  return module


def get_config():
  config = _activitynet12().get_config()
  config.dataset = "activitynet13"   # ~15k videos, read from disk each time.
  return config
