"""The one exception of the dataset layer."""

from __future__ import annotations

import os
from typing import Optional, Union

PathLike = Union[str, os.PathLike]


class DataError(ValueError):
  """A data file is missing, unreadable or inconsistent.

  The message names the file and the problem. `path` holds the file (or folder)
  at fault when one is known, so that callers such as the dataset validator can
  report problems file by file.
  """

  def __init__(self, message: str, path: Optional[PathLike] = None):
    super().__init__(message)
    self.path = None if path is None else os.fspath(path)
