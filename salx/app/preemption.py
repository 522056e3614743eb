"""SIGTERM and Ctrl-C (SIGINT) during a run: checkpoint at the next step and exit
cleanly; a second Ctrl-C exits at once (exit code 130), as one line."""

from __future__ import annotations

import os
import signal
import sys

from absl import logging
import jax
from jax.experimental import multihost_utils


EXIT_INTERRUPTED = 130


class PreemptionWatch:
  """SIGTERM or Ctrl-C asks the run to checkpoint and exit cleanly.

  One process: a handler sets a flag the loop reads after every step; a second
  Ctrl-C (the user does not want to wait for the save) exits at once with one line
  and exit code 130, the last complete checkpoint still there to resume from.
  Several processes: JAX's preemption sync point (set up by
  jax.distributed.initialize) makes every process stop at the same step on SIGTERM.

  Attributes:
    requested: a stop was asked for.
    interrupted: it was Ctrl-C (SIGINT), not SIGTERM.
  """

  def __init__(self, workdir: str = ""):
    self.multiprocess = jax.process_count() > 1
    self.requested = False
    self.interrupted = False
    self.workdir = workdir
    self._previous = {}
    if not self.multiprocess:
      self._previous[signal.SIGTERM] = signal.signal(signal.SIGTERM, self._handle)
    self._previous[signal.SIGINT] = signal.signal(signal.SIGINT, self._interrupt)

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def _interrupt(self, signum, frame):
    del signum, frame
    if self.interrupted:
      print(f"salx: interrupted again: stopped without waiting for the save; run the "
            f"same command to resume from the last complete checkpoint in "
            f"{self.workdir or 'the workdir'}", file=sys.stderr, flush=True)
      os._exit(EXIT_INTERRUPTED)  # pylint: disable=protected-access
    self.interrupted = self.requested = True   # Saved after this step; one line then.

  def reached(self, step: int) -> bool:
    if self.multiprocess:
      try:
        return multihost_utils.reached_preemption_sync_point(step)
      except RuntimeError as e:   # jax_enable_preemption_service switched off.
        logging.warning("No preemption handling on this multi-process run: %s", e)
        self.multiprocess = False
        return self.requested
    return self.requested

  def close(self) -> None:
    for signum, previous in self._previous.items():
      signal.signal(signum, previous)
    self._previous = {}
