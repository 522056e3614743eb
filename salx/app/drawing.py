"""Drawing a run: its pictures into a folder, and timelines for TensorBoard.

The app's only door to matplotlib (`salx.viz`): `python -m salx.visualize`,
`--mode=evaluate` and a run with `config.timeline_videos > 0` import it; a run that
does not draw pays nothing for it.
"""

from __future__ import annotations

from typing import List, Optional, Sequence

from salx.app import pictures
from salx.viz import run_pictures


class TimelineImages:
  """Draws member 0's first `count` test videos (one batch's worth at most).

  Args:
    method, hp: the method and member 0's hyperparameters.
    source: the data source (class names, ground truth, durations).
    count: how many of the first test videos to draw.
  """

  def __init__(self, method, hp, source, count: int):
    self.method, self.hp, self.source, self.count = method, hp, source, count

  def write(self, writer, step: int, batches: Sequence) -> None:
    """Writes the images of step `step` from member 0's host batches."""
    entries = []
    for batch, outputs in batches:
      entries += pictures.batch_entries(outputs, batch, self.method, self.hp, self.source)
      if len(entries) >= self.count:
        break
    writer.write_images(step, run_pictures.timeline_images(
        entries[:self.count], top_per_class=5, width_px=1200))


def draw_pictures(workdir: str, out: str, split: str = "test",
                  video: Optional[str] = None, top_per_class: int = 10,
                  score_threshold: Optional[float] = None) -> List[str]:
  """Draws the run's pictures into `out` (W/plots); returns the files, index.html last.

  Raises:
    pictures.NoRunError, ConfigError, DataError, ValueError: one line naming what
      is missing or wrong.
  """
  collected = pictures.collect(workdir, split, video)
  return run_pictures.draw_run(out, **collected, top_per_class=top_per_class,
                               score_threshold=score_threshold)
