"""Per-member step time: K members in one jitted step beside K separate steps.

    python experiments/bench_members.py                               # THUMOS14 sizes
    python experiments/bench_members.py --hidden_dim=256 --steps=5    # CPU-sized

For each K of --members, in one run: K members trained by one jitted step
(`salx.core.members.make_members_step` under `salx.core.sharding.jit_members_step`,
states [K, ...], batches [K, B, T, D], as the trainer with config.num_seeds = K),
and K single members (the same step with K = 1, what a run of one seed trains)
stepped one after the other, each with its own state. One member is initialised
by the trainer's `salx.app.config.init_members` on configs/thumos.py at the flags'
sizes (default D 2048, H 512, T 750, B 2: the full 146M-parameter model); every
state timed starts from copies of it (a step's time does not depend on the values,
and only the steps compile), with its own batch and dropout key. Each step is
ended by block_until_ready; after --warmup untimed steps (the first compiles), the
median of --steps timed steps (a round of K separate steps counts as one) divided by
K is the time per member. Prints a line of the sizes, then one line per K:

    bench_members feature_dim=D hidden_dim=H segments=T batch=B classes=C
      devices=N backend=X dtype=T steps=S
    members=K together_ms_per_member=... separate_ms_per_member=... ratio=...

ratio = together / separate: below 1 the members' step is the cheaper way to train
K members. The members share one mesh of all local devices, split over its
'member' axis where K allows (salx.core.sharding.make_mesh).

On a 2-core CPU the full model needs 1.75 GB per state and about a second per
member step; `--hidden_dim=256` (D 2048, T 750, B 2; 21M parameters) with
`--steps=5` runs K = 1, 2, 4, 8 in about 3 minutes there.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import sys
import time
from typing import Any, Callable, Dict

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.dirname(HERE))
sys.path.insert(0, HERE)

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import configs.thumos  # noqa: E402
from bench_train_step import make_batch  # noqa: E402
from salx.app import config as config_lib  # noqa: E402
from salx.core import members as core_members  # noqa: E402
from salx.core import sharding  # noqa: E402

NUM_CLASSES = 20


def make_config(args, num_members: int = 1):
  """configs/thumos.py at the flags' sizes with `num_members` seeds."""
  config = configs.thumos.get_config()
  config.update(dict(feature_dim=args.feature_dim, batch_size=args.batch_size,
                     compute_dtype=args.dtype, num_seeds=num_members))
  config.sal.update(dict(hidden_dim=args.hidden_dim, num_segments=args.num_segments))
  config_lib.check_config(config)
  return config


@dataclasses.dataclass
class Members:
  """K members on a mesh: states [K, ...], batches {'features' [K, B, T, D],
  'labels' [K, B, C]}, dropout keys and hyperparameters [K], and their jitted step."""
  state: Any
  batch: Dict[str, jax.Array]
  keys: jax.Array
  hparams: Any
  step_fn: Callable[..., Any]

  def step(self):
    """One step of every member; returns its metrics [K] (on the device)."""
    self.state, metrics = self.step_fn(self.state, self.batch, self.keys, self.hparams)
    return metrics


def members_batch(args, seeds, mesh) -> Dict[str, jax.Array]:
  """The members' batches [K, B, ...] on `mesh`, member m's drawn from seeds[m]."""
  host = [make_batch(args.batch_size, args.num_segments, NUM_CLASSES, args.feature_dim,
                     seed=seed) for seed in seeds]
  return sharding.members_global_batch(
      {k: np.stack([b[k] for b in host]) for k in ("features", "labels")}, mesh)


def first_member(args):
  """(one member initialised by the trainer's `init_members`, its model, its method)."""
  config = make_config(args)
  method = config_lib.method_of(config)
  hp = config_lib.make_hparams(config)
  model = config_lib.make_model(config, NUM_CLASSES, method, hp)
  mesh = sharding.make_mesh(num_members=1)
  state, keys, hparams = config_lib.init_members(
      method, model, config, config_lib.members_of(config), mesh)
  step_fn = sharding.jit_members_step(core_members.make_members_step(method, model), mesh)
  return Members(state, members_batch(args, [0], mesh), keys, hparams, step_fn), model, method


def repeated(args, first, model, method, seeds, step_fn=None) -> Members:
  """len(seeds) members starting from copies of the one member `first` (the time of a
  step does not depend on the values), each with its own batch and dropout key, and
  their step (`step_fn`, when given, of the same sizes, is reused)."""
  k = len(seeds)
  mesh = sharding.make_mesh(num_members=k)
  member = sharding.member_sharded(mesh)
  # Jitted, so that the copies are new buffers even for k = 1 (the step donates them).
  copies = jax.jit(lambda tree: jax.tree_util.tree_map(
      lambda x: jnp.repeat(x, k, axis=0), tree), out_shardings=member)(
          (first.state, first.hparams))
  keys = jax.device_put(jnp.stack([jax.random.key(seed) for seed in seeds]), member)
  step_fn = step_fn or sharding.jit_members_step(
      core_members.make_members_step(method, model), mesh)
  return Members(copies[0], members_batch(args, seeds, mesh), keys, copies[1], step_fn)


def median_ms(run_round, steps: int, warmup: int) -> float:
  """Median wall time (ms) of `run_round()` over `steps` calls after `warmup`."""
  for _ in range(warmup):
    jax.block_until_ready(run_round())
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    jax.block_until_ready(run_round())
    times.append(time.perf_counter() - start)
  return 1e3 * float(np.median(times))


def check_finite(metrics) -> None:
  loss = np.asarray(jax.device_get(metrics["loss"]))
  if not np.isfinite(loss).all():
    raise RuntimeError(f"non-finite loss {loss}")


def bench(args, num_members: int, first: Members, model, method) -> str:
  """The result line of K = `num_members`."""
  seeds = list(range(num_members))
  together = (first if num_members == 1 else
              repeated(args, first, model, method, seeds))
  together_ms = median_ms(together.step, args.steps, args.warmup)
  check_finite(together.step())
  separate = [repeated(args, first, model, method, [seed], first.step_fn)
              for seed in seeds]
  separate_ms = median_ms(lambda: [m.step() for m in separate], args.steps, args.warmup)
  for member in separate:
    check_finite(member.step())
  together_pm, separate_pm = together_ms / num_members, separate_ms / num_members
  return (f"members={num_members} together_ms_per_member={together_pm:.2f} "
          f"separate_ms_per_member={separate_pm:.2f} ratio={together_pm / separate_pm:.3f}")


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--members", default="1,2,4,8", help="comma-separated K values")
  parser.add_argument("--feature_dim", type=int, default=2048)
  parser.add_argument("--hidden_dim", type=int, default=512)
  parser.add_argument("--num_segments", type=int, default=750)
  parser.add_argument("--batch_size", type=int, default=2)
  parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                      help="config.compute_dtype (params stay float32)")
  parser.add_argument("--steps", type=int, default=10, help="timed steps per K")
  parser.add_argument("--warmup", type=int, default=2,
                      help="untimed steps per K (the first compiles)")
  args = parser.parse_args(argv)
  try:
    args.members = [int(k) for k in args.members.split(",")]
  except ValueError:
    parser.error(f"--members must be comma-separated integers, got {args.members!r}")
  for name, low in (("feature_dim", 2), ("hidden_dim", 1), ("num_segments", 1),
                    ("batch_size", 1), ("steps", 1), ("warmup", 1)):
    if getattr(args, name) < low:
      parser.error(f"--{name} must be at least {low}, got {getattr(args, name)}")
  if min(args.members) < 1:
    parser.error(f"--members must be positive, got {args.members}")
  try:
    make_config(args, max(args.members))
  except config_lib.ConfigError as e:
    parser.error(str(e))
  return args


def main(argv=None) -> int:
  args = parse_args(argv)
  print(f"bench_members feature_dim={args.feature_dim} hidden_dim={args.hidden_dim} "
        f"segments={args.num_segments} batch={args.batch_size} classes={NUM_CLASSES} "
        f"devices={jax.local_device_count()} backend={jax.default_backend()} "
        f"dtype={args.dtype} steps={args.steps}", flush=True)
  first, model, method = first_member(args)
  for k in args.members:
    print(bench(args, k, first, model, method), flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
