r"""The smallest useful run: the synthetic demo at tiny dims, seconds on a CPU.

    python -m salx.main --config=configs/tiny.py --workdir=/tmp/salx-tiny

3 classes, 12 train / 6 test videos of 64-d features, SAL's THUMOS14 code path at
hidden width 16 and T = 32, 30 steps. The tests train it; it also shows how a
config states only what differs from another (here configs/synthetic.py).
"""

import ml_collections

from configs import synthetic

# The run's fields that differ from configs/synthetic.py (the method's own in `SAL`).
RUN = dict(feature_dim=64, batch_size=4, eval_batch_size=4, num_steps=30, eval_every=10,
           eval_start_step=10, checkpoint_every=10, log_every=5)
SAL = dict(hidden_dim=16, num_segments=32, learning_rate=1e-3)
# The synthetic data's knobs that differ.
DATA = dict(num_classes=3, num_train=12, num_test=6, min_length=40, max_length=80)


def get_config() -> ml_collections.ConfigDict:
  config = synthetic.get_config()
  config.update(RUN)
  config.sal.update(SAL)
  config.synthetic.update(DATA)
  return config


def flags() -> list:
  """The `--config.x=y` flags that turn configs/synthetic.py into this config."""
  return ([f"--config.{k}={v}" for k, v in RUN.items()]
          + [f"--config.sal.{k}={v}" for k, v in SAL.items()]
          + [f"--config.synthetic.{k}={v}" for k, v in DATA.items()])
