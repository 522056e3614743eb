r"""Chaos drill: SIGKILL a tiny training run at random moments, resume, compare.

    python experiments/chaos_resume.py --kills=10 --seed=0

Trains configs/tiny.py (30 steps, evaluations and checkpoints every 10) with
`python -m salx.main`:
  1. twice uninterrupted: a warm-up (it generates the data and fills a JAX
     compilation cache in the drill's folder) and the reference, timed from each
     of its progress lines (clu's, every 5 steps) to its metrics.json;
  2. N times the same command in the drill's workdir, SIGKILLed after a delay
     drawn from a seeded rng and counted from this start's first progress line
     (the imports, the untrained evaluation or the restore before it take most of
     a tiny run and are not what the drill is about): uniform over the time the
     reference took from its progress line of that step (the step of the
     workdir's newest checkpoint + 5) to its metrics.json. A kill lands when the
     process still runs; a start that finishes first must exit 0. Once the
     workdir's newest checkpoint is the last step, the run is finished with one
     more start and compared, and the next kills go to a fresh workdir;
  3. one more start in the last workdir, to the end.

Every finished workdir's metrics.json (untrained, last, best records) must equal
the reference's. Prints one line:

    chaos_resume: metrics.json equal to the uninterrupted run's (untrained, last,
      best): yes in R/R workdirs; kills landed K/N (W during a checkpoint
      write, S in steps, evaluations or the report); starts; wall

where a kill counts as during a checkpoint write when an Orbax temporary folder
is in the workdir at that moment. Measured with --kills=10 --seed=0 on 2 shared
CPU cores: equal, yes in 2/2 workdirs; kills landed 10/10 (2 during a checkpoint
write, 8 in steps, evaluations or the report); 14 starts; wall 198 s. Exits 1 when metrics differ, 2 when a start
fails; each kill is logged to stderr as it happens.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)

import configs.tiny  # noqa: E402
from salx.app import checkpoints as checkpoints_lib  # noqa: E402

PROGRESS = "Setting work unit notes"    # clu's progress line, every 5 steps.
RECORDS = ("untrained", "last", "best")
NUM_STEPS, LOG_EVERY = configs.tiny.RUN["num_steps"], configs.tiny.RUN["log_every"]
PLACES = ("during a checkpoint write", "in steps, evaluations or the report")


def cli_args(workdir: str, data_dir: str) -> list:
  """`python -m salx.main` on configs/tiny.py with its data in `data_dir`."""
  return [sys.executable, "-m", "salx.main", "--config=configs/tiny.py",
          f"--workdir={workdir}", f"--config.data_dir={data_dir}"]


class _Runs:
  """Starts of `python -m salx.main` on the tiny config; logs in `folder`."""

  def __init__(self, folder: str):
    self.folder, self.count, self.live = folder, 0, None
    self.data_dir = os.path.join(folder, "data")
    self.env = dict(os.environ, PYTHONPATH=ROOT,
                    JAX_COMPILATION_CACHE_DIR=os.path.join(folder, "jax_cache"),
                    JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5")

  def start(self, workdir: str) -> None:
    self.count += 1
    self.err = os.path.join(self.folder, f"start_{self.count}.err")
    with open(os.path.join(self.folder, f"start_{self.count}.out"), "w") as out, \
         open(self.err, "w") as err:
      # --verbosity=1: the whole log on stderr, clu's progress lines included.
      self.live = subprocess.Popen(cli_args(workdir, self.data_dir) + ["--verbosity=1"],
                                   cwd=ROOT,
                                   env=self.env, stdout=out, stderr=err)

  def log(self) -> str:
    with open(self.err, encoding="utf-8", errors="replace") as f:
      return f.read()

  def wait_for(self, done, what: str, timeout: float = 600.0) -> bool:
    """Polls until done(log) is true (True) or the start ends (done(log) then)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
      if done(self.log()):
        return True
      if self.live.poll() is not None:
        return done(self.log())
      time.sleep(0.02)
    raise TimeoutError(f"no {what} in {timeout:.0f} s (log: {self.err})")

  def progressed(self) -> bool:
    """Waits for the start's first progress line (False: it ended first)."""
    return self.wait_for(lambda log: PROGRESS in log, "progress line")

  def finish(self) -> None:
    """Waits for the start to end; exits 2 unless it exited 0."""
    if self.live.wait() != 0:
      print(f"chaos_resume: start {self.count} exited {self.live.returncode}; the "
            f"end of its log ({self.err}):\n{self.log()[-3000:]}", file=sys.stderr)
      raise SystemExit(2)

  def kill(self) -> None:
    self.live.send_signal(signal.SIGKILL)
    self.live.wait()


def _writing(workdir: str) -> bool:
  """Whether a checkpoint write is in flight (an Orbax temporary folder exists)."""
  for sub in (checkpoints_lib.LATEST_DIR, checkpoints_lib.BEST_DIR):
    folder = os.path.join(workdir, sub)
    if os.path.isdir(folder) and any(checkpoints_lib.TMP_SUFFIX in n
                                     for n in os.listdir(folder)):
      return True
  return False


def _newest(workdir: str) -> int:
  folder = os.path.join(workdir, checkpoints_lib.LATEST_DIR)
  names = os.listdir(folder) if os.path.isdir(folder) else []
  return max((int(n) for n in names if n.isdigit()), default=0)


def _records(workdir: str):
  with open(os.path.join(workdir, "metrics.json"), encoding="utf-8") as f:
    metrics = json.load(f)
  return {k: metrics.get(k) for k in RECORDS}


def drill(kills: int, seed: int, folder: str) -> int:
  runs = _Runs(folder)
  try:
    return _drill(runs, kills, random.Random(seed), folder)
  finally:
    if runs.live is not None and runs.live.poll() is None:
      runs.kill()   # Interrupted: no run outlives the drill.


def _drill(runs: _Runs, kills: int, rng: random.Random, folder: str) -> int:
  started = time.monotonic()
  runs.start(os.path.join(folder, "warmup"))
  runs.finish()
  reference = os.path.join(folder, "reference")
  runs.start(reference)
  report, progress_at = os.path.join(reference, "metrics.json"), {}

  def note(log):   # When each progress line (step k) and the report appeared.
    for k in re.findall(rf"{PROGRESS}: .*?\((\d+)/{NUM_STEPS}\)", log):
      progress_at.setdefault(int(k), time.monotonic())
    return os.path.exists(report)

  runs.wait_for(note, "metrics.json")
  report_at = time.monotonic()
  runs.finish()
  expected = _records(reference)
  # What a start resumed from step s has left after its first progress line.
  left_s = {k - LOG_EVERY: report_at - t for k, t in progress_at.items()}
  print("reference run: metrics.json "
        f"{', '.join(f'{t:.2f}' for t in left_s.values())} s after the progress "
        f"lines of steps {', '.join(str(k) for k in progress_at)}", file=sys.stderr)

  places = dict.fromkeys(PLACES, 0)
  finished = []   # [metrics equal to the reference's] per finished workdir.
  workdir = os.path.join(folder, "chaos_1")
  for attempt in range(1, kills + 1):
    if _newest(workdir) == NUM_STEPS:   # Nothing left to train: finish, compare.
      runs.start(workdir)
      runs.finish()
      finished.append(_records(workdir) == expected)
      workdir = os.path.join(folder, f"chaos_{len(finished) + 1}")
    delay = rng.uniform(0.0, left_s[_newest(workdir)])
    runs.start(workdir)
    if runs.progressed():
      time.sleep(delay)
    if runs.live.poll() is not None:
      runs.finish()
      print(f"kill {attempt}: the start finished within {delay:.2f} s",
            file=sys.stderr)
      continue
    place = PLACES[0] if _writing(workdir) else PLACES[1]
    runs.kill()
    places[place] += 1
    print(f"kill {attempt}: {delay:.2f} s after the progress line, {place}; newest "
          f"checkpoint of {os.path.basename(workdir)}: step {_newest(workdir)}",
          file=sys.stderr)
  runs.start(workdir)
  runs.finish()
  finished.append(_records(workdir) == expected)

  equal = all(finished)
  counts = ", ".join(f"{n} {place}" for place, n in places.items())
  print(f"chaos_resume: metrics.json equal to the uninterrupted run's "
        f"({', '.join(RECORDS)}): {'yes' if equal else 'NO'} in "
        f"{sum(finished)}/{len(finished)} workdirs; kills landed "
        f"{sum(places.values())}/{kills} ({counts}); {runs.count} starts; wall "
        f"{time.monotonic() - started:.0f} s", flush=True)
  return 0 if equal else 1


def main() -> int:
  parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  parser.add_argument("--kills", type=int, default=10, help="SIGKILLs to try")
  parser.add_argument("--seed", type=int, default=0, help="seed of the kill delays")
  parser.add_argument("--folder", default="",
                      help="where the runs go (default: a temporary folder, removed)")
  args = parser.parse_args()
  if args.kills < 0:
    parser.error(f"--kills must be at least 0, got {args.kills}")
  folder = os.path.abspath(args.folder or tempfile.mkdtemp(prefix="salx-chaos-"))
  os.makedirs(folder, exist_ok=True)
  try:
    return drill(args.kills, args.seed, folder)
  finally:
    if not args.folder:
      shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
  sys.exit(main())
