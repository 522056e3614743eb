"""Times the jitted SAL train step at the authors' sizes.

    python experiments/bench_train_step.py                     # all cases
    python experiments/bench_train_step.py --cases=thumos_b2 --dtype=bfloat16

One line per case:
    train_step config=C batch=B segments=T devices=N backend=X dtype=D impl=I
      ms_per_step=M ms_per_step_pipelined=M2 compile_s=S peak_mem_mb=P params_m=Q

impl=fused is salx's step (convolutions as one GEMM each, FC1's gradient fused
into the optimizer update); --compare_plain adds impl=plain (library convolutions,
a matrix-product FC1 gradient) measured in the same run.

ms_per_step is the median of single steps each ended by block_until_ready;
ms_per_step_pipelined the median over chunks of 10 steps dispatched back to back
(one block_until_ready per chunk), the rate a training loop runs at.

Cases: thumos B=2 and B=16 (T = 750, H = 512, D = 2048, C = 20: the full 146M-parameter
model) and activitynet B=32 (T = 50, C = 100). The step is the real one (losses,
pseudo labels, mask statistics, Adam with coupled weight decay), jitted over a mesh
of all local devices with the state donated; timing is the median over --steps
calls after --warmup calls, each ended by block_until_ready. ms_per_step is the
median; compile_s the first call. peak_mem_mb is the device's peak bytes in use
where the backend reports it, else the process's peak RSS.

--method=co2net|delu times that method's step instead (default sal: the cases
above). Its cases, at the authors' script sizes: co2net_b10 (batch 10, T = 500)
and delu_b10 (batch 10, T = 320), D = 2048, C = 20, attention width --hidden
(512; 2M = D wide, 30M parameters at D = 2048), the batch's first six videos three
same-class pairs as their sampler makes them; the line reads
`train_step method=M config=C batch=B segments=T ...` with the same fields.
On a 2-core CPU: --feature_dim=512 --hidden=128 --steps=5 --warmup=1.

Imports only jax, flax, optax, numpy and salx's numerical core, so it runs on a bare
GPU machine with JAX (no TensorFlow, TFDS, ml_collections or clu).
"""

from __future__ import annotations

import argparse
import os
import resource
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from salx.core import sharding  # noqa: E402
from salx.methods.sal import hparams as sal_hparams  # noqa: E402
from salx.methods.sal.method import SAL_METHOD  # noqa: E402
from salx.methods.sal.model import build_model  # noqa: E402
from salx.core.train_step import (create_train_state, make_optimizer,  # noqa: E402
                                  make_train_step)

CASES = {
    # name: (variant, batch, segments, classes)
    "thumos_b2": (sal_hparams.THUMOS14, 2, 750, 20),
    "thumos_b16": (sal_hparams.THUMOS14, 16, 750, 20),
    "activitynet_b32": (sal_hparams.ACTIVITYNET, 32, 50, 100),
}

# --method=co2net|delu: name -> (method, preset, batch, segments, classes).
METHOD_CASES = {
    "co2net": {"co2net_b10": ("co2net", "thumos14", 10, 500, 20)},
    "delu": {"delu_b10": ("delu", "thumos14", 10, 320, 20)},
}


def peak_memory_mb() -> float:
  stats = jax.local_devices()[0].memory_stats() or {}
  if "peak_bytes_in_use" in stats:
    return stats["peak_bytes_in_use"] / 2**20
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def make_batch(batch: int, segments: int, classes: int, feature_dim: int, seed: int):
  rng = np.random.default_rng(seed)
  labels = np.zeros((batch, classes), np.float32)
  labels[np.arange(batch), rng.integers(0, classes, batch)] = 1
  features = rng.normal(size=(batch, segments, feature_dim)).astype(np.float32)
  return {"features": features, "labels": labels}


def time_steps(step, state, device_batch, rng, hp, warmup: int, steps: int):
  """(state, metrics, compile s, per-step s with a sync each, per-step s of chunks of
  10 dispatched back to back as the training loop does) of a jitted step."""
  start = time.perf_counter()
  state, metrics = step(state, device_batch, rng, hp)
  jax.block_until_ready((state, metrics))
  compile_s = time.perf_counter() - start
  for _ in range(warmup):
    state, metrics = step(state, device_batch, rng, hp)
  jax.block_until_ready((state, metrics))
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    state, metrics = step(state, device_batch, rng, hp)
    jax.block_until_ready((state, metrics))
    times.append(time.perf_counter() - start)
  # Steady-state training throughput: one block_until_ready per chunk of 10.
  chunks = []
  for _ in range(max(1, steps // 10)):
    start = time.perf_counter()
    for _ in range(10):
      state, metrics = step(state, device_batch, rng, hp)
    jax.block_until_ready((state, metrics))
    chunks.append((time.perf_counter() - start) / 10)
  return state, metrics, compile_s, times, chunks


def bench_case(name: str, dtype: str, steps: int, warmup: int, hidden: int,
               feature_dim: int, profile_dir: str = "", plain: bool = False) -> str:
  variant, batch, segments, classes = CASES[name]
  hp = variant.replace(hidden_dim=hidden, num_segments=segments)
  compute_dtype = {"float32": None, "bfloat16": jnp.bfloat16}[dtype]
  model = build_model(classes, hp, feature_dim=feature_dim,
                      dtype=compute_dtype).clone(conv_as_matmul=not plain,
                                                 fc1_outer_grad=not plain)
  mesh = sharding.make_mesh()
  state = create_train_state(SAL_METHOD, model, hp, jax.random.key(0),
                             input_shape=(2, segments, feature_dim))
  num_params = sum(p.size for p in jax.tree_util.tree_leaves(state.params))
  state = sharding.replicate(state, mesh)
  step = sharding.jit_train_step(
      make_train_step(SAL_METHOD, model), mesh)
  host = make_batch(batch, segments, classes, feature_dim, seed=0)
  device_batch = sharding.global_batch(host, mesh)
  rng = jax.random.key(1)

  state, metrics, compile_s, times, chunks = time_steps(step, state, device_batch, rng, hp,
                                                       warmup, steps)
  if profile_dir:
    with jax.profiler.trace(os.path.join(profile_dir, f"{name}_{dtype}")):
      for _ in range(5):
        state, metrics = step(state, device_batch, rng, hp)
      jax.block_until_ready((state, metrics))
    with open(os.path.join(profile_dir, f"{name}_{dtype}.hlo.txt"), "w") as f:
      f.write(step.lower(state, device_batch, rng).compile().as_text())
  loss = float(metrics["loss"])
  if not np.isfinite(loss):
    raise RuntimeError(f"{name}: non-finite loss {loss}")
  return (f"train_step config={variant.name} batch={batch} segments={segments} "
          f"devices={mesh.devices.size} backend={jax.default_backend()} dtype={dtype} "
          f"impl={'plain' if plain else 'fused'} "
          f"ms_per_step={1e3 * float(np.median(times)):.3f} "
          f"ms_per_step_pipelined={1e3 * float(np.median(chunks)):.3f} compile_s={compile_s:.2f} "
          f"peak_mem_mb={peak_memory_mb():.0f} params_m={num_params / 1e6:.1f}")


def make_pair_batch(batch: int, segments: int, classes: int, feature_dim: int,
                    seed: int, num_similar: int):
  """make_batch with CO2-Net's layout: videos 2i and 2i + 1 (i < num_similar) share
  their class."""
  host = make_batch(batch, segments, classes, feature_dim, seed)
  for i in range(min(num_similar, batch // 2)):
    host["labels"][2 * i + 1] = host["labels"][2 * i]
  return host


def bench_method_case(name: str, dtype: str, steps: int, warmup: int, hidden: int,
                      feature_dim: int) -> str:
  """The step of CO2-Net or DELU (--method) at a case of METHOD_CASES."""
  from salx.methods import registry  # pylint: disable=import-outside-toplevel
  method_name, preset, batch, segments, classes = next(
      c for cases in METHOD_CASES.values() for n, c in cases.items() if n == name)
  method = registry.get_method(method_name)
  hp = method.presets[preset].replace(attention_hidden=hidden, max_seqlen=segments)
  compute_dtype = {"float32": None, "bfloat16": jnp.bfloat16}[dtype]
  model = method.build_model(hp, num_classes=classes, feature_dim=feature_dim,
                             dtype=compute_dtype)
  mesh = sharding.make_mesh()
  state = create_train_state(method, model, hp, jax.random.key(0),
                             input_shape=(2, segments, feature_dim))
  num_params = sum(p.size for p in jax.tree_util.tree_leaves(state.params))
  state = sharding.replicate(state, mesh)
  step = sharding.jit_train_step(
      make_train_step(method, model), mesh)
  host = make_pair_batch(batch, segments, classes, feature_dim, seed=0,
                         num_similar=hp.num_similar)
  device_batch = sharding.global_batch(host, mesh)
  rng = jax.random.key(1)
  state, metrics, compile_s, times, chunks = time_steps(step, state, device_batch, rng, hp,
                                                       warmup, steps)
  loss = float(metrics["loss"])
  if not np.isfinite(loss):
    raise RuntimeError(f"{name}: non-finite loss {loss}")
  return (f"train_step method={method_name} config={name} batch={batch} "
          f"segments={segments} feature_dim={feature_dim} hidden={hidden} "
          f"devices={mesh.devices.size} backend={jax.default_backend()} dtype={dtype} "
          f"ms_per_step={1e3 * float(np.median(times)):.3f} "
          f"ms_per_step_pipelined={1e3 * float(np.median(chunks)):.3f} "
          f"compile_s={compile_s:.2f} peak_mem_mb={peak_memory_mb():.0f} "
          f"params_m={num_params / 1e6:.1f}")


def bench_adam_floor(steps: int, warmup: int, hidden: int, feature_dim: int) -> str:
  """Adam with coupled weight decay alone over the full model's params: the floor."""
  hp = sal_hparams.THUMOS14.replace(hidden_dim=hidden)
  model = build_model(20, hp, feature_dim=feature_dim)
  state = create_train_state(SAL_METHOD, model, hp, jax.random.key(0),
                             input_shape=(2, 750, feature_dim))
  grads = jax.tree_util.tree_map(lambda p: jnp.full_like(p, 1e-3), state.params)
  tx = make_optimizer()

  def update(params, opt_state, grads):
    updates, opt_state = tx.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state

  update = jax.jit(update, donate_argnums=(0, 1))
  params, opt_state = state.params, state.opt_state
  for _ in range(1 + warmup):
    params, opt_state = update(params, opt_state, grads)
  jax.block_until_ready(params)
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    params, opt_state = update(params, opt_state, grads)
    jax.block_until_ready(params)
    times.append(time.perf_counter() - start)
  num_params = sum(p.size for p in jax.tree_util.tree_leaves(params))
  return (f"adam_floor params_m={num_params / 1e6:.1f} backend={jax.default_backend()} "
          f"ms_per_update={1e3 * float(np.median(times)):.3f}")


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--cases", default=",".join(CASES),
                      help=f"comma-separated subset of {sorted(CASES)}")
  parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                      help="compute dtype (params and optimizer state stay float32)")
  parser.add_argument("--steps", type=int, default=50, help="timed steps per case")
  parser.add_argument("--warmup", type=int, default=5)
  parser.add_argument("--hidden", type=int, default=512)
  parser.add_argument("--feature_dim", type=int, default=2048)
  parser.add_argument("--profile_dir", default="",
                      help="also write a jax.profiler trace of 5 steps and the optimized HLO")
  parser.add_argument("--compare_plain", action="store_true",
                      help="also time each case with library convolutions and a "
                      "matrix-product FC1 gradient (impl=plain), side by side")
  parser.add_argument("--adam_floor", action="store_true",
                      help="also time the optimizer update alone (the float32 floor)")
  parser.add_argument("--method", default="sal", choices=["sal", "co2net", "delu"],
                      help="whose step to time (co2net/delu: their METHOD_CASES)")
  args = parser.parse_args(argv)
  if args.method != "sal":
    cases = METHOD_CASES[args.method]
    names = list(cases) if args.cases == ",".join(CASES) else args.cases.split(",")
    for name in names:
      if name not in cases:
        parser.error(f"unknown case {name!r} for --method={args.method}; choose from "
                     f"{sorted(cases)}")
      print(bench_method_case(name, args.dtype, args.steps, args.warmup, args.hidden,
                              args.feature_dim), flush=True)
    return
  if args.adam_floor:
    print(bench_adam_floor(args.steps, args.warmup, args.hidden, args.feature_dim),
          flush=True)
  for name in args.cases.split(","):
    if name not in CASES:
      parser.error(f"unknown case {name!r}; choose from {sorted(CASES)}")
    impls = (False, True) if args.compare_plain else (False,)
    for plain in impls:
      print(bench_case(name, args.dtype, args.steps, args.warmup, args.hidden,
                       args.feature_dim, args.profile_dir, plain), flush=True)


if __name__ == "__main__":
  main()
