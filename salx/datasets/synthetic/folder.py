"""Writing a synthetic dataset folder in a real layout, atomically and once.

`make_synthetic_dataset` stages the folder under a temporary name and renames it
when complete; the SYNTHETIC.json it leaves records the arguments, so the same call
finds the folder made and returns it. While the videos are rendered and written, a
progress bar counts them on stderr when it is a terminal (`salx.core.progress_bar`).
"""

from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from typing import Mapping, Optional, Sequence

from salx.core import constants
from salx.core import progress_bar
from salx.datasets import layouts
from salx.datasets.errors import DataError, PathLike
from salx.datasets.synthetic import copies
from salx.datasets.synthetic import features
from salx.datasets.synthetic import plans as plans_lib
from salx.datasets.synthetic.plans import SyntheticSpec, VideoPlan

PROVENANCE_FILE = "SYNTHETIC.json"
_FORMAT_VERSION = 1


def _provenance(spec: SyntheticSpec, layout: str, dataset: str,
                sources: Mapping[str, Optional[str]], max_videos: Optional[int],
                max_snippets: Optional[int]) -> dict:
  return {"format_version": _FORMAT_VERSION, "spec": dataclasses.asdict(spec),
          "layout": layout, "dataset": dataset, "sources": dict(sources),
          "max_videos": max_videos, "max_snippets": max_snippets}


def _read_provenance(out_dir: str) -> Optional[dict]:
  try:
    with open(os.path.join(out_dir, PROVENANCE_FILE), encoding="utf-8") as f:
      return json.load(f)
  except (OSError, ValueError):
    return None


def _absolute(path: Optional[PathLike]) -> Optional[str]:
  return None if path is None else os.path.abspath(os.fspath(path))


def _size_text(num_bytes: int) -> str:
  if num_bytes >= 1e9:
    return f"{num_bytes / 1e9:.1f} GB"
  return f"{num_bytes / 1e6:.0f} MB"


def write_plans(out_dir: PathLike, plans: Sequence[VideoPlan],
                class_names: Sequence[str], spec: SyntheticSpec, layout: str = "sal",
                dataset: str = "thumos14", progress: bool = True) -> str:
  """Renders `plans` and writes them in `layout` (no staging; see
  `make_synthetic_dataset` for the atomic, idempotent way). Returns `out_dir`.

  With `progress`, a bar on stderr counts the videos written (only when stderr is
  a terminal)."""
  splits = {split: [p.name for p in plans if p.split == split]
            for split in constants.SPLITS}
  records = features.generate_records(plans, class_names, spec)
  size = _size_text(features.estimated_size_bytes(plans, spec))
  records = progress_bar.track(records, total=len(plans), unit="videos",
                               label=f"writing {layout}, ~{size}",
                               enabled=None if progress else False)
  return layouts.write_layout(layout, out_dir, records, splits, class_names,
                              dataset=dataset)


def _write_dataset(folder: str, spec: SyntheticSpec, layout: str, dataset: str,
                   plans: Sequence[VideoPlan], class_names: Sequence[str],
                   provenance: dict, progress: bool) -> None:
  write_plans(folder, plans, class_names, spec, layout, dataset, progress)
  with open(os.path.join(folder, PROVENANCE_FILE), "w", encoding="utf-8") as f:
    json.dump(provenance, f, indent=1)


def make_synthetic_dataset(out_dir: PathLike, spec: SyntheticSpec = SyntheticSpec(),
                           layout: str = "sal",
                           annotations: Optional[PathLike] = None, *,
                           dataset: str = "thumos14",
                           video_info: Optional[PathLike] = None,
                           split_files: Optional[Mapping[str, PathLike]] = None,
                           class_list: Optional[PathLike] = None,
                           max_videos: Optional[int] = None,
                           max_snippets: Optional[int] = None,
                           overwrite: bool = False, progress: bool = True) -> str:
  """Writes a synthetic dataset folder in `layout` and returns its path.

  The folder is written under a temporary name next to `out_dir` and renamed when
  complete, so an interrupted run never leaves a partial dataset. If `out_dir`
  already holds a dataset made with the same arguments (its SYNTHETIC.json says so),
  it is returned as is; a different dataset there is an error unless `overwrite`.

  Args:
    out_dir: the dataset folder to create.
    spec: sizes and difficulty knobs (only the feature knobs when `annotations`).
    layout: 'sal', 'wtalc' or 'acmnet'.
    annotations: an ActivityNet-style gt.json whose videos and instances to copy;
      see `copies.plan_from_annotations` for this and the following arguments.
    dataset: 'thumos14', 'activitynet12' or 'activitynet13'.
    video_info, split_files, class_list, max_videos, max_snippets: see
      `copies.plan_from_annotations` (`max_videos`, `max_snippets` apply to copies only).
    overwrite: replace whatever `out_dir` holds.
    progress: show a progress bar of the videos written on stderr (drawn only
      when stderr is a terminal).
  """
  if layout not in layouts.LAYOUTS:
    raise ValueError(f"unknown layout {layout!r}; expected one of {layouts.LAYOUTS}")
  if dataset not in layouts.DATASETS:
    raise ValueError(f"unknown dataset {dataset!r}; expected one of {layouts.DATASETS}")
  out_dir = os.path.abspath(os.path.expanduser(os.fspath(out_dir)))
  sources = {"annotations": _absolute(annotations), "video_info": _absolute(video_info),
             "class_list": _absolute(class_list),
             **{f"split_{k}": _absolute(v) for k, v in (split_files or {}).items()}}
  provenance = _provenance(spec, layout, dataset, sources, max_videos, max_snippets)
  if os.path.exists(out_dir) and not overwrite and not _is_empty_dir(out_dir):
    return _existing_dataset(out_dir, provenance)
  if annotations is None:
    plans, class_names = plans_lib.plan_synthetic_videos(spec)
  else:
    plans, class_names = copies.plan_from_annotations(
        annotations, dataset, video_info, split_files, class_list, max_videos,
        max_snippets)
  parent = os.path.dirname(out_dir)
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.partial-",
                             dir=parent)
  os.chmod(staging, 0o755)   # mkdtemp makes it private; a dataset is for reading.
  try:
    _write_dataset(staging, spec, layout, dataset, plans, class_names, provenance,
                   progress)
    _move_into_place(staging, out_dir, overwrite)
  except BaseException:
    shutil.rmtree(staging, ignore_errors=True)
    raise
  if os.path.isdir(staging):   # Someone else finished the same dataset first.
    shutil.rmtree(staging, ignore_errors=True)
    return _existing_dataset(out_dir, provenance)
  return out_dir


def _is_empty_dir(path: str) -> bool:
  return os.path.isdir(path) and not os.listdir(path)


def _existing_dataset(out_dir: str, provenance: dict) -> str:
  if _read_provenance(out_dir) == json.loads(json.dumps(provenance)):
    return out_dir
  raise DataError(f"{out_dir} already exists and is not the synthetic dataset asked "
                  f"for (compare its {PROVENANCE_FILE}); delete it, choose another "
                  "folder, or pass overwrite=True / --overwrite", out_dir)


def _move_into_place(staging: str, out_dir: str, overwrite: bool) -> None:
  """Renames `staging` to `out_dir`; leaves `staging` if `out_dir` appeared meanwhile."""
  if overwrite and os.path.exists(out_dir):
    retired = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.old-",
                               dir=os.path.dirname(out_dir))
    os.rename(out_dir, os.path.join(retired, "dataset"))
    os.rename(staging, out_dir)
    shutil.rmtree(retired, ignore_errors=True)
    return
  try:
    os.rename(staging, out_dir)
  except OSError:
    if not os.path.exists(out_dir):
      raise
