r"""SAL on THUMOS14, the loss ablation: the full model and one run per loss term off.

    python -m salx.main --config=configs/thumos_ablation.py --workdir=W --config.data_dir=DIR

Seven members trained at once by one jitted step (configs/thumos.py otherwise, the
authors' protocol): member 0 is the full model; members 1-6 each set one loss weight
of `config.sal.loss_weights` to 0, in the order of ABLATED (mil, bg, act, se, mix,
mc). The report lists every member's untrained, last and best results.

Seeds: member m trains with seed `config.seed + m`, as every members run does (its
init, batch order and dropout), so a member's difference from member 0 holds the
loss term's effect and seed-to-seed variation together. Run the ablation with
several `--config.seed` values to see that variation, or add `"seed": s` to every
entry of `config.members` to train all seven from the one seed s.
"""

from configs import thumos

# Loss terms switched off one at a time (fields of config.sal.loss_weights).
ABLATED = ("mil", "bg", "act", "se", "mix", "mc")


def get_config():
  config = thumos.get_config()
  config.members = [{}] + [{f"sal.loss_weights.{term}": 0.0} for term in ABLATED]
  return config
