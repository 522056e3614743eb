r"""SAL on ActivityNet 1.3 with the authors' hyperparameters (SPEC section 4).

    python -m salx.main --config=configs/activitynet13.py --workdir=W --config.data_dir=DIR

DIR holds the two-stream I3D features of ActivityNet 1.3 (200 classes), usually in
ACM-Net's layout ('acmnet': `train/`, `test/`, `gt.json`, `split_*.txt`; 'sal' also
works; see salx/datasets/layouts.py). Class order: the authors' (the names sorted),
or a `classlist.txt` in DIR. Everything else is the ActivityNet 1.2 config.
"""

from configs import activitynet12


def get_config():
  config = activitynet12.get_config()
  config.dataset = "activitynet13"
  return config
