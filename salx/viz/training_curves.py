"""Training curves: the loss terms and the test average mAP against the step.

A member history is JSON-like data, one per trained member (seed):

    {"name": "seed 0",                                   # optional
     "train": [{"step": 25, "loss": 4.1, "mil": 0.6, "bg": 0.1, ...}, ...],
     "eval": [{"step": 50, "average_mAP": 0.41, ...}, ...],   # metrics.json "history"
     "untrained": {"step": 0, "average_mAP": 0.001, ...},  # optional
     "selected_step": 50}                                  # optional

Each member is one thin line; with several members the mean over them is drawn
thick with a band of +- one standard deviation (on the steps all members cover,
linearly interpolated). The selected step of each member (`selected_step`, else its
best average mAP, the earliest of ties) is a star on the mAP curve and a dashed
vertical line on the loss panels. The mAP curve starts at the untrained model's
point (step 0) when a member has one, and its y-axis spans 0 to 100 % whatever the
values, so runs compare at a glance.
"""

from __future__ import annotations

import math
from typing import Any, Dict, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from salx.postprocess.mean_std import mean_std
from salx.viz import canvas

MEMBER_GID, MEAN_GID, BAND_GID, SELECTED_GID = "member", "mean", "band", "selected"
# Loss terms in the order of SPEC 2.7, then anything else alphabetically.
TERM_ORDER = ("loss", "mil", "mc", "bg", "act", "se", "mix")
NOT_TERMS = frozenset({"step", "bad_videos", "steps_per_sec", "uptime"})
_CELL_H, _TOP, _BOTTOM, _LEFT, _RIGHT, _HGAP, _VGAP = 190, 44, 40, 60, 20, 50, 48


def _series(records: Any, key: str, where: str) -> Tuple[np.ndarray, np.ndarray]:
  """(steps, values) of `key` over the records holding it, sorted by step."""
  if not isinstance(records, (list, tuple)):
    raise ValueError(f"{where} must be a list of records, got {type(records).__name__}")
  steps, values = [], []
  for j, record in enumerate(records):
    if not isinstance(record, Mapping) or "step" not in record:
      raise ValueError(f"{where}[{j}] must be a record with a 'step'")
    if key not in record or record[key] is None:
      continue
    value = record[key]
    if isinstance(value, bool) or not isinstance(value, (int, float)):
      raise ValueError(f"{where}[{j}].{key} must be a number, got {value!r}")
    steps.append(float(record["step"]))
    values.append(float(value))
  order = np.argsort(steps, kind="stable")
  return np.asarray(steps)[order], np.asarray(values)[order]


def _members(members: Sequence[Mapping[str, Any]]) -> List[Mapping[str, Any]]:
  if isinstance(members, Mapping) or not isinstance(members, (list, tuple)):
    raise ValueError("members must be a list of member histories")
  for i, m in enumerate(members):
    if not isinstance(m, Mapping):
      raise ValueError(f"members[{i}] must be a mapping with 'train' and 'eval' lists")
  return list(members)


def _name(member: Mapping[str, Any], i: int) -> str:
  return str(member.get("name", f"member {i}"))


def selected_step(member: Mapping[str, Any], where: str = "member",
                  key: str = "average_mAP") -> Optional[float]:
  """The member's `selected_step`, else the step of its best `key` (earliest tie)."""
  if member.get("selected_step") is not None:
    return float(member["selected_step"])
  steps, values = _series(member.get("eval", []), key, f"{where}.eval")
  return float(steps[int(np.argmax(values))]) if values.size else None


def eval_records(member: Mapping[str, Any], where: str = "member"
                 ) -> List[Mapping[str, Any]]:
  """The member's 'eval' records, led by its 'untrained' record (step 0 unless it
  says otherwise) when it has one and no evaluation at that step."""
  records = member.get("eval", [])
  if not isinstance(records, (list, tuple)):
    raise ValueError(f"{where}.eval must be a list of records, got "
                     f"{type(records).__name__}")
  untrained = member.get("untrained")
  if untrained is None:
    return list(records)
  if not isinstance(untrained, Mapping):
    raise ValueError(f"{where}.untrained must be an evaluation record (a mapping)")
  first = dict(untrained, step=untrained.get("step", 0))
  if any(isinstance(r, Mapping) and r.get("step") == first["step"] for r in records):
    return list(records)
  return [first] + list(records)


def terms_of(members: Sequence[Mapping[str, Any]]) -> List[str]:
  """The loss terms the members' train records hold, in TERM_ORDER first."""
  found = set()
  for m in members:
    for record in m.get("train", []):
      if isinstance(record, Mapping):
        found.update(k for k, v in record.items() if k not in NOT_TERMS
                     and isinstance(v, (int, float)) and not isinstance(v, bool))
  return [t for t in TERM_ORDER if t in found] + sorted(found - set(TERM_ORDER))


def mean_band(series: Sequence[Tuple[np.ndarray, np.ndarray]]
              ) -> Optional[Tuple[np.ndarray, np.ndarray, np.ndarray]]:
  """(steps, mean, sample std) over members on the steps every member covers.

  Args:
    series: per member (steps [n], values [n]), steps ascending.
  Returns:
    None for fewer than two non-empty members or no common range.
  """
  series = [(s, v) for s, v in series if s.size]
  if len(series) < 2:
    return None
  lo, hi = max(s[0] for s, _ in series), min(s[-1] for s, _ in series)
  grid = np.unique(np.concatenate([s for s, _ in series]))
  grid = grid[(grid >= lo) & (grid <= hi)]
  if grid.size == 0:
    return None
  stats = mean_std(np.stack([np.interp(grid, s, v) for s, v in series]))
  return grid, stats.mean, stats.std


def _plot_members(ax, series, names, selected, mark_selected_on_curve: bool):
  for i, ((steps, values), name) in enumerate(zip(series, names)):
    color = canvas.class_color(i)
    ax.plot(steps, values, color=color, linewidth=1.0 if len(series) > 1 else 1.6,
            alpha=0.8, label=name, gid=MEMBER_GID)
    if selected[i] is None:
      continue
    if mark_selected_on_curve and steps.size:
      ax.plot([selected[i]], [np.interp(selected[i], steps, values)], marker="*",
              markersize=12, color=color, markeredgecolor="black", linestyle="none",
              gid=SELECTED_GID)
    elif not mark_selected_on_curve:
      ax.axvline(selected[i], color=color, linestyle="--", linewidth=0.8,
                 gid=SELECTED_GID)
  band = mean_band(series)
  if band is not None:
    grid, mean, std = band
    ax.fill_between(grid, mean - std, mean + std, color="0.3", alpha=0.2,
                    linewidth=0, gid=BAND_GID)
    ax.plot(grid, mean, color="black", linewidth=2.0, label="mean +- std",
            gid=MEAN_GID)
  ax.grid(True, linewidth=0.3)
  ax.tick_params(labelsize=7)


def _count(ax, gid: str) -> int:
  return (sum(1 for a in ax.lines if a.get_gid() == gid)
          + sum(1 for a in ax.collections if a.get_gid() == gid))


def draw_losses(path: str, members: Sequence[Mapping[str, Any]], *,
                width_px: int = 1400, columns: int = 4) -> Dict[str, Any]:
  """The loss terms against the step, one panel per term, into the PNG `path`.

  Args:
    members: member histories (their 'train' records are drawn).
    width_px: the picture's width; its height follows from the number of terms.
    columns: panels per row.

  Returns:
    {'terms': the terms drawn, 'member_lines', 'bands', 'selected_marks': artists
    on all panels, 'size_px': (width, height)}.
  """
  width_px = canvas.check_width(width_px, "draw_losses")
  members = _members(members)
  terms = terms_of(members)
  if not terms:
    raise ValueError("draw_losses: no member has train records with loss terms")
  names = [_name(m, i) for i, m in enumerate(members)]
  selected = [selected_step(m, f"members[{i}]") for i, m in enumerate(members)]
  columns = max(1, min(columns, len(terms)))
  rows = math.ceil(len(terms) / columns)
  height_px = _TOP + rows * _CELL_H + (rows - 1) * _VGAP + _BOTTOM
  cell_w = (width_px - _LEFT - _RIGHT - (columns - 1) * _HGAP) / columns
  fig = canvas.new_figure(width_px, height_px)
  axes = []
  for k, term in enumerate(terms):
    r, c = divmod(k, columns)
    ax = canvas.axes_px(fig, _LEFT + c * (cell_w + _HGAP), _TOP + r * (_CELL_H + _VGAP),
                        cell_w, _CELL_H)
    series = [_series(m.get("train", []), term, f"members[{i}].train")
              for i, m in enumerate(members)]
    _plot_members(ax, series, names, selected, mark_selected_on_curve=False)
    ax.set_title(term, fontsize=9, loc="left")
    if r == rows - 1:
      ax.set_xlabel("step", fontsize=8)
    axes.append(ax)
  axes[0].legend(fontsize=7, loc="upper right")
  fig.suptitle("training loss terms and statistics (dashed: selected step)", x=_LEFT / width_px,
               y=1 - 8 / height_px, ha="left", va="top", fontsize=10)
  info = {"terms": terms,
          "member_lines": sum(_count(ax, MEMBER_GID) for ax in axes),
          "bands": sum(_count(ax, BAND_GID) for ax in axes),
          "selected_marks": sum(_count(ax, SELECTED_GID) for ax in axes)}
  info["size_px"] = canvas.save(fig, path)
  return info


def draw_map(path: str, members: Sequence[Mapping[str, Any]], *,
             key: str = "average_mAP", width_px: int = 900,
             height_px: int = 420) -> Dict[str, Any]:
  """The test `key` (average mAP) against the step, selected steps starred.

  The y-axis is in percent, from 0 to 100.

  Args:
    members: member histories (their 'untrained' record at step 0, when given, and
      their 'eval' records are drawn; the selected step is one of the 'eval' ones).

  Returns:
    {'member_lines', 'bands', 'selected_marks', 'selected_steps', 'first_steps' (the
    first step of each member's line), 'ylim', 'size_px'}.
  """
  width_px = canvas.check_width(width_px, "draw_map")
  members = _members(members)
  series = [_series(eval_records(m, f"members[{i}]"), key, f"members[{i}].eval")
            for i, m in enumerate(members)]
  if not any(s.size for s, _ in series):
    raise ValueError(f"draw_map: no member has eval records with {key!r}")
  selected = [selected_step(m, f"members[{i}]", key) for i, m in enumerate(members)]
  fig = canvas.new_figure(width_px, height_px)
  ax = canvas.axes_px(fig, _LEFT + 10, _TOP, width_px - _LEFT - 10 - _RIGHT,
                      height_px - _TOP - _BOTTOM)
  scaled = [(s, 100 * v) for s, v in series]
  _plot_members(ax, scaled, [_name(m, i) for i, m in enumerate(members)], selected,
                mark_selected_on_curve=True)
  ax.set_xlabel("step", fontsize=8)
  ax.set_ylabel(f"{key} (%)", fontsize=8)
  ax.set_ylim(0, 100)
  ax.set_xlim(left=0)
  ax.legend(fontsize=7, loc="lower right")
  untrained = any(m.get("untrained") is not None for m in members)
  ax.set_title(f"test {key} (star: selected step"
               + ("; step 0: untrained" if untrained else "") + ")",
               fontsize=10, loc="left")
  lines = [a for a in ax.lines if a.get_gid() == MEMBER_GID]
  info = {"member_lines": len(lines), "bands": _count(ax, BAND_GID),
          "selected_marks": _count(ax, SELECTED_GID), "selected_steps": selected,
          "first_steps": [float(np.min(a.get_xdata())) if len(a.get_xdata()) else None
                          for a in lines],
          "ylim": tuple(float(v) for v in ax.get_ylim())}
  info["size_px"] = canvas.save(fig, path)
  return info
