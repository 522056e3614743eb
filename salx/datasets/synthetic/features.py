"""The synthetic I3D-like features [L, D] of a planned video (see the package docstring)."""

from __future__ import annotations

import dataclasses
import math
import zlib
from typing import Iterator, Mapping, Optional, Sequence, Tuple

import numpy as np

from salx.core import constants
from salx.datasets import classes
from salx.datasets.synthetic.plans import SyntheticSpec, VideoPlan
from salx.datasets import source


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
  for (start, end), label in zip(plan.segments / constants.SECONDS_PER_SNIPPET,
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
                     spec: SyntheticSpec) -> Iterator[source.VideoRecord]:
  """The `VideoRecord` of each plan, made one at a time."""
  world = _make_world(spec, len(class_names))
  for plan in plans:
    yield source.VideoRecord(
        name=plan.name, features=render_features(plan, class_names, spec, world),
        labels=classes.multi_hot(plan.segment_labels, class_names, "<plan>", plan.name),
        segments=plan.segments.copy(), segment_labels=tuple(plan.segment_labels),
        duration=float(plan.duration))


def estimated_size_bytes(plans: Sequence[VideoPlan], spec: SyntheticSpec) -> int:
  """Bytes of float32 features the plans take on disk (headers not counted)."""
  return sum(p.length for p in plans) * spec.feature_dim * 4
