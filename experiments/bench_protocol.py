"""Times the authors' full THUMOS14 protocol end to end on real-size synthetic data.

    python experiments/bench_protocol.py                      # the whole protocol
    python experiments/bench_protocol.py --fraction=0.02      # a part, extrapolated

The protocol of the released code (SPEC 2.10): 10,000 steps at batch 2 over the
200 training videos (random-perturb sampling to T = 750), and from the second epoch
on, every 10 steps, localization and evaluation of all 210 test videos, keeping the
best step by average mAP. The dataset copies THUMOS14's real videos, lengths and
instances from the public annotations (gt.json, true durations from
video_info.csv) with synthetic 2048-d features held in memory; batches are fed
from numpy (no TensorFlow needed).

The model runs on the accelerator; each evaluation's forward pass is dispatched
there at its step, and localization + evaluation (CPU work) run in a pool of
worker processes while training continues. The best step's params are kept as a
device copy until its score is known. Prints one line:

    protocol steps=N evals=E fraction=F devices=D backend=X dtype=T workers=W
      data_s=... first_epoch_s_per_step=... wall_s=... extrapolated_full_s=...
      best_step=... best_avg_map=... last_avg_map=...

wall_s is the measured time of the run (training + all evaluations, data
generation excluded); extrapolated_full_s scales the post-first-epoch part to the
full 9,900 steps and 990 evaluations (equal to wall_s when --fraction=1).
"""

from __future__ import annotations

import argparse
import collections
import concurrent.futures
import multiprocessing
import os
import queue
import sys
import threading
import time

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from salx.postprocess import ap  # noqa: E402
from salx.postprocess import ground_truth  # noqa: E402
from salx.postprocess import localization  # noqa: E402
from salx.core import sharding
from salx.core import variants  # noqa: E402
from salx.datasets import sampling, synthesis  # noqa: E402
from salx.core.model import build_model  # noqa: E402
from salx.core.train_step import create_train_state, make_eval_forward, make_train_step  # noqa: E402

FULL_STEPS, BATCH, EVAL_EVERY = 10_000, 2, 10

# ---------------------------------------------------------------------------
# Evaluation workers (CPU processes: localization + AP of one evaluation).

_WORKER = {}


def _worker_init(gt_json, class_names):
  _WORKER["gt"] = ground_truth.load_ground_truth(gt_json, "test")
  _WORKER["classes"] = class_names


def _worker_evaluate(step, outputs):
  localized = localization.localize(**outputs, variant=variants.THUMOS14,
                                    class_names=_WORKER["classes"])
  result = ap.evaluate_detections(_WORKER["gt"], localized.detections,
                                  variants.THUMOS14.tiou_thresholds)
  return step, float(result.average_mAP)


# ---------------------------------------------------------------------------
# Data.


def make_data(annotations, video_info, seed):
  """(train features list, test features [210, T, D], test lengths, test names,
  train labels [N, C], ground-truth JSON, class names)."""
  spec = synthesis.SyntheticSpec(seed=seed)
  plans, class_names = synthesis.plan_from_annotations(annotations, "thumos14",
                                                       video_info=video_info)
  records = list(synthesis.generate_records(plans, class_names, spec))
  train = [r for r, p in zip(records, plans) if p.split == "train"]
  test = [r for r, p in zip(records, plans) if p.split == "test"]
  t = variants.THUMOS14.num_segments
  test_features = np.stack([r.features[sampling.uniform_indices(r.num_snippets, t)]
                            for r in test])
  database = {}
  for r, p in zip(records, plans):
    if p.split == "test":
      database[r.name] = {"subset": "test", "annotations": [
          {"label": label, "segment": [float(s), float(e)]}
          for label, (s, e) in zip(r.segment_labels, r.segments)]}
  return (train, test_features, [r.num_snippets for r in test], [r.name for r in test],
          {"database": database}, class_names)


def train_batches(train, seed, start, stop):
  """Yields (step, {'features' [2, T, D], 'labels' [2, C]}): shuffled epochs,
  random-perturb sampling (SPEC 2.9), a pure function of (seed, step).

  The random streams are those of salx.datasets.input_pipeline (epoch order from
  [seed, 0, epoch], the sampling of position p of the epoch from [seed, 1, epoch, p]),
  so these are the trainer's batches, made without TensorFlow.
  """
  t = variants.THUMOS14.num_segments
  per_epoch = len(train) // BATCH
  for step in range(start, stop):
    epoch, slot = divmod(step, per_epoch)
    order = np.random.default_rng([seed, 0, epoch]).permutation(len(train))
    rows = order[slot * BATCH:(slot + 1) * BATCH]
    feats = [train[i].features[sampling.random_perturb_indices(
        train[i].num_snippets, t,
        np.random.default_rng([seed, 1, epoch, slot * BATCH + j]))]
             for j, i in enumerate(rows)]
    yield step, {"features": np.stack(feats),
                 "labels": np.stack([train[i].labels for i in rows])}


def prefetch(iterator, size=8):
  """Runs `iterator` in a thread, `size` items ahead."""
  q = queue.Queue(maxsize=size)
  done = object()

  def fill():
    for item in iterator:
      q.put(item)
    q.put(done)

  threading.Thread(target=fill, daemon=True).start()
  while (item := q.get()) is not done:
    yield item


# ---------------------------------------------------------------------------


def run(args):
  variant = variants.THUMOS14
  num_steps = max(1, int(round(args.fraction * FULL_STEPS)))
  start = time.perf_counter()
  train, test_x, test_lengths, test_names, gt_json, class_names = make_data(
      args.annotations, args.video_info, args.seed)
  data_s = time.perf_counter() - start
  per_epoch = len(train) // BATCH

  compute_dtype = {"float32": None, "bfloat16": jnp.bfloat16}[args.dtype]
  model = build_model(len(class_names), variant, dtype=compute_dtype)
  mesh = sharding.make_mesh()
  state = sharding.replicate(create_train_state(model, variant, jax.random.key(args.seed)),
                             mesh)
  step_fn = sharding.jit_train_step(make_train_step(model, variant), mesh)
  forward = sharding.jit_eval_forward(make_eval_forward(model), mesh)
  copy_params = jax.jit(lambda p: jax.tree_util.tree_map(jnp.copy, p))
  rng = jax.random.key(args.seed + 1)

  # The sampled test set lives on the device; forward in chunks of --eval_batch.
  num_devices = mesh.devices.size
  chunk = -(-args.eval_batch // num_devices) * num_devices
  padded = -(-len(test_x) // chunk) * chunk
  x = np.zeros((padded,) + test_x.shape[1:], np.float32)
  x[:len(test_x)] = test_x
  mask = np.zeros(x.shape[:2], np.float32)
  mask[:len(test_x)] = 1
  test_chunks = [sharding.global_batch({"x": x[i:i + chunk], "m": mask[i:i + chunk]},
                                       mesh) for i in range(0, padded, chunk)]

  def eval_outputs(params):
    return [forward(params, c["x"], c["m"]) for c in test_chunks]

  def host_outputs(chunks):
    cat = jax.tree_util.tree_map(lambda *a: np.concatenate([np.asarray(b) for b in a]),
                                 *chunks)
    n = len(test_names)
    return {"cas": cat.cas[:n], "action_flow": cat.action_flow[:n],
            "action_rgb": cat.action_rgb[:n], "video_logits": cat.video_logits[:n],
            "valid_lengths": None, "num_snippets": test_lengths, "video_names": test_names}

  # Warm up (compile) outside the timed region.
  warm_batch = next(train_batches(train, args.seed, 0, 1))[1]
  compiled_state = step_fn(jax.tree_util.tree_map(jnp.copy, state),
                           sharding.global_batch(warm_batch, mesh), rng)
  jax.block_until_ready(compiled_state)
  del compiled_state
  jax.block_until_ready(eval_outputs(state.params))

  pool = concurrent.futures.ProcessPoolExecutor(
      args.workers, mp_context=multiprocessing.get_context("spawn"),
      initializer=_worker_init, initargs=(gt_json, class_names))
  list(pool.map(_worker_evaluate, [0] * args.workers,
                [host_outputs(eval_outputs(state.params))] * args.workers))  # warm

  pending = collections.deque()      # (step, device outputs, params copy)
  futures, snapshots, scores = set(), {}, {}
  best, best_params = (-1.0, -1), None
  first_epoch_s = None

  def submit():
    step, outs, params = pending.popleft()
    snapshots[step] = params
    futures.add(pool.submit(_worker_evaluate, step, host_outputs(outs)))

  def collect(wait):
    nonlocal best, best_params
    if wait and futures:
      concurrent.futures.wait(futures, return_when=concurrent.futures.FIRST_COMPLETED)
    for future in [f for f in futures if f.done()]:
      futures.discard(future)
      step, score = future.result()
      scores[step] = score
      params = snapshots.pop(step)
      if score > best[0]:
        best, best_params = (score, step), params

  t0 = time.perf_counter()
  for step, batch in prefetch(train_batches(train, args.seed, 0, num_steps)):
    state, metrics = step_fn(state, sharding.global_batch(batch, mesh), rng)
    done = step + 1
    if done == per_epoch:
      jax.block_until_ready(state)
      first_epoch_s = time.perf_counter() - t0
    if done > per_epoch and done % EVAL_EVERY == 0:
      # Hand the previous evaluation (its forward long finished, the next steps
      # queued on the device) to a CPU worker, then dispatch this one's forward.
      while pending:
        while len(futures) >= args.workers:
          collect(wait=True)
        submit()
      pending.append((done, eval_outputs(state.params), copy_params(state.params)))
    collect(wait=False)
  while pending:
    submit()
  while futures:
    collect(wait=True)
  jax.block_until_ready((state, best_params))
  wall_s = time.perf_counter() - t0
  pool.shutdown()
  loss = float(metrics["loss"])
  if not np.isfinite(loss):
    raise RuntimeError(f"non-finite loss {loss}")

  evals = len(scores)
  if first_epoch_s is None:  # the run ended inside the first epoch
    first_epoch_s, per_epoch = wall_s, num_steps
  rest_steps = num_steps - per_epoch
  full_rest_steps = FULL_STEPS - per_epoch
  if rest_steps > 0:
    extrapolated = first_epoch_s + (wall_s - first_epoch_s) * full_rest_steps / rest_steps
  else:
    extrapolated = first_epoch_s / num_steps * FULL_STEPS  # no evaluation measured
  last = scores[max(scores)] if scores else float("nan")
  return (f"protocol steps={num_steps} evals={evals} fraction={args.fraction:g} "
          f"devices={num_devices} backend={jax.default_backend()} dtype={args.dtype} "
          f"workers={args.workers} data_s={data_s:.1f} "
          f"first_epoch_s_per_step={first_epoch_s / per_epoch:.4f} wall_s={wall_s:.1f} "
          f"extrapolated_full_s={extrapolated:.1f} best_step={best[1]} "
          f"best_avg_map={best[0]:.4f} last_avg_map={last:.4f}")


def main(argv=None):
  default_data = os.environ.get(
      "SALX_DATA_DIR", os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "..",
                                    "shared", "data"))
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--fraction", type=float, default=1.0,
                      help="run this fraction of the 10,000 steps and extrapolate")
  parser.add_argument("--annotations",
                      default=os.path.join(default_data, "thumos14", "gt.json"))
  parser.add_argument("--video_info",
                      default=os.path.join(default_data, "thumos14", "video_info.csv"))
  parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"])
  parser.add_argument("--workers", type=int,
                      default=max(1, min(8, (os.cpu_count() or 2) - 2)),
                      help="CPU processes for localization and evaluation")
  parser.add_argument("--eval_batch", type=int, default=35,
                      help="test videos per forward chunk")
  parser.add_argument("--seed", type=int, default=0)
  args = parser.parse_args(argv)
  for path in (args.annotations, args.video_info):
    if not os.path.exists(path):
      parser.error(f"{path} not found: pass --annotations/--video_info or set "
                   "SALX_DATA_DIR to the folder holding thumos14/gt.json")
  print(run(args), flush=True)


if __name__ == "__main__":
  main()
