"""The sharded train step gives the same numbers on 1 device, 8 devices and 2 hosts."""

import os
import pathlib
import socket
import subprocess
import sys

import numpy as np
import pytest

ROOT = pathlib.Path(__file__).resolve().parents[2]

pytestmark = pytest.mark.slow   # Every test here starts subprocesses.


def _env(num_devices: int, **extra) -> dict:
  env = dict(os.environ)
  env.pop("XLA_FLAGS", None)
  env.update(JAX_PLATFORMS="cpu", JAX_NUM_CPU_DEVICES=str(num_devices),
             PYTHONPATH=str(ROOT), **extra)
  return env


def _run(out, num_devices, *args, **extra):
  return subprocess.run(
      [sys.executable, "-m", "tests.core.sharded_steps_worker", str(out), *map(str, args)],
      cwd=ROOT, env=_env(num_devices, **extra), capture_output=True, text=True,
      timeout=300)


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def _load(path):
  with np.load(path) as data:
    return {k: data[k] for k in data.files}


@pytest.fixture(scope="module")
def one_device(tmp_path_factory):
  out = tmp_path_factory.mktemp("one") / "result.npz"
  proc = _run(out, 1)
  assert proc.returncode == 0, proc.stderr
  return _load(out)


def _assert_same(result, reference):
  np.testing.assert_allclose(result["losses"], reference["losses"], rtol=1e-5)
  for key in reference:
    if key not in ("losses", "devices"):
      np.testing.assert_allclose(result[key], reference[key], rtol=1e-5, atol=1e-7,
                                 err_msg=key)


def test_eight_devices_match_one(one_device, tmp_path):
  out = tmp_path / "eight.npz"
  proc = _run(out, 8)
  assert proc.returncode == 0, proc.stderr
  result = _load(out)
  assert int(result["devices"]) == 8 and int(one_device["devices"]) == 1
  _assert_same(result, one_device)


def test_two_processes_match_one(one_device, tmp_path):
  out = tmp_path / "two_hosts.npz"
  port = _free_port()
  procs = [subprocess.Popen(
      [sys.executable, "-m", "tests.core.sharded_steps_worker", str(out)], cwd=ROOT,
      env=_env(4, JAX_COORDINATOR_ADDRESS=f"127.0.0.1:{port}", JAX_NUM_PROCESSES="2",
               JAX_PROCESS_ID=str(i)),
      stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for i in range(2)]
  errors = []
  for proc in procs:
    try:
      _, err = proc.communicate(timeout=300)
    except subprocess.TimeoutExpired:
      proc.kill()
      _, err = proc.communicate()
    errors.append(err)
    assert proc.returncode == 0, err
  result = _load(out)
  assert int(result["devices"]) == 8
  _assert_same(result, one_device)


def test_indivisible_global_batch_is_a_clear_error(tmp_path):
  proc = _run(tmp_path / "never.npz", 8, 6)
  assert proc.returncode != 0
  assert "global batch size 6 does not divide over the 8 devices" in proc.stderr


def test_numerical_core_and_benchmarks_import_no_tensorflow_or_clu():
  """The core and the GPU benchmarks run on a bare JAX machine (no TF, TFDS, clu or
  ml_collections; absl arrives with optax itself, so it is not checked here)."""
  code = ("import sys, salx.methods.sal.model, salx.methods.sal.losses, "
          "salx.methods.sal.pseudo_labels, salx.core.topk, salx.core.hparams, "
          "salx.core.layers, salx.core.train_step, salx.core.members, salx.core.sharding, "
          "salx.methods.sal.convert, salx.methods.sal.hparams, salx.methods.sal.method, "
          "salx.methods.registry, salx.postprocess.localization, salx.postprocess.ap, "
          "salx.datasets.sampling, salx.datasets.synthetic; "
          "sys.path.insert(0, 'experiments'); import bench_train_step, bench_protocol; "
          "print(sorted({m.split('.')[0] for m in sys.modules} & "
          "{'tensorflow', 'tensorflow_datasets', 'clu', 'ml_collections'}))")
  proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                        env=_env(1), cwd=ROOT, timeout=120)
  assert proc.returncode == 0, proc.stderr
  assert proc.stdout.strip().splitlines()[-1] == "[]"
