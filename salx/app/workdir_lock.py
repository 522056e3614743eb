"""One run at a time in a workdir: an exclusive lock on workdir/.lock.

    with WorkdirLock(workdir, enabled=jax.process_index() == 0):
      ...   # the run: checkpoints, logs, reports

The lock is an `fcntl.flock` on workdir/.lock, which holds the holder's pid and
host (JSON) for the error message of a second run. The kernel releases a flock
when its process ends, however it ends, so the lock of a killed run is simply
taken by the next one; the file itself is never deleted (deleting it would let two
runs lock two different files). On NFS, Linux implements flock with byte-range
locks that the server enforces for every client.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
import time
from typing import Any, Dict, Optional

from absl import logging

LOCK_FILE = ".lock"


class WorkdirError(RuntimeError):
  """The workdir cannot be locked (e.g. it cannot be created or written)."""


class WorkdirBusyError(WorkdirError):
  """Another run holds the workdir's lock."""


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
