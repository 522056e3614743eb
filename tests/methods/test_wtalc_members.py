"""CO2-Net / DELU members: every float hyperparameter (the alphas, lr, weight decay,
amplitude) can differ per member, and member m of the vmapped step equals its own
single step."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import configs.delu_thumos
from salx.app import config as config_lib
from salx.app.runtime import ConfigError
from salx.core import hparams
from salx.core import members as core_members
from salx.core import train_step
from salx.methods.delu.method import DELU_METHOD

SWEEP = [{"delu.alpha_edl": 0.5, "delu.learning_rate": 1e-3},
         {"delu.amplitude": 0.2, "delu.alpha3": 2.0, "delu.weight_decay": 0.0},
         {"delu.alpha_uct_guide": 1.0, "delu.alpha1": 0.1, "delu.alpha2": 0.9,
          "delu.alpha4": 0.5}]


def test_every_float_field_is_a_member_override():
  config = configs.delu_thumos.get_config()
  config.members = SWEEP
  members = config_lib.members_of(config)
  assert members[0].hp.alpha_edl == 0.5 and members[1].hp.amplitude == 0.2
  assert members[2].hp.alpha_uct_guide == 1.0 and members[1].hp.weight_decay == 0.0
  stacked = config_lib.stacked_hparams(members)
  assert np.asarray(stacked.alpha3).tolist() == [1.0, 2.0, 1.0]
  config.members = [{"delu.max_seqlen": 100}]
  with pytest.raises(ConfigError, match="cannot differ between members"):
    config_lib.members_of(config)


@pytest.mark.slow
def test_member_m_of_the_vmapped_step_equals_its_single_step():
  base = DELU_METHOD.presets["thumos14"].replace(max_seqlen=16, attention_hidden=4,
                                                 dropout_ratio=0.0)
  hps = [base.replace(alpha_edl=0.5, learning_rate=1e-3),
         base.replace(amplitude=0.2, alpha3=2.0)]
  model = DELU_METHOD.build_model(base, num_classes=3, feature_dim=8)
  rng = np.random.default_rng(0)
  labels = np.eye(3, dtype=np.float32)[[0, 0, 1, 1, 2, 2, 0, 1]]
  batch = {"features": rng.normal(size=(8, 16, 8)).astype(np.float32), "labels": labels}
  keys = jax.random.split(jax.random.key(0), 2)
  stacked = hparams.stack(hps)
  states = core_members.create_members_state(DELU_METHOD, model, keys, stacked,
                                             input_shape=(2, 16, 8))
  step = jax.jit(core_members.make_members_step(DELU_METHOD, model))
  together, metrics = step(states, {k: np.stack([v, v]) for k, v in batch.items()},
                           keys, stacked)
  single = jax.jit(train_step.make_train_step(DELU_METHOD, model))
  for m, hp in enumerate(hps):
    state = train_step.create_train_state(DELU_METHOD, model, hp, keys[m],
                                          input_shape=(2, 16, 8))
    alone, alone_metrics = single(state, batch, keys[m], hp)
    np.testing.assert_allclose(float(metrics["loss"][m]), float(alone_metrics["loss"]),
                               rtol=1e-5)
    for a, b in zip(jax.tree_util.tree_leaves(together.params),
                    jax.tree_util.tree_leaves(alone.params)):
      np.testing.assert_allclose(np.asarray(a)[m], np.asarray(b), rtol=1e-5, atol=1e-6)
  assert float(metrics["loss"][0]) != float(metrics["loss"][1])
