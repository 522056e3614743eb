"""Honest model selection: a class-stratified part of the training videos held out.

With `config.holdout_fraction = f > 0`, a fraction f of the training videos of
each class (by a video's first label in sorted order; fixed by `config.seed`) is
left out of training and evaluated like a test split at every evaluation; each
member's step is then selected on it instead of on the test set.

`split_training_videos` draws the held-out names; `TrainingSubset` is the source
with only the kept training videos, `HeldOutSplit` the source whose 'test' split
is the held-out videos (read from the training split), so the feed and the
evaluator read them through the source interface as they read any folder.
"""

from __future__ import annotations

import collections
from typing import List, Sequence, Tuple

import numpy as np

from salx.app.run_config import ConfigError

_HOLDOUT_STREAM = 2   # Apart from the feed's streams 0 (order) and 1 (sampling).


def split_training_videos(source, fraction: float, seed: int
                          ) -> Tuple[List[str], List[str]]:
  """(kept, held out) training video names, in the source's order.

  Per class (a video's first label, sorted), round(fraction * n) videos are held
  out, at least one when the class has two or more.
  """
  names = source.video_names("train")
  groups = collections.defaultdict(list)
  for name in names:
    annotation = source.annotation(name)
    labels = sorted(annotation.video_labels) if annotation is not None else []
    groups[labels[0] if labels else ""].append(name)
  rng = np.random.default_rng([seed, _HOLDOUT_STREAM])
  held = set()
  for label in sorted(groups):
    group = groups[label]
    count = int(round(fraction * len(group)))
    if len(group) >= 2:
      count = min(max(count, 1), len(group) - 1)
    else:
      count = 0
    held.update(group[i] for i in rng.permutation(len(group))[:count])
  if not held:
    raise ConfigError(f"config.holdout_fraction = {fraction} holds out no training "
                      "video (each class needs two or more)")
  return [n for n in names if n not in held], [n for n in names if n in held]


class _Delegate:
  """Everything of the wrapped source but the split membership (and so no
  index-based reading, which follows the wrapped source's own splits)."""

  def __init__(self, source):
    self._source = source

  def __getattr__(self, name):
    if name == "load_index":
      raise AttributeError(name)
    return getattr(self._source, name)


class TrainingSubset(_Delegate):
  """`source` whose training split is `kept` (the test split is unchanged)."""

  def __init__(self, source, kept: Sequence[str]):
    super().__init__(source)
    self._kept = list(kept)

  def video_names(self, split: str) -> List[str]:
    return list(self._kept) if split == "train" else self._source.video_names(split)


class HeldOutSplit(_Delegate):
  """`source` whose 'test' split is the held-out training videos."""

  def __init__(self, source, held: Sequence[str]):
    super().__init__(source)
    self._held = list(held)

  def _split(self, split: str) -> str:
    return "train" if split == "test" else split

  def video_names(self, split: str) -> List[str]:
    return list(self._held) if split == "test" else self._source.video_names(split)

  def load(self, split: str, name: str):
    return self._source.load(self._split(split), name)

  def num_snippets(self, split: str, name: str) -> int:
    return self._source.num_snippets(self._split(split), name)

  def feature_file(self, split: str, name: str) -> str:
    return self._source.feature_file(self._split(split), name)

  def ground_truth(self) -> dict:
    """The held-out videos' instances as the 'test' subset."""
    database = self._source.ground_truth()["database"]
    return {"database": {name: dict(database[name], subset="test")
                         for name in self._held if name in database}}
