"""A command whose extra is not installed says so in one line (exit 2) instead of a
ModuleNotFoundError traceback."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow   # Subprocesses.

BLOCK = """
import runpy, sys
class Refuse:
  def find_spec(self, name, path=None, target=None):
    if name.split('.')[0] in {blocked!r}:
      raise ImportError(name + ' is not installed')
sys.meta_path.insert(0, Refuse())
sys.argv = [{module!r}, '--help']
runpy.run_module({module!r}, run_name='__main__')
"""


@pytest.mark.parametrize("module,blocked", [
    ("salx.main", {"ml_collections"}), ("salx.visualize", {"orbax"}),
    ("salx.detect", {"clu", "tensorflow"})])
def test_a_missing_extra_is_one_line_naming_it(module, blocked):
  proc = subprocess.run([sys.executable, "-c", BLOCK.format(blocked=blocked, module=module)],
                        cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 2, proc.stderr[-2000:]
  lines = proc.stderr.strip().splitlines()
  assert len(lines) == 1 and "pip install 'salx[train]'" in lines[0], proc.stderr
  assert "Traceback" not in proc.stderr


def test_show_config_lists_every_field():
  proc = subprocess.run([sys.executable, "-m", "salx.main", "--config=configs/thumos.py",
                         "--show_config", "--config.sal.nms_thresh=0.5"],
                        cwd=ROOT, capture_output=True, text=True, timeout=300)
  assert proc.returncode == 0, proc.stderr
  assert "nms_thresh: 0.5" in proc.stdout and "learning_rate: 0.0001" in proc.stdout
