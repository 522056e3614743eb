"""Manifests of data folders: which files, exactly, and what their annotations count.

    manifest = make_manifest("THUMOS14", "thumos14")          # a JSON-ready dict
    write_manifest("THUMOS14.manifest.json", manifest)
    for difference in compare("THUMOS14", read_manifest("theirs.json")):
      print(difference)                                         # 'file: what differs'

A manifest records every file of the folder (relative path, size, sha256; for a
.npy file its shape and dtype from the header) and the annotation counts the
folder's reader gives (videos and instances per split, instances per class, the
classes). Two folders with equal manifests hold the same bytes; when they differ,
`compare` names each file that differs, is missing or is extra, and each count. It
tells whether two people hold the same copy of a paper's features.

Files starting with '.' and the manifest file itself (when it lies in the folder)
are left out. Files are read in 1 MiB blocks; a progress bar counts the MiB hashed
on stderr when it is a terminal.
"""

from __future__ import annotations

import collections
import hashlib
import json
import os
from typing import Any, Dict, Iterator, List, Optional

from salx.core.constants import SPLITS
from salx.core import progress_bar
from salx.datasets import layouts
from salx.datasets import npy
from salx.datasets.errors import DataError, PathLike
from salx.datasets.validate import Problem

FORMAT = "salx-manifest-1"
_BLOCK = 1 << 20


class ManifestError(DataError):
  """A manifest file that cannot be read (the message names it)."""


def list_files(data_dir: str, skip: Optional[str] = None) -> List[str]:
  """Relative paths ('/'-separated, sorted) of the folder's files, following links;
  not dot-files, not `skip` (an absolute path)."""
  skip = os.path.realpath(skip) if skip else None
  out = []
  for root, dirs, files in os.walk(data_dir, followlinks=True):
    dirs[:] = sorted(d for d in dirs if not d.startswith("."))
    for name in files:
      path = os.path.join(root, name)
      if name.startswith(".") or (skip and os.path.realpath(path) == skip):
        continue
      if os.path.isfile(path):
        out.append(os.path.relpath(path, data_dir).replace(os.sep, "/"))
  return sorted(out)


def _mib(size: int) -> int:
  return max(1, -(-size // _BLOCK))


def _sha256(path: str, bar: progress_bar.ProgressBar) -> str:
  digest = hashlib.sha256()
  blocks = 0
  with open(path, "rb") as f:
    for block in iter(lambda: f.read(_BLOCK), b""):
      digest.update(block)
      blocks += 1
      bar.update()
  if not blocks:
    bar.update()
  return digest.hexdigest()


def _npy_header(path: str) -> Dict[str, Any]:
  """{'shape', 'dtype'} of a .npy file's header ({'npy_error'} when unreadable)."""
  try:
    with npy._open(path) as f:  # pylint: disable=protected-access
      shape, dtype, _ = npy._read_header(f, path)  # pylint: disable=protected-access
  except DataError as e:
    return {"npy_error": str(e)[len(path) + 2:] if str(e).startswith(path) else str(e)}
  return {"shape": list(shape), "dtype": "object" if dtype.hasobject else dtype.str}


def file_entry(path: str, bar: progress_bar.ProgressBar) -> Dict[str, Any]:
  """{'bytes', 'sha256', and for a .npy file 'shape', 'dtype'} of one file."""
  entry: Dict[str, Any] = {"bytes": os.path.getsize(path), "sha256": _sha256(path, bar)}
  if path.endswith(".npy"):
    entry.update(_npy_header(path))
  return entry


def annotation_counts(data_dir: str, dataset: str, layout: str = "auto"
                      ) -> Dict[str, Any]:
  """What the folder's annotations count: {'layout', 'annotation_file' (relative),
  'classes' [names], 'videos' {split: n}, 'instances' {split: n},
  'instances_per_class' {class: n}}.

  Raises:
    DataError: the folder cannot be opened in a layout.
  """
  source = layouts.open_source(data_dir, dataset, layout)
  videos, instances = {}, {}
  per_class = collections.Counter({c: 0 for c in source.class_names})
  for split in SPLITS:
    names = list(dict.fromkeys(source.video_names(split)))
    videos[split] = len(names)
    instances[split] = 0
    for name in names:
      annotation = source.annotation(name)
      if annotation is None:
        continue
      instances[split] += len(annotation.segment_labels)
      per_class.update(annotation.segment_labels)
  return {"layout": source.layout,
          "annotation_file": os.path.relpath(source.annotation_file, data_dir).replace(
              os.sep, "/"),
          "classes": list(source.class_names), "videos": videos, "instances": instances,
          "instances_per_class": dict(per_class)}


def _hashing_bar(data_dir: str, files: List[str], label: str) -> progress_bar.ProgressBar:
  total = sum(_mib(os.path.getsize(os.path.join(data_dir, f))) for f in files)
  return progress_bar.ProgressBar(total=total, label=label, unit="MiB")


def make_manifest(data_dir: PathLike, dataset: str, layout: str = "auto",
                  skip: Optional[PathLike] = None) -> Dict[str, Any]:
  """The manifest of the folder (module docstring) as a JSON-ready dict.

  Args:
    data_dir: the data folder.
    dataset: 'thumos14', 'activitynet12' or 'activitynet13'.
    layout: the folder's layout ('auto' detects it).
    skip: a file to leave out (the manifest being written into the folder).

  Raises:
    DataError: the folder is missing or cannot be opened in a layout (its
      annotation counts are part of the manifest).
  """
  data_dir = os.path.abspath(os.path.expanduser(os.fspath(data_dir)))
  annotations = annotation_counts(data_dir, dataset, layout)
  files = list_files(data_dir, os.fspath(skip) if skip else None)
  entries = {}
  with _hashing_bar(data_dir, files, "hashing") as bar:
    for rel in files:
      entries[rel] = file_entry(os.path.join(data_dir, rel), bar)
  return {"format": FORMAT, "dataset": dataset, "annotations": annotations,
          "files": entries}


def write_manifest(path: PathLike, manifest: Dict[str, Any]) -> None:
  """Writes `manifest` as JSON (through a temporary file, renamed when complete)."""
  path = os.fspath(path)
  folder = os.path.dirname(os.path.abspath(path))
  os.makedirs(folder, exist_ok=True)
  tmp = f"{path}.tmp-{os.getpid()}"
  try:
    with open(tmp, "w", encoding="utf-8") as f:
      json.dump(manifest, f, indent=1, sort_keys=False)
      f.write("\n")
    os.replace(tmp, path)
  finally:
    if os.path.exists(tmp):
      os.remove(tmp)


def read_manifest(path: PathLike) -> Dict[str, Any]:
  """A manifest file, checked to be one.

  Raises:
    ManifestError: missing, unreadable, or not a salx manifest.
  """
  path = os.fspath(path)
  try:
    with open(path, encoding="utf-8") as f:
      manifest = json.load(f)
  except FileNotFoundError:
    raise ManifestError(f"{path}: manifest not found", path) from None
  except (OSError, ValueError) as e:
    raise ManifestError(f"{path}: unreadable manifest ({e})", path) from None
  if (not isinstance(manifest, dict) or manifest.get("format") != FORMAT
      or not isinstance(manifest.get("files"), dict)
      or not all(isinstance(v, dict) for v in manifest["files"].values())):
    raise ManifestError(f"{path}: not a salx manifest (format {FORMAT!r}, written by "
                        "python -m salx.datasets.check --write_manifest)", path)
  return manifest


def _short(digest: Any) -> str:
  return str(digest)[:12]


def _count_differences(file: str, theirs: Dict[str, Any],
                       ours: Dict[str, Any]) -> Iterator[Problem]:
  for key, what in (("layout", "layout"), ("classes", "class list")):
    if theirs.get(key) != ours.get(key):
      yield Problem(file, f"{what} differs: {theirs.get(key)!r} in the manifest, "
                          f"{ours.get(key)!r} here")
  for key, what in (("videos", "videos"), ("instances", "instances")):
    mine, other = ours.get(key) or {}, theirs.get(key) or {}
    for split in SPLITS:
      if mine.get(split) != other.get(split):
        yield Problem(file, f"{split} split {what}: {other.get(split)} in the manifest, "
                            f"{mine.get(split)} here")
  mine, other = ours.get("instances_per_class") or {}, theirs.get("instances_per_class") or {}
  for name in sorted(set(mine) | set(other)):
    if mine.get(name) != other.get(name):
      yield Problem(file, f"class {name}: {other.get(name, 0)} instances in the manifest, "
                          f"{mine.get(name, 0)} here")


def compare(data_dir: PathLike, manifest: Dict[str, Any], dataset: Optional[str] = None,
            layout: str = "auto", skip: Optional[PathLike] = None
            ) -> Iterator[Problem]:
  """Every difference between the folder and `manifest`, one `Problem` each, as found.

  Files: missing here, extra here, different size, contents (sha256), .npy shape
  or dtype. Annotations: the layout, classes, videos and instances per split,
  instances per class (a folder that does not open is one difference).

  Args:
    data_dir: the folder to compare.
    manifest: a manifest (`read_manifest`).
    dataset: the folder's dataset (default: the manifest's).
    layout: the folder's layout ('auto' detects it).
    skip: a file of the folder to leave out (the manifest itself).
  """
  data_dir = os.path.abspath(os.path.expanduser(os.fspath(data_dir)))
  dataset = dataset or manifest.get("dataset")
  theirs = manifest.get("annotations") or {}
  if dataset != manifest.get("dataset"):
    yield Problem(data_dir, f"dataset {dataset!r} here, {manifest.get('dataset')!r} in "
                            "the manifest")
  try:
    ours = annotation_counts(data_dir, dataset, layout)
  except (DataError, ValueError) as e:
    yield Problem(data_dir, f"its annotations cannot be read ({e})")
  else:
    yield from _count_differences(os.path.join(data_dir, ours["annotation_file"]),
                                  theirs, ours)
  expected = manifest["files"]
  present = list_files(data_dir, os.fspath(skip) if skip else None) if os.path.isdir(
      data_dir) else []
  for rel in sorted(set(expected) - set(present)):
    yield Problem(os.path.join(data_dir, rel), "in the manifest, missing here")
  for rel in sorted(set(present) - set(expected)):
    yield Problem(os.path.join(data_dir, rel), "here, not in the manifest")
  both = [rel for rel in present if rel in expected]
  with _hashing_bar(data_dir, both, "comparing") as bar:
    for rel in both:
      path, want = os.path.join(data_dir, rel), expected[rel]
      size = os.path.getsize(path)
      if want.get("bytes") != size:
        bar.update(_mib(size))
        got = {"bytes": size, **(_npy_header(path) if rel.endswith(".npy") else {})}
        yield Problem(path, f"size {size} bytes here, {want.get('bytes')} in the "
                            "manifest" + _header_difference(want, got))
        continue
      got = file_entry(path, bar)
      if got["sha256"] != want.get("sha256"):
        yield Problem(path, f"contents differ: sha256 {_short(got['sha256'])}... here, "
                            f"{_short(want.get('sha256'))}... in the manifest"
                            + _header_difference(want, got))


def _header_difference(want: Dict[str, Any], got: Dict[str, Any]) -> str:
  parts = []
  for key in ("shape", "dtype"):
    if key in want or key in got:
      if want.get(key) != got.get(key):
        parts.append(f"{key} {got.get(key)} here, {want.get(key)} in the manifest")
  return ("; " + "; ".join(parts)) if parts else ""
