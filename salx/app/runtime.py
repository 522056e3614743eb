"""The run's runtime: exit codes and one-line errors, the console and log file, the
workdir lock, and SIGTERM / Ctrl-C.

Exit codes: 0 success; 1 a run that diverged (NaN loss) or an internal error; 2 bad
input, config or environment (a data folder, a checkpoint, a busy or unwritable
workdir), always as one line naming the file or field; 130 Ctrl-C (checkpointed
first).

The console stays short: a header (data, model, parameter count, devices), one
line every `log_every` steps (step/total, loss, steps/s, ETA), one line per
evaluation (average mAP, best so far), then the report table. Everything absl and
clu log (the config dump, every scalar) goes to workdir/log.txt; with
`--verbosity=1` it is shown on the console too.

One run at a time in a workdir: `WorkdirLock` is an `fcntl.flock` on
workdir/.lock, which holds the holder's pid and host (JSON) for the error message
of a second run. The kernel releases a flock when its process ends, however it
ends, so the lock of a killed run is simply taken by the next one; the file itself
is never deleted (deleting it would let two runs lock two different files). On
NFS, Linux implements flock with byte-range locks that the server enforces for
every client.

SIGTERM and Ctrl-C (`PreemptionWatch`): checkpoint at the next step and exit
cleanly; a second Ctrl-C exits at once (exit code 130), as one line.
"""

from __future__ import annotations

import errno
import fcntl
import json
import logging as std_logging
import os
import signal
import socket
import sys
import time
import traceback
from typing import Any, Dict, Optional, Tuple

from absl import logging
import jax
from jax.experimental import multihost_utils

from salx.datasets.errors import DataError

EXIT_DIVERGED = 1
EXIT_BAD_INPUT = 2
EXIT_INTERRUPTED = 130
LOG_FILE = "log.txt"
LOCK_FILE = ".lock"


# ----------------------------------------------------------------------------
# Errors and exit codes.


class ConfigError(ValueError):
  """The config cannot be used (the message names the field)."""


class NonFiniteLossError(RuntimeError):
  """The training loss became NaN or infinite; the run stopped."""


class WorkdirError(RuntimeError):
  """The workdir cannot be locked (e.g. it cannot be created or written)."""


class WorkdirBusyError(WorkdirError):
  """Another run holds the workdir's lock."""


def _one_line(text: str) -> str:
  return " ".join(str(text).split()) if "\n" not in str(text) else str(text).strip()


def bad_input_types() -> Tuple[type, ...]:
  """The exception types that mean bad input, config or environment (exit 2)."""
  from salx.app import checkpoints  # pylint: disable=g-import-not-at-top
  from salx.core import torch_format  # pylint: disable=g-import-not-at-top
  return (ConfigError, DataError, FileNotFoundError, torch_format.CheckpointFormatError,
          checkpoints.CheckpointError, WorkdirError)


def is_known(error: BaseException) -> bool:
  return isinstance(error, bad_input_types() + (NonFiniteLossError, OSError))


def describe(error: BaseException) -> Tuple[int, str]:
  """(exit code, the line to print) of an exception that ended a run."""
  if isinstance(error, NonFiniteLossError):
    return EXIT_DIVERGED, f"training stopped: {_one_line(error)}"
  if isinstance(error, DataError):
    return EXIT_BAD_INPUT, f"data error: {_one_line(error)}"
  if isinstance(error, bad_input_types()):
    return EXIT_BAD_INPUT, _one_line(error)
  if isinstance(error, OSError):
    where = f" {error.filename}" if getattr(error, "filename", None) else ""
    reason = error.strerror or errno.errorcode.get(error.errno or 0, "") or str(error)
    return EXIT_BAD_INPUT, f"cannot write or read{where}: {reason}"
  return EXIT_DIVERGED, f"internal error: {type(error).__name__}: {_one_line(error)}"


def _late_event_loop_callback(info) -> bool:
  """An unraisable "Event loop is closed" of a tensorstore callback that completes
  after Orbax closed its loop (after a failed write): noise, nothing lost."""
  frames = traceback.extract_tb(info.exc_traceback) if info.exc_traceback else []
  return (isinstance(info.exc_value, RuntimeError)
          and str(info.exc_value) == "Event loop is closed"
          and any(f.name == "call_soon_threadsafe" for f in frames))


def quiet_late_callbacks() -> None:
  """For the command line, once at start: the unraisable exceptions of late
  checkpoint-writer callbacks are not printed (every other one is, as before)."""
  previous = sys.unraisablehook

  def hook(info):
    if not _late_event_loop_callback(info):
      previous(info)

  sys.unraisablehook = hook


# ----------------------------------------------------------------------------
# The console and the log file.


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


# ----------------------------------------------------------------------------
# One run at a time in a workdir.


def _holder_text(holder: Optional[Dict[str, Any]]) -> str:
  if not holder:
    return "a process that has not written its pid yet"
  return (f"pid {holder.get('pid', '?')} on host {holder.get('host', '?')} "
          f"(started {holder.get('started', '?')})")


class WorkdirLock:
  """An exclusive lock on `workdir` for the lifetime of a run (a context manager).

  Args:
    workdir: the run's folder (created if missing).
    enabled: take the lock (True) or do nothing (False: processes other than 0
      of a multi-process run, which share process 0's workdir).

  Raises (on entering):
    WorkdirBusyError: another live process holds the lock; the message names it.
    WorkdirError: the workdir or its lock file cannot be created or written.
  """

  def __init__(self, workdir: str, enabled: bool = True):
    self.workdir = os.path.abspath(os.path.expanduser(os.fspath(workdir)))
    self.path = os.path.join(self.workdir, LOCK_FILE)
    self.enabled = enabled
    self._fd: Optional[int] = None

  def holder(self) -> Optional[Dict[str, Any]]:
    """The pid/host record in the lock file; None when empty or unreadable."""
    try:
      with open(self.path, encoding="utf-8") as f:
        text = f.read()
      return json.loads(text) if text.strip() else None
    except (OSError, ValueError):
      return None

  def check_free(self) -> None:
    """Raises WorkdirBusyError when another run holds the lock now; creates nothing
    (a check before the run starts; `acquire` still takes the lock)."""
    if not self.enabled or not os.path.isfile(self.path):
      return
    try:
      fd = os.open(self.path, os.O_RDONLY)
    except OSError:
      return
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      if e.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        raise WorkdirBusyError(
            f"the workdir {self.workdir} is in use by another run: "
            f"{_holder_text(self.holder())}; wait for it to finish, stop it, or use "
            "another --workdir") from None
    finally:
      os.close(fd)   # Closing releases a lock taken here.

  def acquire(self) -> None:
    """Takes the lock (see the class docstring for the errors)."""
    if not self.enabled or self._fd is not None:
      return
    try:
      os.makedirs(self.workdir, exist_ok=True)
      fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
      raise WorkdirError(f"cannot lock the workdir {self.workdir}: [Errno {e.errno}] "
                         f"{e.strerror}") from e
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as e:
      os.close(fd)
      if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
        raise WorkdirError(f"cannot lock {self.path}: [Errno {e.errno}] "
                           f"{e.strerror}") from e
      raise WorkdirBusyError(
          f"the workdir {self.workdir} is in use by another run: "
          f"{_holder_text(self._wait_for_holder())}; wait for it to finish, stop "
          "it, or use another --workdir") from None
    previous = self.holder()
    try:
      record = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S %Z")}
      os.ftruncate(fd, 0)
      os.pwrite(fd, (json.dumps(record) + "\n").encode("utf-8"), 0)
      os.fsync(fd)
    except OSError as e:
      os.close(fd)   # Closing releases the flock.
      raise WorkdirError(f"cannot write {self.path}: [Errno {e.errno}] "
                         f"{e.strerror}") from e
    self._fd = fd
    if previous:
      logging.info("Took over the lock of %s, left by %s, which has ended.",
                   self.workdir, _holder_text(previous))

  def _wait_for_holder(self, timeout: float = 1.0) -> Optional[Dict[str, Any]]:
    """The holder's record; it writes it just after taking the lock."""
    deadline = time.monotonic() + timeout
    while True:
      holder = self.holder()
      if holder or time.monotonic() > deadline:
        return holder
      time.sleep(0.05)

  def release(self) -> None:
    """Empties the lock file and releases the lock (the file stays)."""
    if self._fd is None:
      return
    fd, self._fd = self._fd, None
    try:
      os.ftruncate(fd, 0)
    except OSError:
      pass   # The lock still goes with the close below.
    finally:
      os.close(fd)

  @property
  def held(self) -> bool:
    return self._fd is not None

  def __enter__(self) -> "WorkdirLock":
    self.acquire()
    return self

  def __exit__(self, *exc) -> None:
    self.release()


# ----------------------------------------------------------------------------
# SIGTERM and Ctrl-C.


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
