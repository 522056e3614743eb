r"""DELU on THUMOS14 with its authors' script settings (docs/co2net_delu.md 0, 3.3, 7).

    python -m salx.main --config=configs/delu_thumos.py --workdir=W --config.data_dir=DIR

CO2-Net's setting (configs/co2net_thumos.py) with DELU's differences: T = 320, the
guide weight 0.4, the evidential (1.3) and uncertainty-guided (0.4) terms with
their curriculum over 5000 iterations, 20 thresholds, single-snippet detections
dropped, seed 0, the test split evaluated every 50 iterations. Every
hyperparameter is in `config.delu`, e.g. `--config.delu.alpha_edl=1.0`.
"""

from configs import base
from configs import co2net_thumos


def get_config():
  config = co2net_thumos.get_config()
  base.use_method(config, "delu", "thumos14")
  config.num_steps = config.delu.max_iter
  config.seed = 0
  config.eval_every = 50
  config.eval_start_step = 50
  config.checkpoint_every = 250
  return config
