"""Evaluations that overlap training: localization and AP in CPU worker processes.

At an evaluation step the trainer runs the members' forward on the devices, brings
the outputs to the host and hands them to `EvalPool.submit`; the workers localize
and score each member (`salx.app.scoring`) while the next steps train. `ready`
yields the finished evaluations in step order, so the run applies them exactly as a
synchronous run does (the same records, the same best steps); the trainer drains
the pool before every checkpoint so that a resumed run sees every evaluation up to
its step. With `workers=0` everything is computed at `submit`, in this process.
"""

from __future__ import annotations

import collections
import concurrent.futures
import multiprocessing
import signal
from typing import Any, Iterator, List, Sequence, Tuple

from salx.app import scoring


def _ignore_interrupts() -> None:
  """Workers leave Ctrl-C to the run (the terminal sends it to the whole group)."""
  signal.signal(signal.SIGINT, signal.SIG_IGN)


def _score(scorer, batches, hp, step):
  return scorer(batches, hp, step)


class _Done:
  """A finished result with the interface of a Future."""

  def __init__(self, value):
    self._value = value

  def done(self) -> bool:
    return True

  def result(self):
    return self._value


class EvalPool:
  """Scores members' evaluations in `workers` processes, applied in step order.

  Args:
    workers: worker processes (0: score at submit time, in this process).
    max_pending: evaluations in flight before `submit` waits for the oldest (each
      holds the members' outputs and the trainer's params snapshot).
  """

  def __init__(self, workers: int, max_pending: int = 4):
    self.workers = workers
    self.max_pending = max(1, max_pending)
    self._pending = collections.deque()
    self._executor = None
    if workers > 0:
      self._executor = concurrent.futures.ProcessPoolExecutor(
          workers, mp_context=multiprocessing.get_context("spawn"),
          initializer=_ignore_interrupts)

  def submit(self, step: int, jobs: Sequence[Tuple[scoring.Scorer, list, Any]],
             payload: Any = None) -> None:
    """Queues one evaluation: `jobs` = [(scorer, host batches, hyperparameters)] scored at
    `step`; `payload` comes back with its results (e.g. a params snapshot)."""
    if self._executor is None:
      futures = [_Done(scorer(batches, hp, step))
                 for scorer, batches, hp in jobs]
    else:
      futures = [self._executor.submit(_score, scorer, batches, hp, step)
                 for scorer, batches, hp in jobs]
    self._pending.append((step, futures, payload))

  def full(self) -> bool:
    return len(self._pending) >= self.max_pending

  def ready(self, wait: bool = False) -> Iterator[Tuple[int, List[Any], Any]]:
    """(step, results of its jobs, payload) of the finished evaluations, oldest
    first; with `wait`, every pending one."""
    while self._pending:
      step, futures, payload = self._pending[0]
      if not wait and not all(f.done() for f in futures):
        return
      self._pending.popleft()
      yield step, [f.result() for f in futures], payload

  def close(self) -> None:
    if self._executor is not None:
      self._executor.shutdown(wait=False, cancel_futures=True)
      self._executor = None
