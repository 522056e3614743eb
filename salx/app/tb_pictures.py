"""Timelines of a few fixed test videos written to TensorBoard at each evaluation.

Only a run with `config.timeline_videos > 0` imports this module (and with it
matplotlib): a run that does not draw pays nothing for it.
"""

from __future__ import annotations

from typing import Sequence

from salx.app import pictures
from salx.viz import run_pictures


class TimelineImages:
  """Draws member 0's first `count` test videos (one batch's worth at most).

  Args:
    variant: member 0's code path (its localization settings).
    source: the data source (class names, ground truth, durations).
    count: how many of the first test videos to draw.
  """

  def __init__(self, variant, source, count: int):
    self.variant, self.source, self.count = variant, source, count

  def write(self, writer, step: int, batches: Sequence) -> None:
    """Writes the images of step `step` from member 0's host batches."""
    entries = []
    for batch, outputs in batches:
      entries += pictures.batch_entries(outputs, batch, self.variant, self.source)
      if len(entries) >= self.count:
        break
    writer.write_images(step, run_pictures.timeline_images(
        entries[:self.count], top_per_class=5, width_px=1200))
