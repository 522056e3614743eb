"""Synthetic I3D-like feature datasets, written in any of the real layouts.

Two uses:
  - the demo dataset (`SyntheticSpec()` defaults): 5 classes, 60 train and 30 test
    videos of 100-300 snippets, 2048-d features (~130 MB on disk), on which a small
    SAL model learns to localize within minutes on a CPU;
  - a stand-in for a real benchmark: with `annotations=` (an ActivityNet-style
    gt.json), the dataset copies the real videos, their lengths
    (L = floor(duration * 25 / 16)) and their instances, and only the features are
    synthetic. Useful to exercise the full pipeline and the three layouts without the
    real features.

How a video's features are made ([L, D], the first D/2 dims "RGB", the rest "flow"):
  features = feature_scale * (background + noise + action + context + scene)
  - background: a blend of two of `num_background_patterns` random patterns that
    drifts from one to the other at a random time, so backgrounds vary per video;
  - noise: per-dim Gaussian with std `noise_std`, smoothed in time by an AR(1)
    process with coefficient `noise_smoothness`;
  - action: the class prototype times the instance envelope (the fraction of each
    snippet the instance covers, times a per-instance strength in
    1 +- `instance_strength_jitter`), amplitude `action_strength` in flow and
    `action_strength * rgb_action_ratio` in RGB. Prototypes of different classes share
    a fraction `class_similarity` of their energy;
  - context (confusion near actions): the same class prototype, fading linearly over
    `context_length` snippets on both sides of every instance, amplitude
    `context_strength` in RGB and `context_strength * context_flow_ratio` in flow;
  - scene: a class-specific RGB vector present in every snippet of a video that
    contains the class, amplitude `scene_strength` (a shortcut for classification
    that does not localize).
All patterns have unit RMS per dim, so amplitudes compare directly with `noise_std`.
Generation is deterministic for a seed, and each video depends only on the seed and
its own name and index, not on how many videos are made.

Difficulty, as measured on the demo dataset with salx's SAL (hidden 64, T = 256,
batch 8, Adam 1e-4, THUMOS14 inference; 2 CPU cores): untrained average
mAP(0.1:0.7) 0.005; after 250 steps (~2.5 min) 0.58 (seed 0) and 0.68 (seed 1),
mAP@0.7 still only ~0.2-0.35. To make it harder, lower `action_strength` or raise
`noise_std`; `context_strength` blurs boundaries (hurts high tIoU);
`short_instance_prob` adds instances shorter than a few snippets; `scene_strength`
rewards whole-video (non-localizing) evidence.
"""

from __future__ import annotations

import argparse
import csv
import dataclasses
import json
import math
import os
import shutil
import sys
import tempfile
import zlib
from typing import Dict, Iterator, List, Mapping, Optional, Sequence, Tuple

import numpy as np

from salx.datasets import classes
from salx.datasets import layouts
from salx.datasets.errors import DataError, PathLike

PROVENANCE_FILE = "SYNTHETIC.json"
_FORMAT_VERSION = 1
_WRITERS = {"sal": layouts.write_sal_layout, "acmnet": layouts.write_acmnet_layout,
            "wtalc": layouts.write_wtalc_layout}
# Snippets of margin kept before the first instance when a long video is cropped.
_CROP_MARGIN = 4
# Mixed into the seed of each video's plan, so train and test videos differ.
SPLIT_CODES = {"train": 1, "test": 2}


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
  """What a synthetic dataset looks like. Lengths are in snippets (0.64 s each).

  Structure (ignored when copying a real dataset's annotations):
    seed: the seed of everything random.
    num_classes, num_train, num_test: classes, train and test videos.
    min_length, max_length: video length range (log-uniform).
    second_class_prob: chance that a video holds a second action class.
    min_instances, max_instances: instances per class present in a video.
    min_instance_length, max_instance_length: instance length range (log-uniform).
    short_instance_prob: chance that an instance is short instead, 1 to
      `min_instance_length` snippets (hard to localize).
    max_action_fraction: no more instances are placed once they cover this fraction.
  Features (difficulty knobs; see the module docstring):
    feature_dim: D, even; 2048 for the real layouts.
    action_strength: prototype amplitude at an instance's core, flow half.
    rgb_action_ratio: RGB amplitude of actions relative to flow.
    instance_strength_jitter: instance strengths vary in 1 +- this.
    class_similarity: energy fraction the class prototypes share (0: unrelated).
    context_strength: RGB amplitude of the class prototype next to instances.
    context_flow_ratio: flow amplitude of context relative to RGB.
    context_length: snippets of context on each side of an instance.
    scene_strength: amplitude of the class-specific RGB scene vector.
    background_strength: amplitude of the background patterns.
    num_background_patterns: how many background patterns videos draw from.
    noise_std: per-dim standard deviation of the noise (signal-to-noise is
      action_strength / noise_std per dim).
    noise_smoothness: AR(1) coefficient of the noise along time, in [0, 1).
    feature_scale: overall factor on the features (their norm).
  """
  seed: int = 0
  num_classes: int = 5
  num_train: int = 60
  num_test: int = 30
  min_length: int = 100
  max_length: int = 300
  second_class_prob: float = 0.15
  min_instances: int = 1
  max_instances: int = 5
  min_instance_length: float = 4.0
  max_instance_length: float = 30.0
  short_instance_prob: float = 0.2
  max_action_fraction: float = 0.5
  feature_dim: int = 2048
  action_strength: float = 0.5
  rgb_action_ratio: float = 0.6
  instance_strength_jitter: float = 0.3
  class_similarity: float = 0.3
  context_strength: float = 0.3
  context_flow_ratio: float = 0.3
  context_length: int = 6
  scene_strength: float = 0.3
  background_strength: float = 1.0
  num_background_patterns: int = 12
  noise_std: float = 1.0
  noise_smoothness: float = 0.6
  feature_scale: float = 0.5

  def __post_init__(self):
    problems = []
    if self.feature_dim < 2 or self.feature_dim % 2:
      problems.append(f"feature_dim must be even and >= 2, got {self.feature_dim}")
    if not 1 <= self.min_length <= self.max_length:
      problems.append("need 1 <= min_length <= max_length")
    if not 1 <= self.min_instances <= self.max_instances:
      problems.append("need 1 <= min_instances <= max_instances")
    if not 1 <= self.min_instance_length <= self.max_instance_length:
      problems.append("need 1 <= min_instance_length <= max_instance_length")
    if self.num_classes < 1 or self.num_train < 0 or self.num_test < 0:
      problems.append("need num_classes >= 1 and num_train, num_test >= 0")
    if not 0 <= self.noise_smoothness < 1:
      problems.append("noise_smoothness must be in [0, 1)")
    if not 0 <= self.class_similarity < 1:
      problems.append("class_similarity must be in [0, 1)")
    if self.num_background_patterns < 2:
      problems.append("num_background_patterns must be >= 2")
    if problems:
      raise ValueError("invalid SyntheticSpec: " + "; ".join(problems))


@dataclasses.dataclass(frozen=True)
class VideoPlan:
  """A video before its features are drawn.

  Attributes:
    name: video name.
    split: 'train' or 'test'.
    length: L, snippets.
    segments: [N, 2] float64 instances in seconds.
    segment_labels: N class names.
    duration: seconds; floor(duration * 25 / 16) == length.
  """
  name: str
  split: str
  length: int
  segments: np.ndarray
  segment_labels: Tuple[str, ...]
  duration: float


# ---------------------------------------------------------------------------
# Plans: which videos, how long, which instances.


def synthetic_class_names(num_classes: int) -> Tuple[str, ...]:
  return tuple(f"action_{c:02d}" for c in range(num_classes))


def _log_uniform(rng: np.random.Generator, low: float, high: float) -> float:
  return float(math.exp(rng.uniform(math.log(low), math.log(high))))


def _instance_length(spec: SyntheticSpec, rng: np.random.Generator) -> float:
  """An instance length in snippets."""
  if spec.min_instance_length > 1 and rng.random() < spec.short_instance_prob:
    return float(rng.uniform(1.0, spec.min_instance_length))
  return _log_uniform(rng, spec.min_instance_length, spec.max_instance_length)


def _place_instances(spec: SyntheticSpec, rng: np.random.Generator, length: int,
                     video_classes: Sequence[int]) -> List[Tuple[float, float, int]]:
  """Non-overlapping instances (start, end in snippets, class), sorted by start.

  Every class of `video_classes` gets one instance whenever there is room for it
  (100 random tries), more while they cover less than `max_action_fraction`.
  """
  placed: List[Tuple[float, float, int]] = []
  wanted = [(c, int(rng.integers(spec.min_instances, spec.max_instances + 1)))
            for c in video_classes]
  for c, count in wanted:
    for k in range(count):
      covered = sum(e - s for s, e, _ in placed)
      if k > 0 and covered >= spec.max_action_fraction * length:
        break
      for _ in range(100):
        size = min(_instance_length(spec, rng), length / 4)
        start = float(rng.uniform(0, length - size))
        if all(start + size + 1 <= s or start >= e + 1 for s, e, _ in placed):
          placed.append((start, start + size, c))
          break
  return sorted(placed)


def _plan_synthetic_video(spec: SyntheticSpec, split: str, index: int,
                          class_names: Sequence[str]) -> VideoPlan:
  rng = np.random.default_rng([spec.seed, SPLIT_CODES[split], index])
  length = int(round(_log_uniform(rng, spec.min_length, spec.max_length)))
  first = int(rng.integers(spec.num_classes))
  video_classes = [first]
  if spec.num_classes > 1 and rng.random() < spec.second_class_prob:
    video_classes.append(int((first + rng.integers(1, spec.num_classes))
                             % spec.num_classes))
  instances = _place_instances(spec, rng, length, video_classes)
  seconds = layouts.SECONDS_PER_SNIPPET
  return VideoPlan(
      name=f"synthetic_{split}_{index:04d}", split=split, length=length,
      segments=np.array([[s * seconds, e * seconds] for s, e, _ in instances],
                        np.float64).reshape(-1, 2),
      segment_labels=tuple(class_names[c] for _, _, c in instances),
      duration=(length + float(rng.uniform(0.0, 0.99))) * seconds)


def plan_synthetic_videos(spec: SyntheticSpec) -> Tuple[List[VideoPlan], Tuple[str, ...]]:
  """(plans, class names) of a purely synthetic dataset."""
  class_names = synthetic_class_names(spec.num_classes)
  plans = [_plan_synthetic_video(spec, split, i, class_names)
           for split, count in (("train", spec.num_train), ("test", spec.num_test))
           for i in range(count)]
  return plans, class_names


def read_video_durations(path: PathLike) -> Dict[str, float]:
  """{video: seconds} from a CSV with a 'video' column and a duration column.

  The duration column is the first of 'duration_s' (salx's THUMOS14
  video_info.csv), 'duration', 'seconds' (BSN's video_info_new.csv).
  """
  path = os.fspath(path)
  try:
    with open(path, newline="", encoding="utf-8") as f:
      rows = list(csv.DictReader(f))
  except OSError as e:
    raise DataError(f"{path}: cannot read video info ({e})", path) from e
  columns = rows[0].keys() if rows else ()
  duration_column = next((c for c in ("duration_s", "duration", "seconds")
                          if c in columns), None)
  if "video" not in columns or duration_column is None:
    raise DataError(f"{path}: needs a 'video' column and one of 'duration_s', "
                    "'duration', 'seconds'", path)
  return {row["video"]: float(row[duration_column]) for row in rows}


def _split_of_subset(subset: Optional[str], dataset: str) -> Optional[str]:
  """The salx split of an annotation file's subset name (None: neither split)."""
  if subset in ("train", "training"):
    return "train"
  if subset == "test":
    return "test"
  if subset == "validation":
    return "train" if dataset == "thumos14" else "test"
  return None


def _annotation_splits(annotations: Mapping[str, layouts.VideoAnnotation],
                       dataset: str,
                       split_files: Optional[Mapping[str, PathLike]]
                       ) -> Dict[str, List[str]]:
  """Video names per split: from split files when given, else from the subsets."""
  if split_files:
    return {split: [n for n in layouts.read_split_file(split_files[split])
                    if n in annotations]
            for split in layouts.SPLITS if split in split_files}
  splits = {split: [] for split in layouts.SPLITS}
  for name, annotation in annotations.items():
    split = _split_of_subset(annotation.subset, dataset)
    if split is not None:
      splits[split].append(name)
  return splits


def _annotation_class_names(annotations: Mapping[str, layouts.VideoAnnotation],
                            dataset: str, class_list: Optional[PathLike]
                            ) -> Tuple[str, ...]:
  if class_list is not None:
    return classes.read_class_list(class_list)
  used = {label for a in annotations.values() for label in a.segment_labels}
  if dataset == "thumos14" and used <= set(classes.THUMOS14_CLASSES):
    return classes.THUMOS14_CLASSES
  return tuple(sorted(used))


def _video_duration(annotation: layouts.VideoAnnotation,
                    durations: Mapping[str, float]) -> float:
  """Known duration, else a little past the last instance."""
  if annotation.name in durations:
    return float(durations[annotation.name])
  if annotation.duration is not None:
    return float(annotation.duration)
  last_end = float(annotation.segments[:, 1].max()) if len(annotation.segments) else 0
  return max(last_end * 1.1 + 5.0, 10.0)


def _crop_window(segments: np.ndarray, length: int, max_snippets: int) -> int:
  """First snippet of a window of `max_snippets` that starts just before an instance."""
  if len(segments) == 0:
    return 0
  first = int(segments[:, 0].min() / layouts.SECONDS_PER_SNIPPET) - _CROP_MARGIN
  return max(0, min(length - max_snippets, first))


def _plan_from_annotation(annotation: layouts.VideoAnnotation, split: str,
                          durations: Mapping[str, float],
                          max_snippets: Optional[int]) -> Optional[VideoPlan]:
  """The plan copying a real video; None if nothing of it is left to copy.

  Instances are clipped to the video and empty or inverted ones are dropped, so the
  copy is clean. With `max_snippets`, a longer video is cropped to a window of that
  many snippets starting shortly before its first instance; the instances move with it.
  """
  duration = _video_duration(annotation, durations)
  length = layouts.snippets_for_duration(duration)
  segments = annotation.segments
  if max_snippets is not None and length > max_snippets:
    offset = _crop_window(segments, length, max_snippets) * layouts.SECONDS_PER_SNIPPET
    segments = segments - offset
    length = max_snippets
    duration = length * layouts.SECONDS_PER_SNIPPET
  if length < 1:
    return None
  clipped = np.clip(segments, 0.0, duration)
  keep = clipped[:, 1] > clipped[:, 0]
  if split == "train" and not keep.any():
    return None
  return VideoPlan(
      name=annotation.name, split=split, length=length, segments=clipped[keep],
      segment_labels=tuple(np.array(annotation.segment_labels, dtype=object)[keep]),
      duration=duration)


def plan_from_annotations(annotations_file: PathLike, dataset: str = "thumos14",
                          video_info: Optional[PathLike] = None,
                          split_files: Optional[Mapping[str, PathLike]] = None,
                          class_list: Optional[PathLike] = None,
                          max_videos: Optional[int] = None,
                          max_snippets: Optional[int] = None
                          ) -> Tuple[List[VideoPlan], Tuple[str, ...]]:
  """(plans, class names) copying the videos and instances of a real dataset.

  Args:
    annotations_file: ActivityNet-style gt.json.
    dataset: which benchmark (subset names, default class order).
    video_info: CSV of true durations (see `read_video_durations`); otherwise the
      gt.json durations, otherwise a little past the last instance.
    split_files: {'train': path, 'test': path}; otherwise the gt.json subsets
      ('train'/'training', 'test', and 'validation' = train for THUMOS14, test for
      ActivityNet). Videos absent from the gt.json are skipped.
    class_list: classlist.txt / action_name.csv; otherwise THUMOS14's classes or the
      sorted labels of the file.
    max_videos: at most this many videos of each split (the first ones).
    max_snippets: crop longer videos to this many snippets (for fast tests).
  """
  annotations = layouts.read_ground_truth_json(annotations_file)
  durations = read_video_durations(video_info) if video_info else {}
  class_names = _annotation_class_names(annotations, dataset, class_list)
  plans = []
  for split, names in _annotation_splits(annotations, dataset, split_files).items():
    taken = 0
    for name in names:
      if max_videos is not None and taken >= max_videos:
        break
      plan = _plan_from_annotation(annotations[name], split, durations, max_snippets)
      if plan is not None:
        plans.append(plan)
        taken += 1
  return plans, class_names


# ---------------------------------------------------------------------------
# Features.


def _unit_rms(rng: np.random.Generator, *shape: int) -> np.ndarray:
  """Gaussian vectors rescaled to exactly unit RMS along the last axis."""
  x = rng.standard_normal(shape)
  return x / np.sqrt(np.mean(x * x, axis=-1, keepdims=True))


@dataclasses.dataclass(frozen=True)
class _World:
  """The fixed patterns shared by all videos of a dataset.

  prototypes: [C, D] class prototypes (unit RMS per half).
  scenes: [C, D / 2] class scene vectors of the RGB half.
  backgrounds: [K, D] background patterns.
  """
  prototypes: np.ndarray
  scenes: np.ndarray
  backgrounds: np.ndarray


def class_prototypes(spec: SyntheticSpec, num_classes: int) -> np.ndarray:
  """[C, D] class prototypes: each half has unit RMS per dim.

  Class c's prototype depends only on the seed and c; classes share the fraction
  `class_similarity` of their energy.
  """
  half = spec.feature_dim // 2
  shared = _unit_rms(np.random.default_rng([spec.seed, 11]), 2, half)
  rows = []
  for c in range(num_classes):
    own = _unit_rms(np.random.default_rng([spec.seed, 12, c]), 2, half)
    mixed = (math.sqrt(1 - spec.class_similarity) * own
             + math.sqrt(spec.class_similarity) * shared)
    rows.append(mixed / np.sqrt(np.mean(mixed * mixed, axis=-1, keepdims=True)))
  return np.stack([np.concatenate(r) for r in rows]).astype(np.float64)


def _make_world(spec: SyntheticSpec, num_classes: int) -> _World:
  half = spec.feature_dim // 2
  scenes = np.stack([_unit_rms(np.random.default_rng([spec.seed, 13, c]), half)
                     for c in range(num_classes)]) if num_classes else np.zeros((0, half))
  backgrounds = _unit_rms(np.random.default_rng([spec.seed, 14]),
                          spec.num_background_patterns, spec.feature_dim)
  return _World(class_prototypes(spec, num_classes), scenes, backgrounds)


def _snippet_overlap(length: int, start: float, end: float) -> np.ndarray:
  """[L] fraction of each snippet covered by [start, end] (in snippets)."""
  left = np.arange(length, dtype=np.float64)
  return np.clip(np.minimum(end, left + 1) - np.maximum(start, left), 0.0, 1.0)


def _context_ramp(length: int, start: float, end: float, width: int) -> np.ndarray:
  """[L] 1 - d / (width + 1) at distance d snippets outside [start, end], else 0."""
  if width <= 0:
    return np.zeros(length)
  centers = np.arange(length, dtype=np.float64) + 0.5
  distance = np.maximum(start - centers, centers - end)
  ramp = 1.0 - distance / (width + 1)
  return np.where(distance > 0, np.clip(ramp, 0.0, 1.0), 0.0)


def _envelopes(plan: VideoPlan, column: Mapping[str, int], num_columns: int,
               spec: SyntheticSpec, rng: np.random.Generator
               ) -> Tuple[np.ndarray, np.ndarray]:
  """([L, P] action envelope, [L, P] context envelope); `column` maps labels to P."""
  action = np.zeros((plan.length, num_columns))
  context = np.zeros((plan.length, num_columns))
  for (start, end), label in zip(plan.segments / layouts.SECONDS_PER_SNIPPET,
                                 plan.segment_labels):
    c = column[label]
    strength = 1.0 + spec.instance_strength_jitter * rng.uniform(-1.0, 1.0)
    action[:, c] += strength * _snippet_overlap(plan.length, start, end)
    context[:, c] = np.maximum(
        context[:, c], _context_ramp(plan.length, start, end, spec.context_length))
  return np.minimum(action, 1.0 + spec.instance_strength_jitter), context


def _background(world: _World, spec: SyntheticSpec, length: int,
                rng: np.random.Generator) -> np.ndarray:
  """[L, D] drift between two background patterns."""
  first, second = rng.choice(spec.num_background_patterns, size=2, replace=False)
  switch = rng.uniform(0, length)
  width = rng.uniform(5.0, 40.0)
  t = np.arange(length, dtype=np.float64)[:, None]
  weight = 1.0 / (1.0 + np.exp(-(t - switch) / width))
  blend = (1 - weight) * world.backgrounds[first] + weight * world.backgrounds[second]
  return spec.background_strength * blend


def _smooth_noise(spec: SyntheticSpec, length: int, rng: np.random.Generator
                  ) -> np.ndarray:
  """[L, D] AR(1) Gaussian noise with per-dim std `noise_std`."""
  white = rng.standard_normal((length, spec.feature_dim)) * spec.noise_std
  rho = spec.noise_smoothness
  if rho == 0:
    return white
  noise = np.empty_like(white)
  noise[0] = white[0]
  innovation = math.sqrt(1 - rho * rho)
  for t in range(1, length):
    noise[t] = rho * noise[t - 1] + innovation * white[t]
  return noise


def render_features(plan: VideoPlan, class_names: Sequence[str], spec: SyntheticSpec,
                    world: Optional[_World] = None) -> np.ndarray:
  """[L, D] float32 synthetic features of `plan` (deterministic for seed and name)."""
  world = world if world is not None else _make_world(spec, len(class_names))
  rng = np.random.default_rng([spec.seed, 7, zlib.crc32(plan.name.encode("utf-8"))])
  half = spec.feature_dim // 2
  index = classes.class_index(class_names)
  present = sorted({index[label] for label in plan.segment_labels})
  column = {class_names[c]: j for j, c in enumerate(present)}
  action, context = _envelopes(plan, column, len(present), spec, rng)   # [L, P]
  prototypes = world.prototypes[present]                                # [P, D]
  features = _background(world, spec, plan.length, rng)
  features += _smooth_noise(spec, plan.length, rng)
  features[:, :half] += (spec.action_strength * spec.rgb_action_ratio * action
                         + spec.context_strength * context) @ prototypes[:, :half]
  features[:, half:] += (spec.action_strength * action
                         + spec.context_strength * spec.context_flow_ratio * context
                         ) @ prototypes[:, half:]
  features[:, :half] += spec.scene_strength * world.scenes[present].sum(axis=0)
  return (spec.feature_scale * features).astype(np.float32)


def generate_records(plans: Sequence[VideoPlan], class_names: Sequence[str],
                     spec: SyntheticSpec) -> Iterator[layouts.VideoRecord]:
  """The `VideoRecord` of each plan, made one at a time."""
  world = _make_world(spec, len(class_names))
  for plan in plans:
    yield layouts.VideoRecord(
        name=plan.name, features=render_features(plan, class_names, spec, world),
        labels=classes.multi_hot(plan.segment_labels, class_names, "<plan>", plan.name),
        segments=plan.segments.copy(), segment_labels=tuple(plan.segment_labels),
        duration=float(plan.duration))


def estimated_size_bytes(plans: Sequence[VideoPlan], spec: SyntheticSpec) -> int:
  """Bytes of float32 features the plans take on disk (headers not counted)."""
  return sum(p.length for p in plans) * spec.feature_dim * 4


# ---------------------------------------------------------------------------
# Writing a dataset folder, atomically.


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


def write_plans(out_dir: PathLike, plans: Sequence[VideoPlan],
                class_names: Sequence[str], spec: SyntheticSpec, layout: str = "sal",
                dataset: str = "thumos14") -> str:
  """Renders `plans` and writes them in `layout` (no staging; see
  `make_synthetic_dataset` for the atomic, idempotent way). Returns `out_dir`."""
  splits = {split: [p.name for p in plans if p.split == split]
            for split in layouts.SPLITS}
  records = generate_records(plans, class_names, spec)
  if layout == "wtalc":
    return layouts.write_wtalc_layout(out_dir, records, splits, class_names,
                                      dataset=dataset)
  return _WRITERS[layout](out_dir, records, splits, class_names)


def _write_dataset(folder: str, spec: SyntheticSpec, layout: str, dataset: str,
                   plans: Sequence[VideoPlan], class_names: Sequence[str],
                   provenance: dict) -> None:
  write_plans(folder, plans, class_names, spec, layout, dataset)
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
                           overwrite: bool = False) -> str:
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
      see `plan_from_annotations` for this and the following arguments.
    dataset: 'thumos14', 'activitynet12' or 'activitynet13'.
    video_info, split_files, class_list, max_videos, max_snippets: see
      `plan_from_annotations` (`max_videos`, `max_snippets` apply to copies only).
    overwrite: replace whatever `out_dir` holds.
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
    plans, class_names = plan_synthetic_videos(spec)
  else:
    plans, class_names = plan_from_annotations(
        annotations, dataset, video_info, split_files, class_list, max_videos,
        max_snippets)
  parent = os.path.dirname(out_dir)
  os.makedirs(parent, exist_ok=True)
  staging = tempfile.mkdtemp(prefix=f".{os.path.basename(out_dir)}.partial-",
                             dir=parent)
  os.chmod(staging, 0o755)   # mkdtemp makes it private; a dataset is for reading.
  try:
    _write_dataset(staging, spec, layout, dataset, plans, class_names, provenance)
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


# ---------------------------------------------------------------------------
# Command line.


def _spec_arguments(parser: argparse.ArgumentParser) -> None:
  group = parser.add_argument_group("SyntheticSpec fields (defaults: the demo dataset)")
  for field in dataclasses.fields(SyntheticSpec):
    group.add_argument(f"--{field.name}", type=type(field.default), default=None,
                       help=f"default {field.default}")


def _parser() -> argparse.ArgumentParser:
  parser = argparse.ArgumentParser(
      prog="python -m salx.datasets.synthetic",
      description="Write a synthetic I3D-feature dataset in one of the real layouts.")
  parser.add_argument("--out", required=True, help="dataset folder to create")
  parser.add_argument("--layout", default="sal", choices=layouts.LAYOUTS)
  parser.add_argument("--dataset", default="thumos14", choices=layouts.DATASETS,
                      help="benchmark whose conventions to follow")
  parser.add_argument("--annotations", help="gt.json whose videos/instances to copy")
  parser.add_argument("--video_info", help="CSV of true durations (video, duration_s)")
  parser.add_argument("--split_train", help="split list of the train videos")
  parser.add_argument("--split_test", help="split list of the test videos")
  parser.add_argument("--class_list", help="classlist.txt or action_name.csv")
  parser.add_argument("--max_videos", type=int, help="at most N videos per split")
  parser.add_argument("--max_snippets", type=int,
                      help="crop copied videos to N snippets (fast tests)")
  parser.add_argument("--overwrite", action="store_true")
  _spec_arguments(parser)
  return parser


def main(argv: Optional[Sequence[str]] = None) -> int:
  args = _parser().parse_args(argv)
  overrides = {f.name: getattr(args, f.name) for f in dataclasses.fields(SyntheticSpec)
               if getattr(args, f.name) is not None}
  split_files = {k: v for k, v in (("train", args.split_train),
                                   ("test", args.split_test)) if v}
  try:
    spec = SyntheticSpec(**overrides)
    path = make_synthetic_dataset(
        args.out, spec, args.layout, args.annotations, dataset=args.dataset,
        video_info=args.video_info, split_files=split_files or None,
        class_list=args.class_list, max_videos=args.max_videos,
        max_snippets=args.max_snippets, overwrite=args.overwrite)
  except (DataError, ValueError) as e:
    print(f"error: {e}", file=sys.stderr)
    return 2
  source = layouts.open_source(path, args.dataset, args.layout)
  counts = {s: len(source.video_names(s)) for s in layouts.SPLITS}
  print(f"wrote {path} ({args.layout} layout, {len(source.class_names)} classes, "
        f"{counts['train']} train / {counts['test']} test videos)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
