"""SIGTERM handling of a run: checkpoint at the next step and exit cleanly."""

from __future__ import annotations

import signal

from absl import logging
import jax
from jax.experimental import multihost_utils


class PreemptionWatch:
  """SIGTERM asks the run to checkpoint and exit cleanly.

  One process: a SIGTERM handler sets a flag the loop reads after every step.
  Several processes: JAX's preemption sync point (set up by
  jax.distributed.initialize) makes every process stop at the same step.
  """

  def __init__(self):
    self.multiprocess = jax.process_count() > 1
    self.requested = False
    self._previous = None
    if not self.multiprocess:
      self._previous = signal.signal(signal.SIGTERM, self._handle)

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def reached(self, step: int) -> bool:
    if self.multiprocess:
      try:
        return multihost_utils.reached_preemption_sync_point(step)
      except RuntimeError as e:   # jax_enable_preemption_service switched off.
        logging.warning("No preemption handling on this multi-process run: %s", e)
        self.multiprocess, self.requested = False, False
        return False
    return self.requested

  def close(self) -> None:
    if self._previous is not None:
      signal.signal(signal.SIGTERM, self._previous)
      self._previous = None
