"""CO2-Net's loss terms (SPEC-CO2NET-DELU section 2) as pure functions, and the total.

Each term is public and returned unweighted; `co2net_loss` weighs them with a
`CO2NetHparams` (its float fields may be tracers under `jax.vmap`: no Python
branching on them) and adds DELU's evidential and uncertainty-guided terms
(`salx.methods.delu.losses`) when `hp.evidential`. `loss_fn` runs the model and
the total, differentiable in the params.

Shapes: cas, s [B, T, C+1] (last column background), attn, v_atn, f_atn [B, T],
feat [B, T, D], labels y [B, C] multi-hot.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple, Union

import jax
import jax.numpy as jnp

from salx.core import topk
from salx.methods.co2net.hparams import CO2NetHparams
from salx.methods.co2net.model import CO2Net, CO2NetOutputs
from salx.methods.delu import losses as delu_losses

Array = jax.Array

# The contrastive loss's pairs of batch positions, hard-coded in their code
# whatever num_similar is (SPEC-CO2NET-DELU 2.3).
CONTRASTIVE_PAIRS = ((0, 1), (2, 3), (4, 5))
CONTRASTIVE_MARGIN = 0.5
LABEL_EPS = 1e-4       # l / (sum(l) + 1e-4) in the MIL loss (SPEC-CO2NET-DELU 2.2).


def suppressed_cas(cas: Array, attn: Array) -> Array:
  """s = attn (cas - m) + m, m the min over all C + 1 columns (SPEC-CO2NET-DELU 2.1).

  `_multiply(cas, attn, include_min=True)`. m is taken at the argmin column, so
  its gradient goes to that one column as torch's `min` sends it.

  Args:
    cas: [B, T, C+1]; attn: [B, T].

  Returns:
    [B, T, C+1].
  """
  column = jnp.argmin(cas, axis=-1)[..., None]
  low = jnp.take_along_axis(cas, column, axis=-1)                          # [B, T, 1]
  return attn[..., None] * (cas - low) + low


def mil_loss_per_video(logits: Array, labels: Array, background: float, k: int) -> Array:
  """MIL(z, bg) of `topkloss` per video (SPEC-CO2NET-DELU 2.2).

  zbar = mean of the k largest z[b, :, c] (each column separately; the gradient
  goes to the chosen snippets); l = [y, bg], l_hat = l / (sum(l) + 1e-4);
  L_b = -sum_c l_hat[c] log_softmax(zbar[b])[c].

  Args:
    logits: z [B, T, C+1].
    labels: y [B, C].
    background: the background entry of l (1 for cas, 0 for s).
    k: max(1, T // 7) (`CO2NetHparams.mil_topk`).

  Returns:
    [B].
  """
  video_logits = topk.topk_mean(logits, logits, k)                         # [B, C+1]
  bg = jnp.full(labels.shape[:-1] + (1,), background, labels.dtype)
  target = jnp.concatenate([labels, bg], axis=-1)
  target = target / (jnp.sum(target, axis=-1, keepdims=True) + LABEL_EPS)
  return -jnp.sum(target * jax.nn.log_softmax(video_logits, axis=-1), axis=-1)


def _cosine_distance(p: Array, q: Array) -> Array:
  """1 - cos(P[:, c], Q[:, c]) per column, no epsilon. [..., D, C+1] -> [..., C+1]."""
  dot = jnp.sum(p * q, axis=-2)
  norms = jnp.sqrt(jnp.sum(p * p, axis=-2)) * jnp.sqrt(jnp.sum(q * q, axis=-2))
  return 1.0 - dot / norms


def contrastive_loss(feat: Array, cas_supp: Array, labels: Array) -> Array:
  """Co-activity similarity loss `Contrastive(feat, s, y)` (SPEC-CO2NET-DELU 2.3).

  On the pairs (0, 1), (2, 3), (4, 5) of the batch: A = softmax over t of s (each
  column), H = feat^T A, L = feat^T (1 - A) / max(T - 1, 1) [D, C+1];
  d1 = 1 - cos(H_i, H_j), d2 = 1 - cos(H_i, L_j), d3 = 1 - cos(H_j, L_i);
  w = [y_i, 0] * [y_j, 0]; the loss is
  sum 0.5 (max(d1 - d2 + 0.5, 0) + max(d1 - d3 + 0.5, 0)) w / sum w.

  Args:
    feat: [B, T, D] with B >= 6; cas_supp: s [B, T, C+1]; labels: y [B, C].

  Returns:
    scalar.
  """
  if feat.shape[0] < 2 * len(CONTRASTIVE_PAIRS):
    raise ValueError(f"the contrastive loss needs a batch of at least "
                     f"{2 * len(CONTRASTIVE_PAIRS)} (three pairs), got {feat.shape[0]}")
  num_segments = feat.shape[-2]
  first = jnp.asarray([i for i, _ in CONTRASTIVE_PAIRS])
  second = jnp.asarray([j for _, j in CONTRASTIVE_PAIRS])
  att = jax.nn.softmax(cas_supp, axis=-2)                                   # [B, T, C+1]
  high = jnp.einsum("btd,btc->bdc", feat, att)                              # [B, D, C+1]
  low = jnp.einsum("btd,btc->bdc", feat, (1.0 - att) / max(num_segments - 1, 1))
  d1 = _cosine_distance(high[first], high[second])                          # [P, C+1]
  d2 = _cosine_distance(high[first], low[second])
  d3 = _cosine_distance(high[second], low[first])
  padded = jnp.concatenate([labels, jnp.zeros_like(labels[:, :1])], axis=-1)
  weight = padded[first] * padded[second]                                   # [P, C+1]
  num = (0.5 * jnp.sum(jnp.maximum(d1 - d2 + CONTRASTIVE_MARGIN, 0.0) * weight)
         + 0.5 * jnp.sum(jnp.maximum(d1 - d3 + CONTRASTIVE_MARGIN, 0.0) * weight))
  return num / jnp.sum(weight)


def mutual_loss(v_atn: Array, f_atn: Array) -> Array:
  """Cross-modal consistency, each side against the other's stopped value (SPEC-CO2NET-DELU 2.4).

  0.5 mean((v - sg(f))^2) + 0.5 mean((f - sg(v))^2): the value of mean((v - f)^2)
  with HALF its gradient. [B, T] -> scalar.
  """
  sg = jax.lax.stop_gradient
  return (0.5 * jnp.mean((v_atn - sg(f_atn)) ** 2)
          + 0.5 * jnp.mean((f_atn - sg(v_atn)) ** 2))


def norm_loss(attn: Array, v_atn: Array, f_atn: Array) -> Array:
  """Sparsity N = (mean(attn) + mean(v_atn) + mean(f_atn)) / 3 (SPEC-CO2NET-DELU 2.5)."""
  return (jnp.mean(attn) + jnp.mean(v_atn) + jnp.mean(f_atn)) / 3.0


def background_probability(cas: Array) -> Array:
  """p_bg = softmax(cas)[..., C], NOT detached (SPEC-CO2NET-DELU 2.6). [B, T, C+1] -> [B, T]."""
  return jax.nn.softmax(cas, axis=-1)[..., -1]


def guide_per_snippet(attn: Array, v_atn: Array, f_atn: Array, cas: Array) -> Array:
  """gamma = (|1 - attn - p_bg| + |1 - v_atn - p_bg| + |1 - f_atn - p_bg|) / 3.

  SPEC-CO2NET-DELU 2.6 and 2.8.4. [B, T] -> [B, T].
  """
  p_bg = background_probability(cas)
  return (jnp.abs(1.0 - attn - p_bg) + jnp.abs(1.0 - v_atn - p_bg)
          + jnp.abs(1.0 - f_atn - p_bg)) / 3.0


def guide_loss(attn: Array, v_atn: Array, f_atn: Array, cas: Array) -> Array:
  """G = mean of `guide_per_snippet` over [B, T] (SPEC-CO2NET-DELU 2.6)."""
  return jnp.mean(guide_per_snippet(attn, v_atn, f_atn, cas))


def loss_terms(outputs: CO2NetOutputs, labels: Array, hp: CO2NetHparams,
               itr: Union[int, Array]) -> Dict[str, Array]:
  """Every term of the total, UNWEIGHTED (SPEC-CO2NET-DELU 2.1-2.8).

  Args:
    outputs: the model's outputs on a training batch.
    labels: y [B, C] multi-hot.
    hp: hyperparameters (`hp.evidential` adds DELU's terms).
    itr: 0-based training iteration (DELU's curriculum; may be traced).

  Returns:
    {'mil_orig', 'mil_supp', 'contrastive', 'mutual', 'norm', 'guide'} and, when
    hp.evidential, {'edl', 'uct_guide'}: scalars.
  """
  o = outputs
  num_segments = o.cas.shape[-2]
  k = hp.mil_topk(num_segments)
  s = suppressed_cas(o.cas, o.attn)
  gamma = guide_per_snippet(o.attn, o.v_atn, o.f_atn, o.cas)
  terms = {
      "mil_orig": jnp.mean(mil_loss_per_video(o.cas, labels, 1.0, k)),
      "mil_supp": jnp.mean(mil_loss_per_video(s, labels, 0.0, k)),
      "contrastive": contrastive_loss(o.feat, s, labels),
      "mutual": mutual_loss(o.v_atn, o.f_atn),
      "norm": norm_loss(o.attn, o.v_atn, o.f_atn),
      "guide": jnp.mean(gamma),
  }
  if hp.evidential:
    terms["edl"], _ = delu_losses.evidential_loss(s, o.attn, labels,
                                                  hp.edl_topk(num_segments))
    terms["uct_guide"], _ = delu_losses.uct_guide_loss(
        s, gamma, itr, hp.max_iter, hp.amplitude, labels.shape[-1])
  return terms


def weighted_terms(terms: Dict[str, Array], hp: CO2NetHparams) -> Dict[str, Array]:
  """Each term times its weight (SPEC-CO2NET-DELU 2.9); their sum is the total."""
  weights = {"mil_orig": 1.0, "mil_supp": 1.0, "contrastive": hp.alpha3,
             "mutual": hp.alpha4, "norm": hp.alpha1, "guide": hp.alpha2,
             "edl": hp.alpha_edl, "uct_guide": hp.alpha_uct_guide}
  return {name: weights[name] * value for name, value in terms.items()}


def co2net_loss(outputs: CO2NetOutputs, labels: Array, hp: CO2NetHparams,
                itr: Union[int, Array]) -> Tuple[Array, Dict[str, Array]]:
  """The total loss of CO2-Net, or DELU's when hp.evidential (SPEC-CO2NET-DELU 2.9).

  L = L_mil_orig + L_mil_supp + alpha3 L_con + alpha4 L_mut + alpha1 N + alpha2 G
  (+ alpha_edl L_edl + alpha_uct_guide L_uct).

  Returns:
    (total, the unweighted terms of `loss_terms`).
  """
  terms = loss_terms(outputs, labels, hp, itr)
  weighted = weighted_terms(terms, hp)
  # Summed in their code's order (DELU: edl and uct first, 2.9).
  order = ("edl", "uct_guide", "mil_orig", "mil_supp", "contrastive", "mutual", "norm",
           "guide")
  total = sum(weighted[name] for name in order if name in weighted)
  return total, terms


# Their DELU logging dict: key -> term (SPEC-CO2NET-DELU 2.9).
DELU_LOG_KEYS = {"edl_loss": "edl", "uct_guide_loss": "uct_guide",
                 "loss_mil_orig": "mil_orig", "loss_mil_supp": "mil_supp",
                 "loss_supp_contrastive": "contrastive", "mutual_loss": "mutual",
                 "norm_loss": "norm", "guide_loss": "guide"}


def delu_loss_dict(terms: Dict[str, Array], hp: CO2NetHparams) -> Dict[str, Array]:
  """DELU's logging dict: the WEIGHTED terms under their names, and `total_loss`."""
  weighted = weighted_terms(terms, hp)
  out = {key: weighted[name] for key, name in DELU_LOG_KEYS.items() if name in weighted}
  out["total_loss"] = sum(out.values())
  return out


def loss_fn(model: CO2Net, params: Any, features: Array, labels: Array,
            hp: CO2NetHparams, itr: Union[int, Array],
            dropout_rng: Optional[Array] = None, train: bool = False
            ) -> Tuple[Array, Tuple[Dict[str, Array], CO2NetOutputs]]:
  """Forward and total loss, differentiable in `params`.

  Args:
    model: a `CO2Net`.
    params: its params (no `feat_encoder`: it is never used, SPEC-CO2NET-DELU 3.2).
    features: x [B, T, D].
    labels: y [B, C] multi-hot.
    hp: hyperparameters.
    itr: 0-based training iteration.
    dropout_rng: PRNG key of the dropout masks (needed when train).
    train: dropout on or off.

  Returns:
    (total, (unweighted terms, outputs)).
  """
  if train and dropout_rng is None:
    raise ValueError("loss_fn(train=True) needs a dropout_rng")
  rngs = {"dropout": dropout_rng} if train else {}
  outputs = model.apply({"params": params}, features, train=train, rngs=rngs)
  total, terms = co2net_loss(outputs, labels, hp, itr)
  return total, (terms, outputs)
