"""salx's public names: each resolves, and importing salx loads no JAX until one is used."""

import subprocess
import sys

import pytest

import salx


def test_every_public_name_resolves():
  for name in salx.__all__:
    assert getattr(salx, name) is not None, name
  assert {salx.SAL.name, salx.CO2NET.name, salx.DELU.name} == {"sal", "co2net", "delu"}
  assert salx.get_method("delu") is salx.DELU


@pytest.mark.slow
def test_import_salx_is_light():
  code = "import sys, salx; print('jax' in sys.modules, 'tensorflow' in sys.modules)"
  out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                       timeout=120, check=True).stdout.split()
  assert out == ["False", "False"]
