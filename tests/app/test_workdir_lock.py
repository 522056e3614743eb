"""One run at a time per workdir: the flock of salx.app.runtime."""

import json
import os
import signal
import socket
import subprocess
import sys

import pytest

from salx.app import runtime
from tests.conftest import ROOT

# A process that takes the lock, says so, and waits to be killed.
_HOLDER = ("import sys, time; from salx.app.runtime import WorkdirLock; "
           "lock = WorkdirLock(sys.argv[1]); lock.acquire(); "
           "print('locked', flush=True); time.sleep(600)")


def _start_holder(workdir):
  proc = subprocess.Popen([sys.executable, "-c", _HOLDER, str(workdir)], cwd=ROOT,
                          env=dict(os.environ, PYTHONPATH=str(ROOT)),
                          stdout=subprocess.PIPE, text=True)
  assert proc.stdout.readline().strip() == "locked"
  return proc


def test_lock_records_the_holder_and_is_released(tmp_path):
  workdir = tmp_path / "run"          # Created by the lock.
  with runtime.WorkdirLock(workdir) as lock:
    assert lock.held
    assert lock.holder() == json.loads((workdir / ".lock").read_text())
    assert lock.holder()["pid"] == os.getpid()
    assert lock.holder()["host"] == socket.gethostname()
  assert not lock.held
  assert (workdir / ".lock").read_text() == ""   # Kept, emptied.
  with runtime.WorkdirLock(workdir) as again:   # Free again.
    assert again.held


def test_second_run_on_a_busy_workdir_names_the_first(tmp_path):
  with runtime.WorkdirLock(tmp_path):
    with pytest.raises(runtime.WorkdirBusyError) as raised:
      runtime.WorkdirLock(tmp_path).acquire()
  message = str(raised.value)
  assert "\n" not in message
  assert f"the workdir {tmp_path} is in use by another run" in message
  assert f"pid {os.getpid()} on host {socket.gethostname()}" in message


def test_other_processes_of_a_multi_process_run_take_no_lock(tmp_path):
  with runtime.WorkdirLock(tmp_path):
    with runtime.WorkdirLock(tmp_path, enabled=False) as follower:
      assert not follower.held
  with runtime.WorkdirLock(tmp_path / "fresh", enabled=False):
    assert not (tmp_path / "fresh").exists()


def test_lock_of_a_killed_run_is_taken_over(tmp_path, caplog):
  proc = _start_holder(tmp_path)
  try:
    with pytest.raises(runtime.WorkdirBusyError, match=f"pid {proc.pid} on host"):
      runtime.WorkdirLock(tmp_path).acquire()
  finally:
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    proc.stdout.close()
  assert json.loads((tmp_path / ".lock").read_text())["pid"] == proc.pid   # Stale.
  with caplog.at_level("INFO", logger="absl"):   # Whatever verbosity ran before.
    with runtime.WorkdirLock(tmp_path) as lock:
      assert lock.holder()["pid"] == os.getpid()
  assert any(f"pid {proc.pid}" in r.getMessage() and "Took over" in r.getMessage()
             for r in caplog.records)


def test_unusable_workdir_is_one_error_naming_it(tmp_path, monkeypatch):
  not_a_folder = tmp_path / "file"
  not_a_folder.write_text("x")
  with pytest.raises(runtime.WorkdirError, match=f"cannot lock the workdir "
                     f"{not_a_folder}: .Errno 17. File exists"):
    runtime.WorkdirLock(not_a_folder).acquire()

  def read_only(path, *args, **kwargs):
    raise OSError(30, "Read-only file system", path)

  monkeypatch.setattr(runtime.os, "open", read_only)
  with pytest.raises(runtime.WorkdirError,
                     match=r"cannot lock the workdir .*: \[Errno 30\] Read-only"):
    runtime.WorkdirLock(tmp_path).acquire()
