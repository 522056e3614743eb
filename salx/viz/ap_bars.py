"""Per-class AP at one tIoU and the mAP per tIoU: the last step beside the selected one.

Input: evaluation records as salx/app/report.py writes them (metrics.json 'last'
and 'best'): {"step", "tiou_thresholds" [K], "mAP" [K], "per_class_AP":
{class: [K]}, "average_mAP", ...}, fractions in [0, 1], drawn in percent. The
classes are sorted by their AP at the chosen tIoU, highest first (the selected
step's AP when it is drawn, else the last step's; ties by class name).
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from salx.viz import canvas

CLASS_GID, MAP_GID = "class_ap", "map"
_COLORS = ("#7f7f7f", "#1f77b4")   # last step, selected step
_ROW, _TOP, _BOTTOM, _LEFT, _MID, _RIGHT = 16, 56, 50, 200, 70, 20


def _record(record: Any, field: str) -> Tuple[np.ndarray, np.ndarray, Dict[str, np.ndarray]]:
  """(tiou_thresholds [K], mAP [K], {class: AP [K]}) of one record, checked."""
  if not isinstance(record, Mapping):
    raise ValueError(f"{field} must be an evaluation record (a mapping)")
  missing = [k for k in ("tiou_thresholds", "mAP", "per_class_AP") if k not in record]
  if missing:
    raise ValueError(f"{field} lacks {missing}")
  try:
    th = np.asarray(record["tiou_thresholds"], np.float64).reshape(-1)
    mean_ap = np.asarray(record["mAP"], np.float64).reshape(-1)
    per_class = {str(c): np.asarray(v, np.float64).reshape(-1)
                 for c, v in dict(record["per_class_AP"]).items()}
  except (TypeError, ValueError):
    raise ValueError(f"{field}: tiou_thresholds, mAP and per_class_AP must hold "
                     "numbers") from None
  bad = [c for c, v in per_class.items() if v.size != th.size]
  if mean_ap.size != th.size or bad:
    raise ValueError(f"{field}: mAP and every per_class_AP list need "
                     f"{th.size} values (one per tIoU threshold)"
                     + (f"; class {bad[0]!r} has {per_class[bad[0]].size}" if bad else ""))
  return th, mean_ap, per_class


def _tiou_index(th: np.ndarray, tiou: float, field: str) -> int:
  hit = np.flatnonzero(np.abs(th - tiou) < 1e-6)
  if not hit.size:
    raise ValueError(f"{field}.tiou_thresholds {th.tolist()} lack tIoU {tiou:g}")
  return int(hit[0])


def class_order(per_class: Mapping[str, np.ndarray], k: int,
                classes: Sequence[str]) -> List[str]:
  """`classes` by their AP at threshold index `k` in `per_class`, highest first; ties
  by class name, and classes without a (finite) AP there last, by name."""
  def key(name: str):
    values = per_class.get(name)
    value = float(values[k]) if values is not None else math.nan
    return (0, -value, name) if math.isfinite(value) else (1, 0.0, name)
  return sorted(classes, key=key)


def _label(name: str, record: Mapping[str, Any]) -> str:
  step = record.get("step")
  return name if step is None else f"{name} (step {step})"


def _grouped(ax, positions: np.ndarray, values: List[np.ndarray], labels: List[str],
             colors: List[str], gid: str, horizontal: bool) -> None:
  width = 0.8 / len(values)
  for j, (v, label, color) in enumerate(zip(values, labels, colors)):
    offset = positions - 0.4 + width * (j + 0.5)
    bars = (ax.barh(offset, v, height=width, color=color, label=label) if horizontal
            else ax.bar(offset, v, width=width, color=color, label=label))
    for bar in bars:
      bar.set_gid(gid)


def draw_ap_bars(path: str, *, last: Optional[Mapping[str, Any]],
                 selected: Optional[Mapping[str, Any]], tiou: float = 0.5,
                 width_px: int = 1400) -> Dict[str, Any]:
  """Draws per-class AP at `tiou` and mAP per tIoU of two records into PNG `path`.

  Args:
    last: the last step's record (or None).
    selected: the selected (best) step's record (or None); at least one is given.
    tiou: the threshold of the per-class panel (0.5 by default).
    width_px: the picture's width; its height follows from the number of classes.

  Returns:
    {'class_bars', 'map_bars': bars drawn (counted on the axes), 'classes' (top to
    bottom: by AP, see `class_order`), 'size_px': (width, height)}.
  """
  width_px = canvas.check_width(width_px, "draw_ap_bars")
  given = [(field, r, color) for field, r, color in (
      ("last", last, _COLORS[0]), ("selected", selected, _COLORS[1]))
           if r is not None]
  if not given:
    raise ValueError("draw_ap_bars: give the last or the selected record")
  parsed = [_record(r, field) for field, r, _ in given]
  th = parsed[0][0]
  for (name, _, _), (other, _, _) in zip(given[1:], parsed[1:]):
    if other.size != th.size or np.any(np.abs(other - th) > 1e-6):
      raise ValueError(f"{name}.tiou_thresholds {other.tolist()} differ from "
                       f"{th.tolist()}")
  k = _tiou_index(th, tiou, given[0][0])
  classes = list(parsed[0][2])
  for (name, _, _), (_, _, per_class) in zip(given[1:], parsed[1:]):
    classes += [c for c in per_class if c not in classes]
  # The selected step's AP orders the rows when it is drawn, else the last step's.
  classes = class_order(parsed[-1][2], k, classes)
  order_by = "the selected step's" if given[-1][0] == "selected" else "the last step's"
  labels = [_label("last step" if field == "last" else "selected", r)
            for field, r, _ in given]
  colors = [color for _, _, color in given]

  height_px = max(360, _TOP + _ROW * len(classes) + _BOTTOM)
  fig = canvas.new_figure(width_px, height_px)
  inner = width_px - _LEFT - _MID - _RIGHT
  left = canvas.axes_px(fig, _LEFT, _TOP, inner * 0.6, height_px - _TOP - _BOTTOM)
  right = canvas.axes_px(fig, _LEFT + inner * 0.6 + _MID, _TOP, inner * 0.4,
                         min(320, height_px - _TOP - _BOTTOM))
  rows = np.arange(len(classes))
  class_values = [np.asarray([100 * p[2][c][k] if c in p[2] else np.nan
                              for c in classes]) for p in parsed]
  _grouped(left, rows, class_values, labels, colors, CLASS_GID, horizontal=True)
  left.set_yticks(rows)
  left.set_yticklabels(classes, fontsize=7)
  left.set_ylim(len(classes) - 0.5, -0.5)
  left.set_xlim(0, 100)
  left.set_xlabel(f"AP (%) at tIoU {tiou:g}", fontsize=8)
  left.set_title(f"per-class AP at tIoU {tiou:g}, by {order_by} AP", loc="left",
                 fontsize=10)
  left.legend(fontsize=7, loc="lower right")
  left.tick_params(axis="x", labelsize=7)
  left.grid(True, axis="x", linewidth=0.3)

  columns = np.arange(th.size)
  _grouped(right, columns, [100 * p[1] for p in parsed], labels, colors, MAP_GID,
           horizontal=False)
  right.set_xticks(columns)
  right.set_xticklabels([f"{t:g}" for t in th], fontsize=7)
  right.set_xlabel("tIoU", fontsize=8)
  right.set_ylim(0, 100)
  right.set_ylabel("mAP (%)", fontsize=8)
  right.set_title("mAP per tIoU", loc="left", fontsize=10)
  right.tick_params(axis="y", labelsize=7)
  right.grid(True, axis="y", linewidth=0.3)
  right.legend(fontsize=7, loc="upper right")

  info = {"class_bars": canvas.count_bars(left, (CLASS_GID,)),
          "map_bars": canvas.count_bars(right, (MAP_GID,)), "classes": classes}
  info["size_px"] = canvas.save(fig, path)
  return info
