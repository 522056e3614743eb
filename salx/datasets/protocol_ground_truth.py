"""Each evaluation protocol's ground truth, from the files it names.

    load_ground_truth("activitynet", "gt.json")                 # GroundTruth
    load_ground_truth("thumos14_official", "official/test/")     # OfficialGroundTruth
    load_ground_truth("wtalc", "Thumos14reduced-Annotations/")   # GroundTruth

The W-TALC annotations are .npy arrays read by `salx.datasets.wtalc_annotations`,
hence this module at the datasets tier; the other formats are plain text and
JSON, read in `salx.postprocess`.
"""

from __future__ import annotations

import dataclasses
import os
from typing import Mapping, Union

import numpy as np

from salx.datasets.errors import DataError, PathLike
from salx.datasets.wtalc_annotations import field_file, read_wtalc_annotations
from salx.postprocess import ground_truth as ground_truth_lib
from salx.postprocess import inputs
from salx.postprocess import protocols
from salx.postprocess import thumos14_kit
from salx.postprocess import wtalc_eval
from salx.postprocess.ground_truth import GroundTruth
from salx.postprocess.inputs import EvalInputError


def wtalc_ground_truth(annotation_dir: PathLike, subset: str = "test") -> GroundTruth:
  """Ground truth (seconds) as W-TALC's evaluator reads it (SPEC-CO2NET-DELU 6.2).

  The videos of `subset` with at least one segment, in file order; their
  instances in file order; classes in classlist.npy order.

  Raises:
    EvalInputError: a missing or malformed file, a label outside classlist.npy,
      an empty subset.
  """
  annotation_dir = os.fspath(annotation_dir)
  try:
    content = read_wtalc_annotations(annotation_dir)
  except DataError as e:
    raise EvalInputError(str(e)) from None
  classes = {c: i for i, c in enumerate(content.class_names)}
  videos, video, label, start, end = [], [], [], [], []
  for name, entry_subset in zip(content.names, content.subsets):
    annotation = content.annotations[name]
    if entry_subset != subset or not len(annotation.segments) or name in videos:
      continue
    for c in annotation.segment_labels:
      if c not in classes:
        raise EvalInputError(f"{field_file(annotation_dir, 'labels')}: video {name}: "
                             f"label {c!r} is not in classlist.npy")
    video += [len(videos)] * len(annotation.segments)
    videos.append(name)
    label += [classes[c] for c in annotation.segment_labels]
    start += annotation.segments[:, 0].tolist()
    end += annotation.segments[:, 1].tolist()
  if not videos:
    raise EvalInputError(f"{field_file(annotation_dir, 'subset')}: no video of subset "
                         f"{subset!r} has a segment")
  return GroundTruth(annotation_dir, subset, tuple(videos), content.class_names,
                     np.asarray(video, np.int64), np.asarray(label, np.int64),
                     np.asarray(start, np.float64), np.asarray(end, np.float64))


def load_ground_truth(protocol: Union[str, protocols.Protocol], path: PathLike,
                      subset: str = "test"
                      ) -> Union[GroundTruth, thumos14_kit.OfficialGroundTruth]:
  """The ground truth `protocol` evaluates against, from `path`.

  Args:
    protocol: 'activitynet' (an ActivityNet JSON such as gt.json),
      'thumos14_official' (the official per-class folder), 'wtalc' (a W-TALC
      annotations folder; or a JSON with W-TALC's 'class_names' and
      'ground_truth' {'videos'} blocks, as the W-TALC evaluation fixture holds;
      or an ActivityNet JSON of the same videos).
    path: the file or folder.
    subset: the evaluated subset.
  Raises:
    EvalInputError: a file or folder the protocol cannot read; the message names it.
    ValueError: an unknown protocol.
  """
  protocol = protocols.get_protocol(protocol)
  path = os.fspath(path)
  folder = os.path.isdir(path)
  if protocol.name == protocols.THUMOS14_OFFICIAL.name:
    return thumos14_kit.load_official_ground_truth(path, subset)
  if protocol.name == protocols.WTALC.name:
    if folder:
      return wtalc_ground_truth(path, subset)
    _, data = inputs.source_and_data(path)
    try:
      if isinstance(data, Mapping) and "ground_truth" in data:
        gt = wtalc_eval.ground_truth_from_json(data, subset)
      else:
        gt = ground_truth_lib.load_ground_truth(data, subset)
    except EvalInputError as e:
      raise EvalInputError(str(e).replace("<dict>", path, 1)) from None
    return dataclasses.replace(gt, source=os.path.basename(path))
  if folder:
    raise EvalInputError(f"{path}: protocol {protocol.name} reads {protocol.ground_truth}, "
                         "not a folder")
  return ground_truth_lib.load_ground_truth(path, subset)

