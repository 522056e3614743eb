"""Runs K sharded SAL train steps and saves losses and params (used by test_sharding.py).

Started as a subprocess so that the device count (JAX_NUM_CPU_DEVICES) and the
process group (JAX_COORDINATOR_ADDRESS, JAX_NUM_PROCESSES, JAX_PROCESS_ID) are set
before JAX starts. Usage: python -m tests.sharded_steps_worker OUT.npz [GLOBAL_BATCH]
"""

import sys

import jax
import jax.numpy as jnp
import numpy as np

from salx.core import sharding
from salx.methods.sal import hparams as sal_hparams
from salx.methods.sal.method import SAL_METHOD
from salx.core.train_step import create_train_state, make_train_step

NUM_STEPS, T, D, H, C = 3, 40, 48, 16, 5


def main(out_path: str, global_batch_size: int = 8) -> None:
  sharding.initialize_distributed()
  variant = sal_hparams.THUMOS14.replace(num_segments=T, hidden_dim=H)
  model = SAL_METHOD.build_model(variant, num_classes=C, feature_dim=D)
  mesh = sharding.make_mesh()
  per_host = sharding.local_batch_size(global_batch_size, mesh)
  state = create_train_state(SAL_METHOD, model, variant, jax.random.key(0),
                             input_shape=(2, T, D))
  state = sharding.replicate(state, mesh)
  step = sharding.jit_train_step(
      make_train_step(SAL_METHOD, model), mesh)
  rng = jax.random.key(1)
  data_rng = np.random.default_rng(0)
  losses = []
  for _ in range(NUM_STEPS):
    features = data_rng.normal(size=(global_batch_size, T, D)).astype(np.float32)
    labels = np.zeros((global_batch_size, C), np.float32)
    labels[np.arange(global_batch_size), data_rng.integers(0, C, global_batch_size)] = 1
    rows = slice(jax.process_index() * per_host, (jax.process_index() + 1) * per_host)
    batch = sharding.global_batch({"features": features[rows], "labels": labels[rows]},
                                  mesh)
    state, metrics = step(state, batch, rng, variant)
    losses.append(float(metrics["loss"]))
  if jax.process_index() == 0:
    flat = {"/".join(str(getattr(k, "key", k)) for k in path): np.asarray(v)
            for path, v in jax.tree_util.tree_leaves_with_path(state.params)}
    np.savez(out_path, losses=np.asarray(losses), devices=jax.device_count(), **flat)


if __name__ == "__main__":
  main(sys.argv[1], *(int(a) for a in sys.argv[2:]))
