"""Shared test helpers: where the authors' fixtures and the real annotations live.

The reference fixtures ship with the repository in `tests/fixtures/`; a missing
one there is a broken checkout and fails its test. `SALX_FIXTURES_DIR` points the
tests at another folder of files in the same format; a file that folder lacks
skips its test with the reason. The public annotations are not shipped: tests
that read them (under `SALX_DATA_DIR`, default `../shared/data`) skip when absent.
"""

import os
import pathlib
import shutil
import subprocess
import sys
import tempfile
import time

import pytest

import configs.synthetic
import configs.tiny

ROOT = pathlib.Path(__file__).resolve().parents[1]
# The session's JAX compilation cache (see pytest_configure).
_SESSION_CACHE = "SALX_TEST_COMPILATION_CACHE"


def pytest_configure(config):
  """One JAX compilation cache per test process (each xdist worker has its own),
  shared with every salx process its tests start (they inherit the environment):
  the many tiny runs compile the same programs once. A worker's tests run one after
  another, so only the processes of one test share the folder at a time. The
  process removes its folder at the end."""
  del config
  os.environ[_SESSION_CACHE] = tempfile.mkdtemp(prefix="salx-test-jax-cache-")
  os.environ["JAX_COMPILATION_CACHE_DIR"] = os.environ[_SESSION_CACHE]
  os.environ.setdefault("JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS", "0.5")
  os.environ["SALX_TEST_CACHE_OWNER"] = str(os.getpid())


def pytest_unconfigure(config):
  del config
  if os.environ.get("SALX_TEST_CACHE_OWNER") == str(os.getpid()):
    shutil.rmtree(os.environ[_SESSION_CACHE], ignore_errors=True)

SHIPPED_FIXTURES_DIR = ROOT / "tests" / "fixtures"
FIXTURES_OVERRIDE = os.environ.get("SALX_FIXTURES_DIR")
FIXTURES_DIR = pathlib.Path(FIXTURES_OVERRIDE) if FIXTURES_OVERRIDE else SHIPPED_FIXTURES_DIR
DATA_DIR = pathlib.Path(
    os.environ.get("SALX_DATA_DIR", ROOT.parent / "shared" / "data"))


def fixture_file(name: str) -> pathlib.Path:
  """Path of a reference fixture.

  Fails when the shipped folder lacks it; skips with the reason when the folder
  given by SALX_FIXTURES_DIR lacks it.
  """
  path = FIXTURES_DIR / name
  if path.exists():
    return path
  if FIXTURES_OVERRIDE:
    pytest.skip(f"reference fixture {path} is absent from SALX_FIXTURES_DIR "
                f"({FIXTURES_OVERRIDE}); unset it to use the shipped tests/fixtures/")
  pytest.fail(f"shipped reference fixture {path} is missing: the checkout is incomplete "
              "(tests/fixtures/ holds every file its README.md lists)", pytrace=False)


WTALC_LABELS_FIXTURE = "co2net_delu/wtalc_labels_all.json"
WTALC_VIDEOS_CSV = "thumos14/wtalc_thumos14reduced_videos.csv"


def wtalc_videos() -> list:
  """[(file index, video, subset, labels_all as a list)] of the W-TALC THUMOS14
  annotations in file order: from the fixtures (the annotations they were scored
  against) when they carry them, else from the public annotations (SALX_DATA_DIR)."""
  import csv  # pylint: disable=g-import-not-at-top
  import json  # pylint: disable=g-import-not-at-top
  path = FIXTURES_DIR / WTALC_LABELS_FIXTURE
  if path.exists():
    rows = json.loads(path.read_text())["rows"]
  else:
    with open(data_file(WTALC_VIDEOS_CSV), newline="") as f:
      rows = [(r["index"], r["video"], r["subset"], r["labels_all"])
              for r in csv.DictReader(f)]
  return [(int(i), video, subset, [x for x in labels.split("|") if x])
          for i, video, subset, labels in rows]


def data_file(relative: str) -> pathlib.Path:
  """Path of a real annotation file under SALX_DATA_DIR; skips when absent."""
  path = DATA_DIR / relative
  if not path.exists():
    pytest.skip(f"annotation file {path} is absent "
                "(set SALX_DATA_DIR to the folder holding the public annotations)")
  return path


# ------------------------------------------------------------------ tiny runs


def synthetic_config(**overrides):
  """configs/synthetic.py with `overrides`."""
  config = configs.synthetic.get_config()
  config.update(overrides)
  return config


def tiny_config(data_dir, **overrides):
  """configs/tiny.py with its data in `data_dir` and run-field `overrides` (the
  method's own as e.g. sal={'learning_rate': 0.01})."""
  config = configs.tiny.get_config()
  config.data_dir = str(data_dir)
  method_overrides = overrides.pop(config.method, None)
  unknown = set(overrides) - set(config.keys())
  assert not unknown, f"not run fields of the config: {sorted(unknown)}"
  config.update(overrides)
  if method_overrides:
    config[config.method].update(method_overrides)
  return config


def cli_args(workdir, data_dir, **overrides):
  """`python -m salx.main` arguments of configs/tiny.py with its data in `data_dir`
  and `--config.<name>=<value>` for each override ('sal.x' names the method's)."""
  return ([sys.executable, "-m", "salx.main", "--config=configs/tiny.py",
           f"--workdir={workdir}", f"--config.data_dir={data_dir}"]
          + [f"--config.{k}={v}" for k, v in overrides.items()])


@pytest.fixture(scope="module")
def compilation_cache():
  """The session's persistent JAX compilation cache, for the module's runs in this
  process too (its subprocesses use it anyway)."""
  import jax  # pylint: disable=g-import-not-at-top
  folder = os.environ[_SESSION_CACHE]
  previous = (jax.config.jax_compilation_cache_dir,
              jax.config.jax_persistent_cache_min_compile_time_secs)
  jax.config.update("jax_compilation_cache_dir", folder)
  jax.config.update("jax_persistent_cache_min_compile_time_secs", 0.5)
  yield folder
  jax.config.update("jax_compilation_cache_dir", previous[0])
  jax.config.update("jax_persistent_cache_min_compile_time_secs", previous[1])


def start_salx(args, cache, log_dir):
  """Starts a salx subprocess (JAX compilation cache `cache`); its output goes to
  stdout.txt and stderr.txt in `log_dir`."""
  env = dict(os.environ, PYTHONPATH=str(ROOT), JAX_COMPILATION_CACHE_DIR=cache,
             JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS="0.5")
  stdout = open(os.path.join(log_dir, "stdout.txt"), "w")
  stderr = open(os.path.join(log_dir, "stderr.txt"), "w")
  return subprocess.Popen(args, cwd=ROOT, env=env, stdout=stdout, stderr=stderr)


def wait_for_checkpoint(proc, workdir, min_step, log_dir, timeout=900):
  """Blocks until `workdir` holds a complete checkpoint of a step >= min_step (the
  timeout only guards against a hung run; nothing is timed)."""
  folder = os.path.join(workdir, "checkpoints")
  deadline = time.monotonic() + timeout
  while time.monotonic() < deadline:
    if proc.poll() is not None:
      with open(os.path.join(log_dir, "stderr.txt")) as f:
        pytest.fail(f"salx exited early ({proc.returncode}):\n{f.read()[-3000:]}")
    steps = [n for n in os.listdir(folder) if n.isdigit()] if os.path.isdir(folder) else []
    if any(int(s) >= min_step for s in steps):
      return
    time.sleep(0.02)
  proc.kill()
  pytest.fail("no checkpoint appeared in time")
