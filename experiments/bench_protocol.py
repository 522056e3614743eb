"""Times the trainer on the authors' full THUMOS14 protocol, on real-size synthetic data.

    python experiments/bench_protocol.py                          # the whole protocol
    python experiments/bench_protocol.py --fraction=0.02          # a part, extrapolated
    python experiments/bench_protocol.py --num_seeds=4 --eval_workers=8

The run is `salx.app.trainer.train_and_evaluate` (what `python -m salx.main` runs)
with configs/thumos.py: 10,000 steps at batch 2 over the 200 training videos
(random-perturb sampling to T = 750), the test split (210 videos) evaluated every
10 steps from the end of the first epoch (step 100) and at the last step, the
untrained members evaluated first, checkpoints every 500 steps, K members with
--num_seeds. The data folder copies THUMOS14's videos, lengths and instances from
the public annotations (gt.json, true durations from video_info.csv beside it) with
synthetic 2048-d features; without annotations (--annotations=) it holds
--num_train / --num_test synthetic videos of 30 to 1,500 snippets. It is made once
into --data_dir (default: a folder under ~/.cache/salx named by its arguments).

Prints the trainer's own output, then one line:

    protocol steps=N evals=E members=K fraction=F devices=D backend=X dtype=T
      eval_workers=W data_s=... setup_s=... step_s=... eval_s=... saves_s=...
      wall_s=... full_evals=... extrapolated_full_s=... last_avg_map=...
      best_avg_map=...

wall_s is the time of the train_and_evaluate call (data generation, data_s,
excluded); setup_s its part before the first step (data check, init, untrained
evaluation), the first step compiling. The trainer's evaluations
(Evaluator.submit: the members' forward, then their scoring in this process or
its hand-off to the workers) and checkpoint calls are timed from outside:
eval_s is the mean time of an evaluation in the loop, saves_s the total of the
checkpoint calls, and step_s the rest of the loop per step after the first.
extrapolated_full_s adds the steps, evaluations (full_evals of the 10,000-step
schedule, the untrained one included) and scheduled checkpoints that the run left
out to wall_s (equal to it when --fraction=1); the saves of a new best step are
not extrapolated (their number depends on the scores). last_avg_map and
best_avg_map are the members' mean average mAP(0.1:0.7) at the last and the best
step.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import hashlib
import json
import os
import shutil
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

FULL_STEPS = 10_000
# The synthetic videos' length range (snippets) without annotations: log-uniform,
# 370 on average, as THUMOS14's 333.
SYNTHETIC_LENGTHS = (30, 1500)


def default_annotations() -> str:
  """thumos14/gt.json under $SALX_DATA_DIR or shared/data beside a folder above the
  repository; '' when there is none."""
  roots = [os.environ["SALX_DATA_DIR"]] if os.environ.get("SALX_DATA_DIR") else []
  parent = ROOT
  while os.path.dirname(parent) != parent:
    parent = os.path.dirname(parent)
    roots.append(os.path.join(parent, "shared", "data"))
  for root in roots:
    path = os.path.join(root, "thumos14", "gt.json")
    if os.path.isfile(path):
      return path
  return ""


def make_data(args) -> str:
  """The data folder of the run (made once; a folder made with the same arguments
  is reused)."""
  from salx.datasets import synthetic  # pylint: disable=g-import-not-at-top
  low, high = SYNTHETIC_LENGTHS
  spec = synthetic.SyntheticSpec(seed=args.seed, num_classes=20, num_train=args.num_train,
                                 num_test=args.num_test, min_length=low, max_length=high,
                                 feature_dim=args.feature_dim)
  video_info = None
  if args.annotations:
    candidate = os.path.join(os.path.dirname(args.annotations), "video_info.csv")
    video_info = candidate if os.path.isfile(candidate) else None
  data_dir = args.data_dir
  if not data_dir:
    key = json.dumps([dataclasses.asdict(spec), os.path.abspath(args.annotations or "."),
                      video_info, args.max_snippets], sort_keys=True)
    cache = os.environ.get("XDG_CACHE_HOME") or os.path.expanduser("~/.cache")
    data_dir = os.path.join(cache, "salx", "bench-protocol-"
                            + hashlib.sha256(key.encode()).hexdigest()[:12])
  return synthetic.make_synthetic_dataset(
      data_dir, spec, "sal", args.annotations or None, dataset="thumos14",
      video_info=video_info, max_snippets=args.max_snippets if args.annotations else None)


def make_config(args, data_dir: str, num_steps: int):
  """configs/thumos.py at the flags' sizes, its first evaluation after one epoch."""
  import configs.thumos  # pylint: disable=g-import-not-at-top
  from salx.datasets import layouts  # pylint: disable=g-import-not-at-top
  config = configs.thumos.get_config()
  num_train = len(layouts.open_source(data_dir, "thumos14", "sal",
                                      feature_dim=args.feature_dim).video_names("train"))
  config.update(dict(
      data_dir=data_dir, layout="sal", feature_dim=args.feature_dim, num_steps=num_steps,
      num_seeds=args.num_seeds, eval_workers=args.eval_workers,
      compute_dtype=args.dtype, seed=args.seed,
      eval_start_step=max(1, num_train // config.batch_size)))
  config.sal.update(hidden_dim=args.hidden_dim, num_segments=args.num_segments)
  return config


def evaluation_steps(config, num_steps: int) -> int:
  """Evaluations of a run of `num_steps`, the untrained one included (the trainer's
  schedule)."""
  return int(config.eval_untrained) + sum(
      1 for s in range(1, num_steps + 1)
      if s == num_steps or (s >= config.eval_start_step and s % config.eval_every == 0))


def checkpoint_steps(config, num_steps: int) -> int:
  """Scheduled saves of the latest state in a run of `num_steps`."""
  return num_steps // config.checkpoint_every + int(num_steps % config.checkpoint_every > 0)


class Clock:
  """(start, end) times of the trainer's calls, by kind."""

  def __init__(self):
    self.calls = {"first_step": [], "evaluation": [], "save": [],
                  "latest": []}

  def total(self, kind: str, after: float = 0.0) -> float:
    return sum(end - start for start, end in self.calls[kind] if start >= after)

  def count(self, kind: str, after: float = 0.0) -> int:
    return sum(1 for start, _ in self.calls[kind] if start >= after)

  def timed(self, kinds, fn, block=False):
    def wrapper(*args, **kwargs):
      start = time.perf_counter()
      out = fn(*args, **kwargs)
      if block:
        import jax  # pylint: disable=g-import-not-at-top
        out = jax.block_until_ready(out)
      for kind in kinds:
        self.calls[kind].append((start, time.perf_counter()))
      return out
    return wrapper


@contextlib.contextmanager
def clocked(clock: Clock):
  """Times the trainer's evaluations, checkpoint calls and first (compiling) step,
  which is run to completion; every call does what it did."""
  from salx.app import checkpoints as checkpoints_lib  # pylint: disable=g-import-not-at-top
  from salx.app import evaluation  # pylint: disable=g-import-not-at-top
  from salx.core import sharding  # pylint: disable=g-import-not-at-top
  jit_step = sharding.jit_members_step

  def jit_members_step(*args, **kwargs):
    step = jit_step(*args, **kwargs)
    first = clock.timed(["first_step"], step, block=True)
    return lambda *a: (first if not clock.calls["first_step"] else step)(*a)

  patches = [(sharding, "jit_members_step", jit_members_step),
             (evaluation.Evaluator, "submit", clock.timed(
                 ["evaluation"], evaluation.Evaluator.submit))]
  patches += [(checkpoints_lib.RunCheckpoints, name, clock.timed(
      ["save", "latest"] if name == "save_latest" else ["save"],
      getattr(checkpoints_lib.RunCheckpoints, name)))
              for name in ("save_latest", "save_best", "close")]
  saved = [(owner, name, getattr(owner, name)) for owner, name, _ in patches]
  try:
    for owner, name, value in patches:
      setattr(owner, name, value)
    yield clock
  finally:
    for owner, name, value in saved:
      setattr(owner, name, value)


def run(args) -> str:
  """Makes the data, trains and evaluates, and returns the result line."""
  from absl import flags  # pylint: disable=g-import-not-at-top
  from absl import logging  # pylint: disable=g-import-not-at-top
  import jax  # pylint: disable=g-import-not-at-top
  from salx import cli  # pylint: disable=g-import-not-at-top
  cli.import_quietly("tensorflow")   # The data feed's; muted start-up lines.
  from salx.app import runtime  # pylint: disable=g-import-not-at-top
  from salx.app import trainer  # pylint: disable=g-import-not-at-top
  # As `python -m salx.main`: the console shows warnings, workdir/log.txt everything.
  flags.FLAGS.mark_as_parsed()
  logging.use_absl_handler()
  runtime.show_library_logs(False)

  num_steps = int(round(args.fraction * FULL_STEPS))
  start = time.perf_counter()
  data_dir = make_data(args)
  data_s = time.perf_counter() - start
  config = make_config(args, data_dir, num_steps)
  workdir = args.workdir or tempfile.mkdtemp(prefix="bench-protocol-")
  clock = Clock()
  try:
    with clocked(clock):
      t0 = time.perf_counter()
      result = trainer.train_and_evaluate(config, workdir)
      wall_s = time.perf_counter() - t0
  finally:
    if not args.workdir:
      shutil.rmtree(workdir, ignore_errors=True)

  (step_start, step_end), = clock.calls["first_step"]
  loop_s = t0 + wall_s - step_end
  evals, loop_evals = clock.count("evaluation"), clock.count("evaluation", step_end)
  # An evaluation: the members' forward, then the scoring (in this process, or handed
  # to the workers, with eval_workers > 0).
  loop_eval_s = clock.total("evaluation", step_end)
  eval_s = loop_eval_s / loop_evals
  saves_s = clock.total("save", step_end)
  step_s = (loop_s - loop_eval_s - saves_s) / (num_steps - 1)
  latest = clock.calls["latest"]
  save_s = clock.total("latest") / len(latest) if latest else 0.0
  full_evals = evaluation_steps(config, FULL_STEPS)
  extrapolated = (wall_s + step_s * (FULL_STEPS - num_steps)
                  + eval_s * (full_evals - evals)
                  + save_s * (checkpoint_steps(config, FULL_STEPS) - len(latest)))
  summary = result.metrics["summary"]
  return (f"protocol steps={num_steps} evals={evals} members={args.num_seeds} "
          f"fraction={args.fraction:g} devices={jax.device_count()} "
          f"backend={jax.default_backend()} dtype={args.dtype} "
          f"eval_workers={args.eval_workers} data_s={data_s:.1f} "
          f"setup_s={step_start - t0:.1f} step_s={step_s:.4f} eval_s={eval_s:.3f} "
          f"saves_s={saves_s:.1f} wall_s={wall_s:.1f} full_evals={full_evals} "
          f"extrapolated_full_s={extrapolated:.1f} "
          f"last_avg_map={summary['last']['average_mAP']['mean']:.4f} "
          f"best_avg_map={summary['best']['average_mAP']['mean']:.4f}")


def parse_args(argv=None) -> argparse.Namespace:
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--fraction", type=float, default=1.0,
                      help="run this fraction of the 10,000 steps and extrapolate")
  parser.add_argument("--num_seeds", type=int, default=1, help="members trained at once")
  parser.add_argument("--eval_workers", type=int, default=0,
                      help="config.eval_workers: CPU processes for localization and AP "
                      "(0: in the trainer's process)")
  parser.add_argument("--dtype", default="float32", choices=["float32", "bfloat16"],
                      help="config.compute_dtype")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--annotations", default=default_annotations(),
                      help="THUMOS14 gt.json whose videos to copy ('': synthetic videos)")
  parser.add_argument("--max_snippets", type=int, default=None,
                      help="crop copied videos to this many snippets")
  parser.add_argument("--num_train", type=int, default=200,
                      help="training videos without annotations")
  parser.add_argument("--num_test", type=int, default=210,
                      help="test videos without annotations")
  parser.add_argument("--feature_dim", type=int, default=2048)
  parser.add_argument("--hidden_dim", type=int, default=512)
  parser.add_argument("--num_segments", type=int, default=750)
  parser.add_argument("--data_dir", default="",
                      help="the data folder (made there on first use)")
  parser.add_argument("--workdir", default="",
                      help="keep the run here (default: a temporary folder, removed)")
  args = parser.parse_args(argv)
  num_steps = int(round(args.fraction * FULL_STEPS))
  if not 2 <= num_steps <= FULL_STEPS:
    parser.error(f"--fraction={args.fraction:g} gives {num_steps} steps; it must give "
                 f"2 to {FULL_STEPS}")
  if args.annotations and not os.path.isfile(args.annotations):
    parser.error(f"--annotations: {args.annotations} not found")
  for name in ("num_seeds", "num_train", "num_test", "feature_dim", "hidden_dim",
               "num_segments"):
    if getattr(args, name) < 1:
      parser.error(f"--{name} must be positive, got {getattr(args, name)}")
  return args


def main(argv=None) -> int:
  args = parse_args(argv)
  from salx.app import runtime  # pylint: disable=g-import-not-at-top
  try:
    line = run(args)
  except Exception as e:  # pylint: disable=broad-except
    if not runtime.is_known(e):
      raise
    code, text = runtime.describe(e)
    print(f"bench_protocol: {text}", file=sys.stderr, flush=True)
    return code
  print(line, flush=True)
  return 0


if __name__ == "__main__":
  sys.exit(main())
