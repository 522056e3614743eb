"""Figures of an exact pixel size on matplotlib's Agg canvas (no pyplot, no backend
switch), saved as PNG or returned as RGB pixels, and the count of the bars a
picture holds."""

from __future__ import annotations

import os
from typing import Sequence, Tuple

import numpy as np
from matplotlib import colors as mcolors
from matplotlib import patches
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

DPI = 100
MIN_WIDTH_PX = 400
# Class colors: tab10, then tab20's lighter halves.
_PALETTE = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
            "#e377c2", "#7f7f7f", "#bcbd22", "#17becf", "#aec7e8", "#ffbb78",
            "#98df8a", "#ff9896", "#c5b0d5", "#c49c94", "#f7b6d2", "#c7c7c7",
            "#dbdb8d", "#9edae5")


def check_width(width_px, where: str = "") -> int:
  """`width_px` as an int >= MIN_WIDTH_PX; a ValueError (starting with `where`,
  when given) otherwise."""
  if isinstance(width_px, bool) or not isinstance(width_px, int) or width_px < MIN_WIDTH_PX:
    raise ValueError(f"{where + ': ' if where else ''}width_px must be an integer >= "
                     f"{MIN_WIDTH_PX}, got {width_px!r}")
  return width_px


def new_figure(width_px: int, height_px: int) -> Figure:
  """A Figure of exactly width_px x height_px pixels on an Agg canvas."""
  fig = Figure(figsize=(width_px / DPI, height_px / DPI), dpi=DPI)
  FigureCanvasAgg(fig)
  return fig


def axes_px(fig: Figure, left: float, top: float, width: float, height: float):
  """Axes at a rectangle given in pixels from the figure's top-left corner."""
  w, h = fig.get_size_inches() * fig.dpi
  return fig.add_axes((left / w, 1.0 - (top + height) / h, width / w, height / h))


def save(fig: Figure, path: str) -> Tuple[int, int]:
  """Writes `fig` as PNG to `path` (folders made); returns its (width, height) px."""
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  fig.savefig(path, dpi=fig.dpi, format="png")
  w, h = fig.get_size_inches() * fig.dpi
  return int(round(w)), int(round(h))


def rgb_pixels(fig: Figure) -> np.ndarray:
  """The figure drawn on its Agg canvas  [H, W, 3] uint8 (RGB, no alpha)."""
  fig.canvas.draw()
  return np.array(fig.canvas.buffer_rgba(), np.uint8)[..., :3]


def class_color(index: int) -> str:
  """The color of class `index` (the same in every picture)."""
  return _PALETTE[int(index) % len(_PALETTE)]


def shade(color: str, amount: float) -> Tuple[float, float, float, float]:
  """`color` with opacity 0.25 (amount 0) to 1 (amount 1)."""
  r, g, b, _ = mcolors.to_rgba(color)
  return (r, g, b, 0.25 + 0.75 * min(max(float(amount), 0.0), 1.0))


def count_bars(ax, gids: Sequence[str] = ()) -> int:
  """Rectangle patches on `ax` (those whose gid is in `gids`, when given)."""
  return sum(1 for p in ax.patches if isinstance(p, patches.Rectangle)
             and (not gids or p.get_gid() in gids))
