"""DELU's two loss terms on top of CO2-Net (SPEC-CO2NET-DELU 2.7, 2.8) as pure functions.

DELU is CO2-Net's model and loss plus a video-level evidential loss and an
uncertainty-guided loss whose per-snippet weights follow a curriculum. The total
(`salx.methods.co2net.losses.co2net_loss`) adds them when `hp.evidential`.
Inputs are batch-major: s the suppressed CAS [B, T, C+1] (SPEC-CO2NET-DELU 2.1),
attn [B, T], y [B, C] multi-hot.
"""

from __future__ import annotations

import math
from typing import NamedTuple, Union

import jax
import jax.numpy as jnp
import numpy as np

from salx.core import topk

Array = jax.Array

EVIDENCE_CLIP = 10.0   # exp evidence of clip(logit, -10, 10) (SPEC-CO2NET-DELU 2.7.3).


def exp_evidence(logits: Array) -> Array:
  """e = exp(clip(z, -10, 10)); the gradient is 0 where clipped (SPEC-CO2NET-DELU 2.7.3)."""
  return jnp.exp(jnp.clip(logits, -EVIDENCE_CLIP, EVIDENCE_CLIP))


class EvidentialDetails(NamedTuple):
  """Values inside the evidential loss, for metrics and parity checks.

  loss_per_video: L_b [B]; video_logits: vl [B, C]; uncertainty: u_b [B];
  topk_index: the k_e snippets of largest attention [B, k_e] (descending).
  """
  loss_per_video: Array
  video_logits: Array
  uncertainty: Array
  topk_index: Array


def evidential_loss(cas_supp: Array, attn: Array, labels: Array, k: int
                    ) -> tuple[Array, EvidentialDetails]:
  """Video-level evidential loss L_edl (`EvidenceLoss('exp', 'log')`, SPEC-CO2NET-DELU 2.7).

  vl[b, c] = mean of s[b, t, c] over the k snippets of largest attn[b] (c < C, the
  background dropped after the gather); alpha = exp(clip(vl)) + 1, S = sum alpha,
  u = C / S; g = (1 - sg(u)) n q / sum q with q = y / alpha, n = sum y (only u is
  detached); L_b = sum_c g (log S - log alpha). No KL term.

  Args:
    cas_supp: s [B, T, C+1].
    attn: [B, T], only ranked (no gradient through the choice).
    labels: y [B, C] multi-hot; every video needs a label (else 0/0).
    k: k_e = max(1, T // rat_atn).

  Returns:
    (mean_b L_b, EvidentialDetails).
  """
  num_classes = labels.shape[-1]
  ranked = jnp.broadcast_to(attn[..., None], cas_supp.shape)
  video_logits = topk.topk_mean(cas_supp, ranked, k)[..., :num_classes]   # [B, C]
  _, index = jax.lax.top_k(jax.lax.stop_gradient(attn), k)
  alpha = exp_evidence(video_logits) + 1.0
  strength = jnp.sum(alpha, axis=-1)                                       # S [B]
  uncertainty = num_classes / strength                                    # u [B]
  q = labels / alpha
  count = jnp.sum(labels, axis=-1, keepdims=True)
  g = ((1.0 - jax.lax.stop_gradient(uncertainty))[:, None] * count * q
       / jnp.sum(q, axis=-1, keepdims=True))
  per_video = jnp.sum(g * (jnp.log(strength)[:, None] - jnp.log(alpha)), axis=-1)
  return jnp.mean(per_video), EvidentialDetails(per_video, video_logits, uncertainty,
                                                index)


def annealing_coef(itr: int, max_iter: int) -> float:
  """0.01 exp(-ln(0.01) / max_iter * itr) in float32: computed by their code, UNUSED.

  SPEC-CO2NET-DELU 2.7: the KL term it would weigh is off.
  """
  one = np.float32(0.01)
  return float(one * np.exp(np.float32(-math.log(0.01) / max_iter * itr), dtype=np.float32))


def snippet_uncertainty(cas_supp: Array, num_classes: int) -> Array:
  """sigma[b, t] = C / sum over ALL C + 1 columns of (exp(clip(s)) + 1) (SPEC-CO2NET-DELU 2.8.1).

  The numerator is C (not C + 1). [B, T, C+1] -> [B, T].
  """
  return num_classes / jnp.sum(exp_evidence(cas_supp) + 1.0, axis=-1)


def course_curve(itr: Union[int, Array], num_segments: int, max_iter: int,
                 amplitude: Union[float, Array], dtype=None) -> Array:
  """The curriculum `course_function` (SPEC-CO2NET-DELU 2.8.2). -> [T].

  curve[j] = amplitude tanh(theta_j delta) + 1, theta_j = 2 (j + 0.5) / T - 1,
  delta = 1 - 2 itr / max_iter: rising at itr = 0, flat 1 at max_iter / 2, falling
  at the end.

  Args:
    itr: 0-based training iteration (may be traced).
    num_segments: T.
    max_iter: the curriculum length.
    amplitude: the curve's amplitude (a hyperparameter leaf).
    dtype: result dtype (default: JAX's default float).
  """
  dtype = dtype or jnp.result_type(float)
  theta = 2.0 * (jnp.arange(num_segments, dtype=dtype) + 0.5) / num_segments - 1.0
  delta = 1.0 - 2.0 * jnp.asarray(itr, dtype) / max_iter
  return jnp.asarray(amplitude, dtype) * jnp.tanh(theta * delta) + 1.0


class UncertaintyGuideDetails(NamedTuple):
  """Values inside the uncertainty-guided loss, for metrics and parity checks.

  uncertainty: sigma [B, T]; sort_index: pi [B, T]; curve [T];
  sorted_curve: curve[pi] [B, T].
  """
  uncertainty: Array
  sort_index: Array
  curve: Array
  sorted_curve: Array


def uct_guide_loss(cas_supp: Array, guide_per_snippet: Array, itr: Union[int, Array],
                   max_iter: int, amplitude: Union[float, Array], num_classes: int
                   ) -> tuple[Array, UncertaintyGuideDetails]:
  """Uncertainty-guided loss with the curriculum, L_uct (SPEC-CO2NET-DELU 2.8).

  pi_b = the snippets by ascending uncertainty sigma (a STABLE sort; their
  `torch.sort` order of exact ties cannot be matched, 2.8 quirks); the weight of
  snippet j is curve[pi_b[j]], the curve at the INDEX of the snippet holding rank
  j (their `gather(curve, 1, argsort(sigma))`); L_uct = mean_{b, j} curve[pi_b[j]]
  gamma[b, j]. No gradient through pi or the curve.

  Args:
    cas_supp: s [B, T, C+1] (only ranked).
    guide_per_snippet: gamma [B, T] of 2.8.4 (gradients flow through it).
    itr: 0-based training iteration.
    max_iter: the curriculum length.
    amplitude: the curve's amplitude.
    num_classes: C, the numerator of sigma.

  Returns:
    (L_uct, UncertaintyGuideDetails).
  """
  num_segments = cas_supp.shape[-2]
  sigma = snippet_uncertainty(jax.lax.stop_gradient(cas_supp), num_classes)
  order = jnp.argsort(sigma, axis=-1, stable=True)                          # [B, T]
  curve = jax.lax.stop_gradient(
      course_curve(itr, num_segments, max_iter, amplitude, guide_per_snippet.dtype))
  sorted_curve = curve[order]                                               # [B, T]
  loss = jnp.mean(sorted_curve * guide_per_snippet)
  return loss, UncertaintyGuideDetails(sigma, order, curve, sorted_curve)
