r"""SAL on THUMOS14 with the authors' hyperparameters (SPEC sections 2 and 3).

    python -m salx.main --config=configs/thumos.py --workdir=W --config.data_dir=DIR

DIR holds the two-stream I3D features in one of the layouts salx reads ('sal':
gt.json, split_{train,test}.txt, features/{train,test}/{rgb,flow}/<video>.npy;
'wtalc'; 'acmnet'; see salx/datasets/layouts.py). Any field of configs/base.py can be
overridden, e.g. `--config.seed=1 --config.sal.nms_thresh=0.5`.

The authors' protocol: 100 epochs of the 200 training videos at batch 2 (10,000
steps), the full test evaluation every 10 steps after the first epoch, and the
checkpoint with the best average mAP(0.1:0.7) kept — selected on the test set. The
report shows it beside the last step's result.
"""

from configs import base


def get_config():
  return base.get_config()   # The base holds the THUMOS14 setting.
