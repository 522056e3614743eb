r"""CO2-Net on THUMOS14 with its authors' script settings (docs/co2net_delu.md 0, 3.3).

    python -m salx.main --config=configs/co2net_thumos.py --workdir=W --config.data_dir=DIR

DIR holds the two-stream I3D features in any layout salx reads; the authors used
W-TALC's (`Thumos14reduced-I3D-JOINTFeatures.npy` and `Thumos14reduced-Annotations/`),
the default here. Their `run.sh`: batch 10 (three same-class pairs and four other
videos), T = 500, Adam lr 5e-5 with coupled decay 1e-3, 5000 iterations, seed 3552,
the test split evaluated every 200 iterations and the best sum of mAP(0.1:0.7)
kept (selected on the test set; the report shows the last step beside it). Every
hyperparameter is in `config.co2net`, e.g. `--config.co2net.alpha2=0.5`.
"""

from configs import base


def get_config():
  config = base.get_config()
  base.use_method(config, "co2net", "thumos14")
  config.layout = "wtalc"
  config.batch_size = 10
  config.num_steps = config.co2net.max_iter     # 5000: also the curriculum length.
  config.seed = 3552
  config.eval_every = 200
  config.eval_start_step = 200
  config.eval_batch_size = 4
  config.checkpoint_every = 200
  config.log_every = 50
  return config
