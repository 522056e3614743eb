"""Config files load from any directory, a user's own file building on salx's base
included (configs is installed with salx)."""

import subprocess
import sys

import pytest

from tests.conftest import ROOT

pytestmark = pytest.mark.slow   # Subprocesses.

USER_CONFIG = '''
from configs import base


def get_config():
  config = base.get_config()
  config.sal.hidden_dim = 256
  return config
'''


def _show(config_path, cwd):
  proc = subprocess.run([sys.executable, "-m", "salx.main", f"--config={config_path}",
                         "--show_config"], cwd=cwd, capture_output=True, text=True,
                        timeout=300)
  assert proc.returncode == 0, proc.stderr[-2000:]
  return proc.stdout


def test_a_salx_config_by_absolute_path_from_another_folder(tmp_path):
  out = _show(ROOT / "configs" / "delu_thumos.py", tmp_path)
  assert "method: delu" in out


def test_a_users_own_config_file_building_on_the_base(tmp_path):
  mine = tmp_path / "elsewhere" / "my_config.py"
  mine.parent.mkdir()
  mine.write_text(USER_CONFIG)
  out = _show(mine, tmp_path)
  assert "hidden_dim: 256" in out and "method: sal" in out
