"""Snippet selection scores and top-k means, shared by training and inference.

SPEC 2.1-2.3 and 3.1: a per-class score over snippets chooses the top-k snippets
whose logits are averaged into a video-level score.
"""

from __future__ import annotations

from typing import Sequence

import jax
import jax.numpy as jnp

Array = jax.Array


def combined_score(cas: Array, action_flow: Array, action_rgb: Array,
                   weights: Sequence[float]) -> Array:
  """Selection score w0 * softmax(cas) + w1 * a_flow + w2 * a_rgb.

  THUMOS14 uses weights (1/3, 1/3, 1/3), ActivityNet's inference (0.6, 0.2, 0.2).

  Args:
    cas: logits [..., T, C].
    action_flow, action_rgb: actionness [..., T].
    weights: (softmax(cas), flow, rgb) weights.

  Returns:
    [..., T, C].
  """
  w_cas, w_flow, w_rgb = weights
  return (w_cas * jax.nn.softmax(cas, axis=-1) + w_flow * action_flow[..., None]
          + w_rgb * action_rgb[..., None])


def topk_mean(values: Array, scores: Array, k: int) -> Array:
  """Per class, the mean of `values` over the k snippets with the highest `scores`.

  Args:
    values: [B, T, C], averaged (gradients flow through them).
    scores: [B, T, C], only ranked (no gradient).
    k: number of snippets, 1 <= k <= T.

  Returns:
    [B, C].
  """
  num_segments = values.shape[-2]
  if not 1 <= k <= num_segments:
    raise ValueError(f"top-k needs 1 <= k <= T, got k={k} for T={num_segments}")
  scores_ct = jnp.swapaxes(jax.lax.stop_gradient(scores), -1, -2)  # [B, C, T]
  _, index = jax.lax.top_k(scores_ct, k)                             # [B, C, k]
  picked = jnp.take_along_axis(jnp.swapaxes(values, -1, -2), index, axis=-1)
  return jnp.mean(picked, axis=-1)


def topk_indicator(scores: Array, k: int) -> Array:
  """1 at the k highest entries along the last axis, 0 elsewhere. [B, T] -> [B, T]."""
  num_segments = scores.shape[-1]
  if not 0 <= k <= num_segments:
    raise ValueError(f"top-k needs 0 <= k <= T, got k={k} for T={num_segments}")
  _, index = jax.lax.top_k(jax.lax.stop_gradient(scores), k)         # [B, k]
  positions = jnp.arange(num_segments)
  return jnp.any(index[..., :, None] == positions, axis=-2).astype(scores.dtype)
