"""Class-agnostic pseudo labels, the adaptive actionness mask and their mix-up (SPEC 2.4-2.6).

Nothing here carries a gradient. The mask's running statistics (`MaskState`) live
in the train state on the device and are updated inside the jitted step.
"""

from __future__ import annotations

import flax
import jax
import jax.numpy as jnp

from salx.core import topk
from salx.methods.sal.model import fused_actionness, roll_batch

Array = jax.Array


@flax.struct.dataclass
class MaskState:
  """Running mean and variance of the per-snippet max class probability (scalars)."""
  mu: Array
  var: Array

  @classmethod
  def initial(cls, num_classes: int, dtype=jnp.float32) -> "MaskState":
    """mu = 1 / C, var = 1, as the authors' code starts."""
    return cls(mu=jnp.asarray(1.0 / num_classes, dtype), var=jnp.asarray(1.0, dtype))


def pseudo_label(cas: Array, action_flow: Array, action_rgb: Array, labels: Array,
                 variant) -> Array:
  """Class-agnostic pseudo label g in {0, 1}, SPEC 2.4 (and section 4).

  g1 marks the top-k snippets of the fused actionness a (k = T // r + 17 for
  THUMOS14, 40 for ActivityNet) of every video with a label; THUMOS14 gates it with
  g2, the top T // 2 snippets of sum_c relu(cas).

  Args:
    cas: [B, T, C] logits; action_flow, action_rgb: [B, T]; labels: [B, C] multi-hot.
    variant: a `SALHparams`.

  Returns:
    g [B, T], no gradient.
  """
  cas, action_flow, action_rgb = jax.lax.stop_gradient((cas, action_flow, action_rgb))
  num_segments = cas.shape[-2]
  actionness = fused_actionness(action_flow, action_rgb, variant.rgb_weight)
  has_label = jnp.any(labels > 0, axis=-1, keepdims=True).astype(cas.dtype)
  g = topk.topk_indicator(actionness, variant.pseudo_topk(num_segments)) * has_label
  if variant.confidence_gate:
    confidence = jnp.sum(jax.nn.relu(cas), axis=-1)
    g = g * topk.topk_indicator(confidence, num_segments // 2)
  return g


def adaptive_mask(cas: Array, state: MaskState, variant) -> tuple[Array, MaskState]:
  """Adaptive actionness mask w and the updated running statistics, SPEC 2.5.

  m = max_c softmax(cas) per snippet over the whole (global) batch;
  mu <- ema mu + (1 - ema) mean(m), var <- ema var + (1 - ema) var_unbiased(m);
  w = exp(-min(m - mu, 0)^2 / (factor * var)) with the UPDATED mu, var.

  Args:
    cas: [B, T, C] logits.
    state: running statistics before this step.
    variant: gives ema (0.7 / 0.99) and factor (1/2 / 6).

  Returns:
    (w [B, T], new state), no gradient.
  """
  cas = jax.lax.stop_gradient(cas)
  top_prob = jnp.max(jax.nn.softmax(cas, axis=-1), axis=-1)          # [B, T]
  ema = variant.mask_ema
  mu = ema * state.mu + (1.0 - ema) * jnp.mean(top_prob)
  var = ema * state.var + (1.0 - ema) * jnp.var(top_prob, ddof=1)
  below = jnp.minimum(top_prob - mu, 0.0)
  w = jnp.exp(-(below ** 2) / (variant.mask_var_factor * var))
  return w, MaskState(mu=mu.astype(state.mu.dtype), var=var.astype(state.var.dtype))


def mix_labels(g: Array, w: Array) -> tuple[Array, Array]:
  """Labels of the batch mix-up inputs, SPEC 2.6. [B, T] each -> (g_mix, w_mix)."""
  g_mix = (g + roll_batch(g) >= 1).astype(g.dtype)
  w_mix = (w + roll_batch(w)) / 2.0
  return g_mix, w_mix
