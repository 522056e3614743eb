"""The methods salx ships, by name (`config.method`)."""

from __future__ import annotations

from typing import Dict

from salx.methods.co2net.method import CO2NET_METHOD
from salx.methods.delu.method import DELU_METHOD
from salx.methods.method import Method
from salx.methods.sal.method import SAL_METHOD

METHODS: Dict[str, Method] = {m.name: m for m in (SAL_METHOD, CO2NET_METHOD, DELU_METHOD)}


def get_method(name: str) -> Method:
  """The method registered under `name`; a one-line ValueError for another name."""
  try:
    return METHODS[name]
  except KeyError:
    raise ValueError(f"unknown method {name!r}; salx has {sorted(METHODS)}") from None
