"""The training losses on their way to the host: checked finite, then written.

The step's metrics stay on the device; every `log_every` steps (and before an
evaluation or a checkpoint) the pending ones come to the host in one transfer.
With K members every metric is [K].
"""

from __future__ import annotations

from typing import Dict, List, Optional, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from salx.app import errors


@jax.jit
def all_finite(tree) -> jax.Array:
  """True when every entry of every array of `tree` is finite."""
  return jnp.all(jnp.stack([jnp.all(jnp.isfinite(x))
                            for x in jax.tree_util.tree_leaves(tree)]))


def member_label(seeds: Sequence[int], m: int) -> str:
  return f" of member {m} (seed {seeds[m]})" if len(seeds) > 1 else ""


def sync_train_metrics(writer, pending: list, seeds: Sequence[int],
                       last_good_step: Optional[int], latest_dir: str
                       ) -> Optional[List[Dict[str, float]]]:
  """Brings the pending step metrics to the host, checks them, writes their means.

  Args:
    writer: a clu metric writer ('train/<name>'; with several members also
      'train/member<m>/<name>', the plain name holding the members' mean).
    pending: [(step, {name: device [K]})] since the last call.
    seeds: the K members' seeds (for the error message).
    last_good_step: the newest checkpoint's step, for the error message.
    latest_dir: where that checkpoint lives.

  Returns:
    per member {name: mean over the pending steps}, or None when nothing was pending.

  Raises:
    errors.NonFiniteLossError: a loss is NaN or infinite, or a batch holds broken
      videos (nothing after it is saved).
  """
  if not pending:
    return None
  steps = [step for step, _ in pending]
  host = jax.device_get([metrics for _, metrics in pending])
  where = (f"the last good checkpoint, step {last_good_step}, is intact in "
           f"{latest_dir}" if last_good_step is not None else
           "no checkpoint had been saved yet")
  bad_inputs = np.stack([np.asarray(m["bad_videos"]).reshape(-1) for m in host])
  if np.any(bad_inputs > 0):
    i, m = np.argwhere(bad_inputs > 0)[0]
    raise errors.NonFiniteLossError(
        f"the training batch of step {steps[i]}{member_label(seeds, m)} holds "
        f"{int(bad_inputs[i, m])} video(s) with NaN or infinite features or without a "
        f"positive label; the run stopped without saving, and {where}. Find the "
        "files with python -m salx.datasets.check.")
  losses = np.stack([np.asarray(m["loss"], np.float64).reshape(-1) for m in host])
  if not np.all(np.isfinite(losses)):
    i, m = np.argwhere(~np.isfinite(losses))[0]
    raise errors.NonFiniteLossError(
        f"the training loss{member_label(seeds, m)} is {losses[i, m]} at step "
        f"{steps[i]} (NaN or infinite); the run stopped without saving the diverged "
        f"state, and {where}. Resuming replays the same steps: lower "
        "--config.<method>.learning_rate, use --config.compute_dtype=float32, or check the "
        "features with python -m salx.datasets.check.")
  means = [{k: float(np.mean([np.asarray(h[k]).reshape(-1)[m] for h in host]))
            for k in host[0]} for m in range(len(seeds))]
  scalars = {f"train/{k}": float(np.mean([mm[k] for mm in means])) for k in means[0]}
  if len(seeds) > 1:
    scalars.update({f"train/member{m}/{k}": v for m, mm in enumerate(means)
                    for k, v in mm.items()})
  writer.write_scalars(steps[-1], scalars)
  return means
