"""configs/thumos_ablation.py: the full model and one member per loss term off."""

import dataclasses

import configs.thumos
import configs.thumos_ablation
from salx.app import config as config_lib
from salx.methods.sal import hparams as sal_hparams

TERMS = tuple(f.name for f in dataclasses.fields(sal_hparams.LossWeights))


def _weights(member):
  return {term: getattr(member.hp.loss_weights, term) for term in TERMS}


def test_ablation_has_the_full_model_and_one_member_per_loss_term_off():
  config = configs.thumos_ablation.get_config()
  config_lib.check_config(config)
  members = config_lib.members_of(config)
  assert len(members) == 7
  full = _weights(members[0])
  assert full == _weights(config_lib.members_of(configs.thumos.get_config())[0])
  assert all(value > 0 for value in full.values())
  switched_off = []
  for member in members[1:]:
    weights = _weights(member)
    zero = [term for term, value in weights.items() if value == 0]
    assert len(zero) == 1, (member.index, weights)
    assert {t: v for t, v in weights.items() if t != zero[0]} == {
        t: v for t, v in full.items() if t != zero[0]}
    switched_off.append(zero[0])
  assert sorted(switched_off) == sorted(TERMS)
  assert tuple(switched_off) == configs.thumos_ablation.ABLATED


def test_ablation_members_get_consecutive_seeds_and_the_thumos_protocol():
  config = configs.thumos_ablation.get_config()
  members = config_lib.members_of(config)
  assert [m.seed for m in members] == [config.seed + m for m in range(7)]
  thumos = configs.thumos.get_config()
  for field in ("num_steps", "batch_size", "eval_every", "eval_start_step",
                "feature_dim"):
    assert config[field] == thumos[field], field
  for field in ("num_segments", "learning_rate", "hidden_dim"):
    assert config.sal[field] == thumos.sal[field], field
  stacked = config_lib.stacked_hparams(members)
  for m, term in enumerate(configs.thumos_ablation.ABLATED, start=1):
    assert getattr(stacked.loss_weights, term)[m] == 0.0
    assert getattr(stacked.loss_weights, term)[0] > 0.0
  assert "--config=configs/thumos_ablation.py --workdir=" in configs.thumos_ablation.__doc__
