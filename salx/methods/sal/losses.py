"""SAL loss terms (SPEC 2.7 and section 4) as pure functions.

`sal_loss` assembles the total for a variant; each term is also public so that
research code can reuse or reweight it. Terms are returned unweighted; the variant's
`LossWeights` combine them.
"""

from __future__ import annotations

from typing import Dict, NamedTuple

import jax
import jax.numpy as jnp

from salx.methods.sal import pseudo_labels
from salx.core import topk
from salx.methods.sal.model import SALOutputs

Array = jax.Array


def video_cross_entropy(logits: Array, labels: Array) -> Array:
  """Point-wise CE against normalised multi-hot labels.

  CE(z, y) = mean_b(-sum_c yn[b, c] log_softmax(z)[b, c]), yn = y / sum_c y + 1e-10.

  Args:
    logits: [B, C]; labels: [B, C] multi-hot.
  """
  normalised = labels / jnp.sum(labels, axis=-1, keepdims=True) + 1e-10
  return jnp.mean(-jnp.sum(normalised * jax.nn.log_softmax(logits, axis=-1), axis=-1))


def generalized_cross_entropy(prob: Array, target: Array, weight: Array,
                              q: float = 0.5) -> Array:
  """Masked generalized CE for actionness (SPEC 2.7).

  Positive and negative snippets are each averaged with their mask weights per
  video, then over the batch.

  Args:
    prob: actionness p [B, T] in (0, 1).
    target: pseudo label g [B, T] in {0, 1}.
    weight: mask w [B, T].
    q: GCE exponent.
  """
  pos_weight = target * weight
  neg_weight = (1.0 - target) * weight
  pos = (1.0 - (prob + 1e-7) ** q) / q
  neg = (1.0 - (1.0 - prob + 1e-7) ** q) / q
  pos = jnp.sum(pos * pos_weight, -1) / (jnp.sum(pos_weight, -1) + 1e-7)
  neg = jnp.sum(neg * neg_weight, -1) / (jnp.sum(neg_weight, -1) + 1e-7)
  return jnp.mean(pos) + jnp.mean(neg)


def uniform_kl(logits: Array) -> Array:
  """KL(uniform || softmax(logits)) with batchmean reduction. [B, C] -> scalar."""
  num_classes = logits.shape[-1]
  log_u = -jnp.log(jnp.asarray(num_classes, logits.dtype))
  kl = jnp.exp(log_u) * (log_u - jax.nn.log_softmax(logits, axis=-1))
  return jnp.sum(kl) / logits.shape[0]


def modality_consistency(action_rgb: Array, action_flow: Array) -> Array:
  """mean((a_rgb - a_flow)^2) over [B, T]."""
  return jnp.mean((action_rgb - action_flow) ** 2)


class LossAux(NamedTuple):
  """Intermediate values of the loss, for metrics and parity checks.

  combined: selection score [B, T, C]; pseudo_label, pseudo_label_mix,
  mask, mask_mix: [B, T]; mask_state: updated running statistics.
  """
  combined: Array
  pseudo_label: Array
  pseudo_label_mix: Array
  mask: Array
  mask_mix: Array
  mask_state: pseudo_labels.MaskState


def loss_terms(outputs: SALOutputs, labels: Array, mask_state: pseudo_labels.MaskState,
               variant) -> tuple[Dict[str, Array], LossAux]:
  """All SAL loss terms, unweighted.

  Args:
    outputs: model outputs for a training batch ([B, T, C] cas ...).
    labels: [B, C] multi-hot video labels.
    mask_state: running mask statistics before this step.
    variant: `SALHparams`.

  Returns:
    ({'mil', 'bg', 'act', 'mix', 'mc', 'se'} scalars, LossAux).
  """
  o = outputs
  num_segments = o.cas.shape[-2]
  combined = topk.combined_score(o.cas, o.action_flow, o.action_rgb,
                                   variant.combine_weights)
  mil_rank = combined if variant.mil_on_combined else o.cas
  cas_top = topk.topk_mean(o.cas, mil_rank, variant.mil_topk(num_segments))
  cas_top_bg = topk.topk_mean(o.cas_bg, jax.nn.softmax(o.cas_bg, axis=-1),
                                variant.bg_topk(num_segments))

  g = pseudo_labels.pseudo_label(o.cas, o.action_flow, o.action_rgb, labels, variant)
  w, new_state = pseudo_labels.adaptive_mask(o.cas, mask_state, variant)
  g_mix, w_mix = pseudo_labels.mix_labels(g, w)
  q = variant.gce_q

  terms = {
      "mil": video_cross_entropy(cas_top, labels),
      "bg": uniform_kl(cas_top_bg),
      "act": (generalized_cross_entropy(o.action_flow, g, w, q)
              + generalized_cross_entropy(o.action_rgb, g, w, q)),
      "mix": (generalized_cross_entropy(o.action_flow_mix, g_mix, w_mix, q)
              + generalized_cross_entropy(o.action_rgb_mix, g_mix, w_mix, q)),
      "mc": modality_consistency(o.action_rgb, o.action_flow),
      "se": (video_cross_entropy(o.video_logits, labels)
             + video_cross_entropy(o.video_logits_flow, labels)
             + video_cross_entropy(o.video_logits_rgb, labels)),
  }
  return terms, LossAux(combined, g, g_mix, w, w_mix, new_state)


def total_loss(terms: Dict[str, Array], weights) -> Array:
  """Weighted sum of the terms with a ``LossWeights``."""
  return (weights.mil * terms["mil"] + weights.mc * terms["mc"] + weights.bg * terms["bg"]
          + weights.act * terms["act"] + weights.se * terms["se"]
          + weights.mix * terms["mix"])


def sal_loss(outputs: SALOutputs, labels: Array, mask_state: pseudo_labels.MaskState,
             variant) -> tuple[Array, tuple[Dict[str, Array], LossAux]]:
  """Total SAL loss of a variant: (total, (terms, aux))."""
  terms, aux = loss_terms(outputs, labels, mask_state, variant)
  return total_loss(terms, variant.loss_weights), (terms, aux)
