"""The synthetic videos before their features: how many, how long, which instances.

`SyntheticSpec` holds every knob of a synthetic dataset (structure and feature
difficulty), its defaults are the demo dataset's (`configs/synthetic.py`, `python -m
salx.datasets.synthetic`) and `FIELD_HELP` describes each knob in one line (the
command's --help); `plan_synthetic_videos` lays out the purely synthetic videos.
Each video's plan depends only on the seed, its split and its index.
"""

from __future__ import annotations

import dataclasses
import math
from typing import List, Sequence, Tuple

import numpy as np

from salx.core import constants

# Mixed into the seed of each video's plan, so train and test videos differ.
SPLIT_CODES = {"train": 1, "test": 2}


@dataclasses.dataclass(frozen=True)
class SyntheticSpec:
  """What a synthetic dataset looks like. Lengths are in snippets (0.64 s each).

  The defaults are the demo dataset's: the demo config, the command line and
  `SyntheticSpec()` make the same data.

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
    action_strength: prototype amplitude at an instance's core, flow half (1.0;
      at 0.5 with background_strength 1.0, SAL's actionness self-training locks onto
      the background patterns for some seeds).
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
  action_strength: float = 1.0
  rgb_action_ratio: float = 0.6
  instance_strength_jitter: float = 0.3
  class_similarity: float = 0.3
  context_strength: float = 0.3
  context_flow_ratio: float = 0.3
  context_length: int = 6
  scene_strength: float = 0.3
  background_strength: float = 0.5
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


# One line per SyntheticSpec field: the description `python -m
# salx.datasets.synthetic --help` prints (the class docstring groups them).
FIELD_HELP = {
    "seed": "Seed of everything random (videos, instances, patterns, noise).",
    "num_classes": "Number of action classes (named action_00, action_01, ...).",
    "num_train": "Number of training videos.",
    "num_test": "Number of test videos.",
    "min_length": "Shortest video, in snippets of 0.64 s (lengths are log-uniform).",
    "max_length": "Longest video, in snippets of 0.64 s.",
    "second_class_prob": "Chance that a video holds a second action class.",
    "min_instances": "Fewest instances per class present in a video.",
    "max_instances": "Most instances per class present in a video.",
    "min_instance_length": "Shortest ordinary instance, in snippets (log-uniform).",
    "max_instance_length": "Longest instance, in snippets.",
    "short_instance_prob": "Chance that an instance is short instead: 1 to "
                           "min_instance_length snippets (hard to localize).",
    "max_action_fraction": "No more instances are placed in a video once they cover "
                           "this fraction of it.",
    "feature_dim": "Feature width D, even: the first D/2 dims are RGB, the rest flow "
                   "(2048 for the real layouts).",
    "action_strength": "Amplitude of the class prototype at an instance's core, flow "
                       "half (signal-to-noise per dim: this / noise_std).",
    "rgb_action_ratio": "RGB amplitude of actions relative to flow.",
    "instance_strength_jitter": "Instance strengths vary in 1 +- this.",
    "class_similarity": "Energy fraction the class prototypes share, in [0, 1) "
                        "(0: unrelated classes).",
    "context_strength": "RGB amplitude of the class prototype next to instances "
                        "(confusion that blurs boundaries).",
    "context_flow_ratio": "Flow amplitude of the context relative to its RGB "
                          "amplitude.",
    "context_length": "Snippets of context on each side of an instance.",
    "scene_strength": "Amplitude of a class-specific RGB scene vector in every "
                      "snippet of a video holding the class (a shortcut that does "
                      "not localize).",
    "background_strength": "Amplitude of the background patterns.",
    "num_background_patterns": "How many background patterns (>= 2) the videos "
                               "draw from; each video drifts between two.",
    "noise_std": "Per-dim standard deviation of the Gaussian noise (raise it for a "
                 "harder task).",
    "noise_smoothness": "AR(1) coefficient of the noise along time, in [0, 1).",
    "feature_scale": "Overall factor on the features (their norm).",
}


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
  seconds = constants.SECONDS_PER_SNIPPET
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
