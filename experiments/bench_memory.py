r"""Resident memory of a training run with `cache_data`, K = 1 against K = 4 members.

    python experiments/bench_memory.py                        # ~300 MB training split
    python experiments/bench_memory.py --num_train=40 --members=1,2

One synthetic dataset (the generator's defaults at 2048-d features, --num_train
training videos of 200 to 300 snippets, a few test videos) is made once into
--data_dir (default: a folder under ~/.cache/salx named by its arguments). Then
for each K of --members, a fresh Python process trains a tiny SAL model
(configs/tiny.py's widths: hidden 16, T 32) as K members, for one epoch of the training split at batch 8 plus one step, so that every
member has read (and a cache holds) every training video; the test split is
evaluated once, at the end. Each K runs twice, with `cache_data` on and off:
the difference of the two peak resident sets (getrusage ru_maxrss) is what the
cache holds. Prints one line for the split, then one per K:

    bench_memory train_split_mb=S videos=N snippets=L feature_dim=D data=DIR
    bench_memory members=K steps=S peak_rss_mb=P peak_rss_mb_without_cache=Q
      cache_rss_mb=P-Q splits_held=(P-Q)/S start_rss_mb=A end_rss_mb=E wall_s=W

(A: the resident set before training, imports and JAX started; E: at the end),
and a last line comparing the largest K with the smallest:

    bench_memory extra_peak_rss_mb(K=4-K=1)=X train_split_mb=S split_held=once|4 times

The members share one reader and one cache (`salx.app.data.training_batches`),
so the cache holds about one split for every K (splits_held near 1), and X is
the members' states, batches and compiled step, less than the split: 'once' when
the cache of the largest K is below the midpoint between one split and K splits.
"""

from __future__ import annotations

import argparse
import dataclasses
import hashlib
import json
import os
import resource
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

BATCH = 8


def rss_mb() -> float:
  """The current resident set of this process (VmRSS), in MiB."""
  with open("/proc/self/status", encoding="ascii") as f:
    for line in f:
      if line.startswith("VmRSS:"):
        return int(line.split()[1]) / 1024
  return float("nan")


def peak_rss_mb() -> float:
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def spec_of(args):
  from salx.datasets import synthetic  # pylint: disable=g-import-not-at-top
  return synthetic.SyntheticSpec(seed=0, num_classes=5, num_train=args.num_train,
                                 num_test=args.num_test, min_length=200, max_length=300,
                                 feature_dim=args.feature_dim)


def make_data(args) -> str:
  from salx.datasets import synthetic  # pylint: disable=g-import-not-at-top
  spec = spec_of(args)
  data_dir = args.data_dir
  if not data_dir:
    key = json.dumps(dataclasses.asdict(spec), sort_keys=True)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    data_dir = os.path.join(cache, "salx", "bench-memory-"
                            + hashlib.sha256(key.encode()).hexdigest()[:12])
  return synthetic.make_synthetic_dataset(data_dir, spec, "sal", progress=False)


def split_size(data_dir: str, feature_dim: int):
  """(bytes of the training split as float32 in memory, videos, snippets)."""
  from salx.datasets import layouts  # pylint: disable=g-import-not-at-top
  source = layouts.open_source(data_dir, "thumos14", "sal", feature_dim=feature_dim)
  names = source.video_names("train")
  snippets = sum(source.num_snippets("train", n) for n in names)
  return snippets * feature_dim * 4, len(names), snippets


def num_steps(num_train: int) -> int:
  """One epoch at batch 8 plus one step: every member reads every training video."""
  return -(-num_train // BATCH) + 1


def worker(args) -> int:
  """One run of K members; prints one JSON line of its memory."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from salx import cli  # pylint: disable=g-import-not-at-top
  cli.import_quietly("tensorflow")
  from salx.app import runtime  # pylint: disable=g-import-not-at-top
  from salx.app import trainer  # pylint: disable=g-import-not-at-top
  import configs.tiny  # pylint: disable=g-import-not-at-top
  flags.FLAGS.mark_as_parsed()
  logging.use_absl_handler()
  runtime.show_library_logs(False)
  jax.devices()   # Start the backend before the first reading.

  config = configs.tiny.get_config()
  steps = num_steps(args.num_train)
  config.update(dict(
      dataset="thumos14", data_dir=args.data_dir, layout="sal",
      feature_dim=args.feature_dim, cache_data=bool(args.cache), check_data="quick",
      batch_size=BATCH, eval_batch_size=4, num_seeds=args.worker, num_steps=steps,
      eval_untrained=False, eval_every=steps, eval_start_step=steps,
      checkpoint_every=steps, log_every=steps))
  start_rss = rss_mb()
  workdir = tempfile.mkdtemp(prefix="bench-memory-")
  t0 = time.perf_counter()
  with open(os.devnull, "w", encoding="utf-8") as null:
    stdout, sys.stdout = sys.stdout, null
    try:
      trainer.train_and_evaluate(config, workdir)
    finally:
      sys.stdout = stdout
  wall_s = time.perf_counter() - t0
  import shutil  # pylint: disable=g-import-not-at-top
  shutil.rmtree(workdir, ignore_errors=True)
  print(json.dumps({"members": args.worker, "steps": steps, "peak_rss_mb": peak_rss_mb(),
                    "start_rss_mb": start_rss, "end_rss_mb": rss_mb(),
                    "wall_s": wall_s}), flush=True)
  return 0


def run_members(args, data_dir: str, k: int, cache: bool) -> dict:
  """A fresh process training K members; its JSON line."""
  command = [sys.executable, os.path.abspath(__file__), f"--worker={k}",
             f"--cache={int(cache)}", f"--data_dir={data_dir}",
             f"--num_train={args.num_train}", f"--num_test={args.num_test}",
             f"--feature_dim={args.feature_dim}"]
  try:
    done = subprocess.run(command, capture_output=True, text=True, cwd=ROOT, check=False,
                          timeout=args.timeout)
  except subprocess.TimeoutExpired:
    raise SystemExit(f"bench_memory: the run of {k} member(s) (cache_data={cache}) took "
                     f"over {args.timeout} s") from None
  if done.returncode != 0:
    sys.stderr.write(done.stdout + done.stderr)
    raise SystemExit(f"bench_memory: the run of {k} member(s) (cache_data={cache}) "
                     f"failed (exit {done.returncode})")
  return json.loads(done.stdout.strip().splitlines()[-1])


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--members", default="1,4", help="comma-separated K values")
  parser.add_argument("--num_train", type=int, default=150,
                      help="training videos (150 x ~250 snippets x 2048-d: ~300 MB)")
  parser.add_argument("--num_test", type=int, default=4)
  parser.add_argument("--feature_dim", type=int, default=2048)
  parser.add_argument("--data_dir", default="",
                      help="the data folder (made there on first use)")
  parser.add_argument("--timeout", type=int, default=1200,
                      help="seconds one run may take")
  parser.add_argument("--worker", type=int, default=0, help=argparse.SUPPRESS)
  parser.add_argument("--cache", type=int, default=1, help=argparse.SUPPRESS)
  args = parser.parse_args(argv)
  if args.worker:
    return worker(args)
  members = [int(k) for k in args.members.split(",") if k]
  if not members or min(members) < 1:
    parser.error("--members: positive integers, e.g. 1,4")
  if args.num_train < BATCH:
    parser.error(f"--num_train must be at least the batch, {BATCH}")
  data_dir = make_data(args)
  size, videos, snippets = split_size(data_dir, args.feature_dim)
  split_mb = size / 2**20
  print(f"bench_memory train_split_mb={split_mb:.0f} videos={videos} snippets={snippets} "
        f"feature_dim={args.feature_dim} data={data_dir}", flush=True)
  cache_mb, peaks = {}, {}
  for k in members:
    r = run_members(args, data_dir, k, cache=True)
    bare = run_members(args, data_dir, k, cache=False)
    cache_mb[k] = r["peak_rss_mb"] - bare["peak_rss_mb"]
    print(f"bench_memory members={k} steps={r['steps']} peak_rss_mb={r['peak_rss_mb']:.0f} "
          f"peak_rss_mb_without_cache={bare['peak_rss_mb']:.0f} "
          f"cache_rss_mb={cache_mb[k]:.0f} splits_held={cache_mb[k] / split_mb:.2f} "
          f"start_rss_mb={r['start_rss_mb']:.0f} end_rss_mb={r['end_rss_mb']:.0f} "
          f"wall_s={r['wall_s']:.1f}", flush=True)
    peaks[k] = r["peak_rss_mb"]
  low, high = min(members), max(members)
  if high > low:
    # Held once: the cache adds one split for every K; held per member, K splits.
    # The midpoint tells them apart.
    held = "once" if cache_mb[high] < 0.5 * (1 + high) * split_mb else f"{high} times"
    print(f"bench_memory extra_peak_rss_mb(K={high}-K={low})={peaks[high] - peaks[low]:.0f} "
          f"train_split_mb={split_mb:.0f} split_held={held}", flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
