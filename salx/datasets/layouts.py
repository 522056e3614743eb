"""The registry of the on-disk layouts of pre-extracted I3D features.

Researchers hold the features (SPEC: 16-frame snippets at 25 fps, 2048 dims, RGB
first) in one of three layouts; `open_source` reads each (detecting which one a
folder holds) and `write_layout` writes each:
  'sal'     SAL, BaS-Net, UM: per-video RGB and flow files (`sal_layout`);
  'wtalc'   W-TALC, CO2-Net, DELU, DDG-Net: one pickled feature array and
            per-video annotation arrays (`wtalc_layout`);
  'acmnet'  ACM-Net (used for ActivityNet 1.3): one [L, 2048] file per video
            (`acmnet_layout`).
The reading interface is `source.FeatureSource`. Every layout may also hold a
`classlist.txt` (or BSN's `action_name.csv`) stating the class order; see
`salx.datasets.classes` for the defaults.
"""

from __future__ import annotations

import os
from typing import Iterable, Mapping, Optional, Sequence

from salx.core import constants
from salx.datasets import acmnet_layout
from salx.datasets import errors
from salx.datasets import sal_layout
from salx.datasets import source
from salx.datasets import wtalc_layout

DATASETS = ("thumos14", "activitynet12", "activitynet13")
LAYOUTS = ("sal", "wtalc", "acmnet")

SOURCES = {"sal": sal_layout.SalSource, "wtalc": wtalc_layout.WtalcSource,
           "acmnet": acmnet_layout.AcmNetSource}
WRITERS = {"sal": sal_layout.write_sal_layout,
           "wtalc": wtalc_layout.write_wtalc_layout,
           "acmnet": acmnet_layout.write_acmnet_layout}

# What each layout holds, for error messages.
LAYOUT_DESCRIPTIONS = "; ".join(
    f"{name!r}: {module.DESCRIPTION}" for name, module in
    (("sal", sal_layout), ("wtalc", wtalc_layout), ("acmnet", acmnet_layout)))

SYNTHETIC_HINT = ("to try salx without the real features, run with "
                  "--config=configs/synthetic.py")


def missing_dir_message(data_dir: str) -> str:
  """Why `data_dir` (not a directory) cannot be read: missing, or another kind of file."""
  if not os.path.lexists(data_dir):
    return f"data directory {data_dir} does not exist"
  if os.path.islink(data_dir) and not os.path.exists(data_dir):
    return f"data directory {data_dir} is a broken symbolic link"
  kind = "a regular file" if os.path.isfile(data_dir) else "a device, pipe or socket"
  return f"data directory {data_dir} is not a directory ({kind})"


def _missing_dir_error(data_dir: str, layout: str) -> errors.DataError:
  expected = LAYOUT_DESCRIPTIONS if layout == "auto" else f"the {layout!r} layout"
  return errors.DataError(f"{missing_dir_message(data_dir)}; expected {expected}; "
                          f"{SYNTHETIC_HINT}", data_dir)


def detect_layout(data_dir: errors.PathLike) -> str:
  """'sal', 'wtalc' or 'acmnet': the layout of the data folder `data_dir`.

  Raises:
    DataError: the folder does not exist, cannot be listed, or matches no layout.
  """
  data_dir = os.fspath(data_dir)
  if not os.path.isdir(data_dir):
    raise _missing_dir_error(data_dir, "auto")
  try:
    entries = set(os.listdir(data_dir))
  except OSError as e:
    raise errors.DataError(f"{data_dir}: cannot list the data folder ({e})",
                           data_dir) from e
  if any(e.endswith(wtalc_layout.FEATURE_SUFFIX)
         or e.endswith(wtalc_layout.ANNOTATION_SUFFIX) for e in entries):
    return "wtalc"
  if os.path.isdir(os.path.join(data_dir, "features")):
    return "sal"
  if any(os.path.isdir(os.path.join(data_dir, s)) for s in constants.SPLITS):
    return "acmnet"
  raise errors.DataError(f"{data_dir}: matches none of the feature layouts ("
                         f"{LAYOUT_DESCRIPTIONS}); {SYNTHETIC_HINT}", data_dir)


def open_source(data_dir: errors.PathLike, dataset: str, layout: str = "auto",
                class_names: Optional[Sequence[str]] = None,
                feature_dim: int = constants.FEATURE_DIM) -> source.FeatureSource:
  """The `FeatureSource` reading `dataset` from the folder `data_dir`.

  Args:
    data_dir: the data folder.
    dataset: 'thumos14', 'activitynet12' or 'activitynet13'.
    layout: 'sal', 'wtalc', 'acmnet', or 'auto' to detect it.
    class_names: the class order; by default the folder's classlist.txt /
      action_name.csv / W-TALC classlist.npy, else the dataset's default.
    feature_dim: the width of a feature vector (2048 for I3D).

  Raises:
    ValueError: unknown dataset or layout.
    DataError: missing folder or files, or malformed annotations.
  """
  if dataset not in DATASETS:
    raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")
  if layout != "auto" and layout not in LAYOUTS:
    raise ValueError(f"unknown layout {layout!r}; expected 'auto' or one of {LAYOUTS}")
  data_dir = os.path.expanduser(os.fspath(data_dir))
  if not os.path.isdir(data_dir):
    raise _missing_dir_error(data_dir, layout)
  if layout == "auto":
    layout = detect_layout(data_dir)
  return SOURCES[layout](data_dir, dataset, class_names=class_names,
                         feature_dim=feature_dim)


def write_layout(layout: str, out_dir: errors.PathLike,
                 videos: Iterable[source.VideoRecord],
                 splits: Mapping[str, Sequence[str]], class_names: Sequence[str],
                 dataset: str = "thumos14") -> str:
  """Writes `videos` in `layout` into `out_dir` and returns `out_dir`.

  Args:
    layout: 'sal', 'wtalc' or 'acmnet'.
    out_dir, videos, splits, class_names: see `sal_layout.write_sal_layout`.
    dataset: the dataset, which names the files of the 'wtalc' layout (the other
      layouts do not depend on it).

  Raises:
    ValueError: unknown layout or dataset.
    DataError: see the layout's writer.
  """
  if layout not in WRITERS:
    raise ValueError(f"unknown layout {layout!r}; expected one of {LAYOUTS}")
  if dataset not in DATASETS:
    raise ValueError(f"unknown dataset {dataset!r}; expected one of {DATASETS}")
  if layout == "wtalc":
    return wtalc_layout.write_wtalc_layout(out_dir, videos, splits, class_names,
                                           dataset)
  return WRITERS[layout](out_dir, videos, splits, class_names)
