"""What a run shows on the console, and the full log it keeps in workdir/log.txt.

The console stays short: a header (data, model, parameter count, devices), one
line every `log_every` steps (step/total, loss, steps/s, ETA), one line per
evaluation (average mAP, best so far), then the report table. Everything absl and
clu log (the config dump, every scalar) goes to workdir/log.txt; with
`--verbosity=1` it is shown on the console too.
"""

from __future__ import annotations

import logging as std_logging
import os
import sys
import time
from typing import Optional

from absl import logging

LOG_FILE = "log.txt"


def show_library_logs(verbose: bool) -> None:
  """Console: warnings only, unless `verbose` (then absl's whole log)."""
  handler = logging.get_absl_handler()
  handler.setLevel(std_logging.DEBUG if verbose else std_logging.WARNING)


def keep_log_file(workdir: str) -> std_logging.Handler:
  """Appends the whole absl log to workdir/log.txt from now on; returns the handler."""
  handler = std_logging.FileHandler(os.path.join(workdir, LOG_FILE), encoding="utf-8")
  handler.setFormatter(logging.PythonFormatter())
  handler.setLevel(std_logging.DEBUG)
  std_logging.getLogger().addHandler(handler)
  if logging.get_verbosity() < logging.INFO:   # Library use: flags not parsed.
    logging.set_verbosity(logging.INFO)
    console = logging.get_absl_handler()
    if console.level == std_logging.NOTSET:
      console.setLevel(std_logging.WARNING)   # The file gets INFO, not the console.
  return handler


def close_log_file(handler: Optional[std_logging.Handler]) -> None:
  if handler is not None:
    std_logging.getLogger().removeHandler(handler)
    handler.close()


def _duration(seconds: float) -> str:
  seconds = int(round(seconds))
  hours, rest = divmod(seconds, 3600)
  return f"{hours}h{rest // 60:02d}m" if hours else f"{rest // 60}m{rest % 60:02d}s"


class Console:
  """The short console of one run (silent on processes other than 0)."""

  def __init__(self, enabled: bool = True, stream=None):
    self.enabled = enabled
    self.stream = stream or sys.stdout
    self._anchor: Optional[tuple] = None  # (time, step) of the first step line.

  def line(self, text: str) -> None:
    if self.enabled:
      print(text, file=self.stream, flush=True)
    logging.info("%s", text)

  def header(self, *, data: str, model: str, num_params: int, devices: str) -> None:
    self.line(f"data:    {data}")
    self.line(f"model:   {model}, {num_params / 1e6:.2f}M parameters")
    self.line(f"devices: {devices}")

  def start(self, step: int) -> None:
    del step
    self._anchor = None

  def step(self, step: int, total: int, loss: float) -> None:
    """One progress line. The steps before the first line pay the compilation: the
    rate and ETA count only the steps after it."""
    now = time.monotonic()
    rate_text, eta = "", ""
    if self._anchor is None:
      self._anchor = (now, step)
      rate_text = " (compiled)"
    elif step > self._anchor[1]:
      rate = (step - self._anchor[1]) / max(now - self._anchor[0], 1e-9)
      rate_text = f", {rate:.2f} steps/s"
      eta = f", ETA {_duration((total - step) / rate)}"
    self.line(f"step {step}/{total}: loss {loss:.4f}{rate_text}{eta}")

  def evaluation(self, step: int, average_map: float, best: float,
                 best_step: int, what: str = "test", members: int = 1) -> None:
    """One evaluation line; with members, both numbers are means over them (the
    best one the mean of each member's own best)."""
    if members == 1:
      self.line(f"eval step {step}: {what} average mAP {100 * average_map:.2f}% "
                f"(best {100 * best:.2f}% at step {best_step})")
    else:
      self.line(f"eval step {step}: {what} average mAP {100 * average_map:.2f}%, mean "
                f"of {members} members (their own best: {100 * best:.2f}% on average, "
                f"the latest at step {best_step})")
