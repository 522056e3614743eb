r"""Progress bars for long work: one line on stderr, silent when it is not a terminal.

    for video in progress_bar.track(videos, label="drawing", unit="videos"):
      draw(video)

    with progress_bar.ProgressBar(total=len(plans), label="writing") as bar:
      for plan in plans:
        write(plan)
        bar.update()

The bar is redrawn in place ('\r') at most every `min_interval` seconds:

    drawing  [##########..........]  45/90  50%  3.2 videos/s  ETA 14s

and its last state stays on screen when it closes ('in 28s' instead of the ETA).
It writes to `stream` (sys.stderr when the bar is made) and only when that stream is
a terminal (`isatty()`), so logs, pipes, CI and tests see nothing. The rate and the
ETA are measured from the first completed item on, so a slow start (a first
compilation, opening files) does not inflate the ETA. Standard library only: every
tier may use it.
"""

from __future__ import annotations

import os
import shutil
import sys
import time
from typing import Callable, Iterable, Iterator, Optional, TextIO, TypeVar

T = TypeVar("T")

# Widest line drawn, whatever the terminal's width.
MAX_WIDTH = 100
_BAR_CELLS = 24


def is_terminal(stream) -> bool:
  """Whether `stream` is an interactive terminal (False for anything without isatty)."""
  try:
    return bool(stream.isatty())
  except (AttributeError, ValueError, OSError):   # No isatty, or a closed stream.
    return False


def _columns(stream) -> int:
  """The terminal's width for `stream` (80 when it cannot be told)."""
  try:
    return os.get_terminal_size(stream.fileno()).columns
  except (AttributeError, ValueError, OSError):
    return shutil.get_terminal_size((80, 24)).columns


def format_duration(seconds: float) -> str:
  """'7s', '3m05s', '2h46m' (rounded down; negative or unknown: '?')."""
  if not seconds >= 0 or seconds == float("inf"):
    return "?"
  seconds = int(seconds)
  if seconds < 60:
    return f"{seconds}s"
  if seconds < 3600:
    return f"{seconds // 60}m{seconds % 60:02d}s"
  return f"{seconds // 3600}h{seconds % 3600 // 60:02d}m"


def _format_rate(rate: Optional[float], unit: str) -> str:
  if rate is None:
    return f"? {unit}/s"
  if rate >= 1 or rate == 0:
    return f"{rate:.1f} {unit}/s"
  return f"{1 / rate:.1f} s/{unit[:-1] if unit.endswith('s') and len(unit) > 1 else unit}"


class ProgressBar:
  """A counter of done items drawn as one line on a terminal.

  Args:
    total: how many items there are (None: unknown; the bar shows the count only).
    label: what is being done, first on the line.
    unit: what an item is, for the rate ('videos' -> '3.2 videos/s').
    stream: where to draw (default: sys.stderr at the time the bar is made).
    enabled: True or False to force the bar on or off; None (default) draws it only
      when `stream` is a terminal.
    min_interval: seconds between redraws (the last state is always drawn).
    clock: the time source in seconds (tests pass a fake one).
  """

  def __init__(self, total: Optional[int] = None, label: str = "", unit: str = "it",
               *, stream: Optional[TextIO] = None, enabled: Optional[bool] = None,
               min_interval: float = 0.1,
               clock: Callable[[], float] = time.monotonic):
    if total is not None and (isinstance(total, bool) or int(total) != total
                              or total < 0):
      raise ValueError(f"ProgressBar: total must be a count >= 0 or None, got {total!r}")
    self.total = None if total is None else int(total)
    self.label, self.unit = str(label), str(unit)
    self.stream = sys.stderr if stream is None else stream
    self.enabled = is_terminal(self.stream) if enabled is None else bool(enabled)
    self.min_interval = float(min_interval)
    self._clock = clock
    self.count = 0
    self.closed = False
    self._start = clock()
    self._first: Optional[tuple] = None     # (time, count) at the first update.
    self._last_draw = -float("inf")
    self._drawn_width = 0

  # -- The numbers.

  @property
  def elapsed(self) -> float:
    """Seconds since the bar was made."""
    return self._clock() - self._start

  @property
  def rate(self) -> Optional[float]:
    """Items per second from the first completed item on (None before two updates,
    or before any time passed)."""
    if self._first is None:
      return None
    first_time, first_count = self._first
    seconds = self._clock() - first_time
    if self.count <= first_count or seconds <= 0:
      return None
    return (self.count - first_count) / seconds

  @property
  def eta(self) -> Optional[float]:
    """Seconds still to go at the current rate (None when unknown; 0 when done)."""
    if self.total is None:
      return None
    if self.count >= self.total:
      return 0.0
    rate = self.rate
    return None if not rate else (self.total - self.count) / rate

  def line(self, final: bool = False, width: int = 80) -> str:
    """The bar as text, at most `width` characters (the bar's cells shrink, from
    `_BAR_CELLS` to 10, then go, before the label is cut)."""
    numbers = []
    if self.total:
      done = min(self.count / self.total, 1.0)
      numbers += [f"{self.count}/{self.total}", f"{100 * done:3.0f}%"]
    else:
      numbers.append(f"{self.count} {self.unit}")
    numbers.append(_format_rate(self.rate, self.unit))
    if final:
      numbers.append(f"in {format_duration(self.elapsed)}")
    elif self.total is not None:
      eta = self.eta
      numbers.append(f"ETA {'?' if eta is None else format_duration(eta)}")
    else:
      numbers.append(format_duration(self.elapsed))
    head = [self.label] if self.label else []
    text = "  ".join(head + numbers)
    if self.total:
      cells = min(_BAR_CELLS, width - len(text) - 4)
      if cells >= 10:
        filled = int(done * cells)
        text = "  ".join(head + ["[" + "#" * filled + "." * (cells - filled) + "]"]
                         + numbers)
    return text if len(text) <= width else text[:max(width - 3, 0)] + "..."

  # -- Drawing.

  def _draw(self, final: bool = False) -> None:
    if not self.enabled:
      return
    width = max(min(_columns(self.stream), MAX_WIDTH) - 1, 20)
    text = self.line(final, width)
    padding = " " * max(self._drawn_width - len(text), 0)
    self._drawn_width = len(text)
    try:
      self.stream.write("\r" + text + padding + ("\n" if final else ""))
      self.stream.flush()
    except (OSError, ValueError):   # The terminal went away: stop drawing.
      self.enabled = False
    self._last_draw = self._clock()

  def update(self, n: int = 1) -> None:
    """Counts `n` more items done; redraws when `min_interval` has passed."""
    if self.closed:
      raise ValueError("ProgressBar.update: the bar is closed")
    if self._first is None:
      self._first = (self._clock(), self.count + n)
    self.count += n
    if self._clock() - self._last_draw >= self.min_interval or (
        self.total is not None and self.count >= self.total):
      self._draw()

  def close(self) -> None:
    """Draws the last state and ends the line (once)."""
    if self.closed:
      return
    self.closed = True
    self._draw(final=True)

  def __enter__(self) -> "ProgressBar":
    self._draw()
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def track(items: Iterable[T], total: Optional[int] = None, label: str = "",
          unit: str = "it", **options) -> Iterator[T]:
  """Yields `items`, counting each one done when the next one is asked for.

  Args:
    items: any iterable.
    total: how many there are (default: len(items) when it has one).
    label, unit, **options: as for `ProgressBar` (stream, enabled, min_interval,
      clock).
  """
  if total is None:
    try:
      total = len(items)  # type: ignore[arg-type]
    except TypeError:
      total = None
  with ProgressBar(total, label, unit, **options) as bar:
    for item in items:
      yield item
      bar.update()


def note(text: str, stream: Optional[TextIO] = None) -> None:
  """Writes `text` as one line to `stream` (default stderr) when it is a terminal:
  what a command is doing before a bar can count anything."""
  stream = sys.stderr if stream is None else stream
  if is_terminal(stream):
    try:
      stream.write(f"{text}\n")
      stream.flush()
    except (OSError, ValueError):
      pass
