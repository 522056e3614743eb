"""The methods salx knows, by name (`config.method`): the ones it ships, and any a
user registers (a method defined in their own code, trained by salx's app).

    registry.register(MyMethod())      # then config.method = "my_method"
"""

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


def register(method: Method) -> Method:
  """Makes `method` known under `method.name` (a config then names it); returns it.

  Raises ValueError for a nameless method, or a name taken by another method.
  """
  if not isinstance(method, Method) or not method.name:
    raise ValueError(f"{method!r} is not a named salx Method")
  known = METHODS.get(method.name)
  if known is not None and type(known) is not type(method):
    raise ValueError(f"the method name {method.name!r} is taken by "
                     f"{type(known).__name__}")
  METHODS[method.name] = method
  return method
