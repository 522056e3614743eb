"""Device mesh, shardings and host-local -> global batches.

One mesh over all devices of all processes with axes ('member', 'data'). One run:
params, optimizer state and mask statistics are replicated and batches are
sharded along their first (batch) axis over 'data'. K members (`salx.core.members`):
the members' states [K, ...] are split over 'member' (8 members on 8 devices: one
each) and their batches [K, B, ...] over ('member', 'data'). The step is jitted over
the GLOBAL batch, so the cross-batch mix-up roll, every top-k and the mask
statistics are those of the whole batch: results do not depend on the number of
devices or hosts.

    mesh = sharding.make_mesh()
    step = sharding.jit_train_step(train_step_fn, mesh)
    batch = sharding.global_batch(host_batch, mesh)     # this host's rows
    state = sharding.replicate(state, mesh)
    state, metrics = step(state, batch, rng)
"""

from __future__ import annotations

import os
from typing import Any, Callable, Mapping, Optional, Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

MEMBER_AXIS = "member"
DATA_AXIS = "data"


def initialize_distributed(coordinator_address: Optional[str] = None,
                           num_processes: Optional[int] = None,
                           process_id: Optional[int] = None,
                           force: bool = False) -> bool:
  """Calls `jax.distributed.initialize` when asked for, once.

  It is asked for by explicit arguments, by `force`, or by the environment
  variables JAX_COORDINATOR_ADDRESS / JAX_NUM_PROCESSES / JAX_PROCESS_ID (set them
  on every host), or by a cluster JAX detects itself (SLURM, TPU pods: pass
  force=True). Returns True when JAX now runs multi-process.
  """
  coordinator_address = coordinator_address or os.environ.get("JAX_COORDINATOR_ADDRESS")
  if num_processes is None and "JAX_NUM_PROCESSES" in os.environ:
    num_processes = int(os.environ["JAX_NUM_PROCESSES"])
  if process_id is None and "JAX_PROCESS_ID" in os.environ:
    process_id = int(os.environ["JAX_PROCESS_ID"])
  if not (force or coordinator_address):
    return False
  if not jax.distributed.is_initialized():
    jax.distributed.initialize(coordinator_address=coordinator_address,
                               num_processes=num_processes, process_id=process_id)
  return jax.process_count() > 1


def member_axis_size(num_members: int, devices_per_process: int) -> int:
  """Devices of each process that split the members: the largest common divisor."""
  return int(np.gcd(max(num_members, 1), devices_per_process))


def make_mesh(devices: Optional[Sequence[jax.Device]] = None,
              num_members: int = 1) -> Mesh:
  """A ('member', 'data') mesh over `devices` (default: all devices of all hosts).

  The member axis lies within each process (its size divides both `num_members`
  and the devices of a process), so every process feeds its rows of every member's
  batch; the data axis spans the processes.
  """
  devices = sorted(jax.devices() if devices is None else devices,
                   key=lambda d: (d.process_index, d.id))
  processes = len({d.process_index for d in devices})
  per_process = len(devices) // processes
  m = member_axis_size(num_members, per_process)
  grid = np.asarray(devices, dtype=object).reshape(processes, m, per_process // m)
  grid = grid.transpose(1, 0, 2).reshape(m, processes * (per_process // m))
  return Mesh(grid, (MEMBER_AXIS, DATA_AXIS))


def data_axis_size(mesh: Mesh) -> int:
  return int(mesh.shape[DATA_AXIS])


def member_sharded(mesh: Mesh) -> NamedSharding:
  """Sharding of the members' arrays [K, ...] split along their member axis."""
  return NamedSharding(mesh, PartitionSpec(MEMBER_AXIS))


def member_batch_sharded(mesh: Mesh) -> NamedSharding:
  """Sharding of the members' batches [K, B, ...]: members, then rows."""
  return NamedSharding(mesh, PartitionSpec(MEMBER_AXIS, DATA_AXIS))


def replicated(mesh: Mesh) -> NamedSharding:
  """Sharding of arrays held whole on every device (params, optimizer state)."""
  return NamedSharding(mesh, PartitionSpec())


def batch_sharded(mesh: Mesh) -> NamedSharding:
  """Sharding of arrays split along their first axis over the data axis."""
  return NamedSharding(mesh, PartitionSpec(DATA_AXIS))


def check_global_batch(global_batch_size: int, mesh: Mesh) -> None:
  """Raises a clear error when the global batch does not divide over devices/hosts."""
  num_devices = data_axis_size(mesh)
  if global_batch_size % num_devices:
    hint = (f"; or train several members (config.num_seeds = {mesh.devices.size} "
            "puts one on each device)" if mesh.shape[MEMBER_AXIS] == 1 else "")
    raise ValueError(
        f"global batch size {global_batch_size} does not divide over the "
        f"{num_devices} devices of the mesh's data axis; choose a multiple of "
        f"{num_devices} (or run on fewer devices){hint}")
  if global_batch_size % jax.process_count():
    raise ValueError(f"global batch size {global_batch_size} does not divide over "
                     f"{jax.process_count()} processes")


def local_batch_size(global_batch_size: int, mesh: Mesh) -> int:
  """Rows of the global batch that this process feeds."""
  check_global_batch(global_batch_size, mesh)
  return global_batch_size // jax.process_count()


def global_batch(host_batch: Mapping[str, Any], mesh: Mesh,
                 keys: Optional[Sequence[str]] = None) -> dict:
  """Assembles global arrays from this host's rows of every batch entry.

  Args:
    host_batch: {'features': [b, T, D], 'labels': [b, C], ...} numpy arrays, where
      this process holds rows [process_index * b, (process_index + 1) * b) of the
      global batch of b * process_count rows.
    mesh: the data mesh.
    keys: entries to put on devices (default: every numeric array entry).

  Returns:
    {key: jax.Array of the global shape, sharded along the batch axis}.
  """
  sharding = batch_sharded(mesh)
  out = {}
  for key, value in host_batch.items():
    if keys is not None and key not in keys:
      continue
    value = np.asarray(value)
    if keys is None and not (np.issubdtype(value.dtype, np.number)
                             or value.dtype == np.bool_):
      continue
    check_global_batch(value.shape[0] * jax.process_count(), mesh)
    out[key] = jax.make_array_from_process_local_data(sharding, value)
  return out


def replicate(tree: Any, mesh: Mesh) -> Any:
  """Places a pytree (e.g. the TrainState) replicated on every device of the mesh."""
  sharding = replicated(mesh)
  return jax.tree_util.tree_map(lambda a: jax.device_put(a, sharding), tree)


def jit_train_step(train_step: Callable, mesh: Mesh, donate: bool = True) -> Callable:
  """`jax.jit` of `train_step(state, batch, rng, hp)` with explicit shardings.

  State in and out replicated (and donated), batch sharded on the data axis, rng,
  hyperparameters and metrics replicated.
  """
  rep, data = replicated(mesh), batch_sharded(mesh)
  return jax.jit(train_step, in_shardings=(rep, data, rep, rep), out_shardings=(rep, rep),
                 donate_argnums=(0,) if donate else ())


def members_global_batch(host_batch: Mapping[str, Any], mesh: Mesh,
                         keys: Sequence[str] = ("features", "labels")) -> dict:
  """Global [K, B, ...] arrays from this host's rows [K, b, ...] of every member."""
  sharding = member_batch_sharded(mesh)
  out = {}
  for key in keys:
    value = np.asarray(host_batch[key])
    global_shape = (value.shape[0], value.shape[1] * jax.process_count()) + value.shape[2:]
    check_global_batch(global_shape[1], mesh)
    out[key] = jax.make_array_from_process_local_data(sharding, value, global_shape)
  return out


def jit_members_step(members_step: Callable, mesh: Mesh, donate: bool = True) -> Callable:
  """`jax.jit` of `step(states, batches, keys, hparams)` (salx.core.members).

  States, keys, hparams and metrics split over 'member' (states donated), batches
  over ('member', 'data').
  """
  member, batch = member_sharded(mesh), member_batch_sharded(mesh)
  return jax.jit(members_step, in_shardings=(member, batch, member, member),
                 out_shardings=(member, member), donate_argnums=(0,) if donate else ())


def jit_members_eval_forward(forward: Callable, mesh: Mesh) -> Callable:
  """`jax.jit` of `forward(params [K], features, mask, stacked_hp [K])`: outputs
  [K, B, ...] split over ('member', 'data')."""
  member, data = member_sharded(mesh), batch_sharded(mesh)
  return jax.jit(forward, in_shardings=(member, data, data, member),
                 out_shardings=member_batch_sharded(mesh))
