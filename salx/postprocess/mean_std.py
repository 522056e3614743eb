"""The one mean ± std of salx: over members, seeds or runs.

`mean_std(values)` is the mean and the sample standard deviation (ddof 1; 0 for a
single value) over the first axis of `values` [n, ...]; the report's tables,
metrics.json's 'summary' and the pictures' bands all use it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Dict, Optional, Union

import numpy as np

Value = Union[float, np.ndarray]


@dataclasses.dataclass(frozen=True)
class MeanStd:
  """The mean and sample standard deviation of n values (floats, or arrays [...] of
  n arrays); None for both when n = 0."""
  mean: Optional[Value]
  std: Optional[Value]
  n: int

  def to_json(self) -> Dict[str, Any]:
    return {"mean": self.mean, "std": self.std, "n": self.n}

  def text(self, scale: float = 100.0, unit: str = "") -> str:
    """'mean ± std' of a float (the mean alone for one value), times `scale`."""
    if self.n == 1:
      return f"{scale * self.mean:.2f}{unit}"
    return f"{scale * self.mean:.2f} ± {scale * self.std:.2f}{unit}"


def mean_std(values) -> MeanStd:
  """Mean ± sample std over the first axis of `values` [n, ...]: floats for a
  sequence of numbers, arrays [...] for a stack of arrays."""
  values = np.asarray(values, np.float64)
  n = values.shape[0] if values.ndim else 0
  if n == 0:
    return MeanStd(None, None, 0)
  mean = values.mean(axis=0)
  std = values.std(axis=0, ddof=1) if n > 1 else np.zeros_like(mean)
  if values.ndim == 1:
    return MeanStd(float(mean), float(std), n)
  return MeanStd(mean, std, n)
