"""The SAL network (SPEC section 1) as Flax Linen modules.

Arrays are batch-major: features x [B, T, D] with D = 2048 (RGB dims first, then
flow), hidden width H, C classes. `SAL.apply` returns a `SALOutputs` with the nine
outputs of the authors' model. Parameter names mirror the official PyTorch names
(`encoder`, `action_rgb`, `action_flow`, `cls`, `cls_rgb`, `cls_flow`, `fc`, `fc1`)
so that `salx.methods.sal.convert` is a rename plus a transpose: each holds `kernel` (conv
[k, in, out], linear [in, out]) and `bias`.
"""

from __future__ import annotations

import functools
from typing import Any, Optional

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

from salx.core.layers import Conv1d, kaiming_normal_init, torch_dense

Array = jax.Array
Dtype = Any


@jax.custom_vjp
def low_rank_matmul(p: Array, w: Array) -> Array:
  """p @ w for a short batch p [B, K] and a huge w [K, N] (FC1: K = H^2).

  The gradient dw = p^T g is an outer product of rank B. It is written as B
  broadcast multiply-adds instead of a matrix product, so XLA fuses it into the
  optimizer's element-wise update: the K x N gradient is never written to or read
  from memory. Values are those of p^T g up to round-off.
  """
  return p @ w


def _low_rank_matmul_fwd(p, w):
  return p @ w, (p, w)


def _low_rank_matmul_bwd(residuals, g):
  p, w = residuals
  acc = jnp.promote_types(w.dtype, jnp.float32)
  p_acc, g_acc = p.astype(acc), g.astype(acc)
  dw = p_acc[0][:, None] * g_acc[0][None, :]
  for b in range(1, p.shape[0]):
    dw = dw + p_acc[b][:, None] * g_acc[b][None, :]
  return (g @ w.T).astype(p.dtype), dw.astype(w.dtype)


low_rank_matmul.defvjp(_low_rank_matmul_fwd, _low_rank_matmul_bwd)


class SemanticProjection(nn.Module):
  """FC1: Linear(H^2 -> H) with kaiming_normal weights and zero bias. [B, H^2] -> [B, H].

  The batch is short (2 to 32 videos) and the kernel huge (H^3 = 134M weights at
  H = 512): `low_rank_matmul` keeps its gradient out of memory (outer_grad=True).
  """
  features: int
  outer_grad: bool = True
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, p: Array) -> Array:
    kernel = self.param("kernel", kaiming_normal_init(), (p.shape[-1], self.features),
                        self.param_dtype)
    bias = self.param("bias", nn.initializers.zeros, (self.features,), self.param_dtype)
    p, kernel, bias = nn.dtypes.promote_dtype(p, kernel, bias, dtype=self.dtype)
    matmul = low_rank_matmul if self.outer_grad and p.shape[0] <= 64 else jnp.matmul
    return matmul(p, kernel) + bias


# ----------------------------------------------------------------------------
# Second-order pooling.


def second_order_pool(embedding: Array, mask: Optional[Array] = None,
                      eps: float = 1e-5) -> Array:
  """Bilinear (covariance) pooling of snippet embeddings, SPEC 1.5.

  G = E^T E / T^2, signed square root sign(G) sqrt(|G| + eps), then each row
  L2-normalised (norm floored at 1e-12).

  Args:
    embedding: E [B, T, H].
    mask: optional [B, T] of 1 for valid snippets and 0 for padding; padded
      snippets are left out and T is the number of valid ones.
    eps: added under the square root.

  Returns:
    [B, H * H] in the embedding's dtype, row-major flattening of G (G is symmetric).
  """
  if mask is not None:
    embedding = embedding * mask[..., None].astype(embedding.dtype)
    length = jnp.sum(mask, axis=-1).astype(embedding.dtype)
  else:
    length = jnp.asarray(embedding.shape[-2], embedding.dtype)
  # Accumulate in at least float32 (bf16 embeddings give float32 statistics).
  acc = jnp.promote_types(embedding.dtype, jnp.float32)
  gram = jnp.einsum("bth,btg->bhg", embedding, embedding, preferred_element_type=acc)
  gram = gram / (length.astype(acc) ** 2)[..., None, None]
  flat = gram.reshape(gram.shape[0], -1)
  signed = jnp.sign(flat) * jnp.sqrt(jnp.abs(flat) + eps)
  norm = jnp.sqrt(jnp.sum(signed * signed, axis=-1, keepdims=True))
  return (signed / jnp.maximum(norm, 1e-12)).astype(embedding.dtype)


def roll_batch(z: Array) -> Array:
  """prev(z)[b] = z[(b - 1) mod B]: each video paired with the one before it."""
  return jnp.roll(z, 1, axis=0)


def fused_actionness(action_flow: Array, action_rgb: Array, rgb_weight: float) -> Array:
  """a = (1 - lam) * a_flow + lam * a_rgb, SPEC 1.3. [B, T] -> [B, T]."""
  return (1.0 - rgb_weight) * action_flow + rgb_weight * action_rgb


# ----------------------------------------------------------------------------
# The network.


@flax.struct.dataclass
class SALOutputs:
  """The nine outputs of one SAL forward pass.

  Attributes:
    cas: class activation logits [B, T, C].
    cas_bg: background-suppressed logits cas * (1 - a) [B, T, C].
    action_flow, action_rgb: actionness (sigmoid) per stream [B, T].
    action_flow_mix, action_rgb_mix: actionness of the batch mix-up inputs [B, T].
    video_logits: semantic video logits FC(bilinear(e)) [B, C].
    video_logits_flow, video_logits_rgb: FC on each stream's bilinear pooling [B, C].
  """
  cas: Array
  cas_bg: Array
  action_flow: Array
  action_rgb: Array
  action_flow_mix: Array
  action_rgb_mix: Array
  video_logits: Array
  video_logits_flow: Array
  video_logits_rgb: Array


class SAL(nn.Module):
  """SAL: multilevel semantic and adaptive actionness learning (SPEC section 1).

  Attributes:
    num_classes: C.
    feature_dim: D, RGB and flow halves of D / 2 each (2048 for I3D).
    hidden_dim: H (512). FC1 holds H^3 weights.
    encoder_kernel: kernel of the main embedding (3 THUMOS14, 7 ActivityNet).
    dropout_rate: dropout after each embedding (0.5).
    dtype: computation dtype (None: from inputs and params; jnp.bfloat16 for
      mixed precision with float32 params).
    param_dtype: dtype of the parameters at init.
    conv_as_matmul: convolutions as one GEMM plus shifted adds (see Conv1d).
    fc1_outer_grad: FC1's gradient as fused outer products (see low_rank_matmul).
  """
  num_classes: int
  feature_dim: int = 2048
  hidden_dim: int = 512
  encoder_kernel: int = 3
  dropout_rate: float = 0.5
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32
  conv_as_matmul: bool = True
  fc1_outer_grad: bool = True

  @nn.compact
  def __call__(self, x: Array, hp, *, train: bool = False,
               mask: Optional[Array] = None) -> SALOutputs:
    """Runs the network.

    Args:
      x: features [B, T, D].
      hp: the `SALHparams` (the fused actionness reads `hp.rgb_weight`, a leaf that
        members may each set).
      train: dropout on (needs a 'dropout' rng) or off.
      mask: optional [B, T] valid-snippet mask for padded evaluation batches; it
        only changes the second-order pooling (padding left out). Outputs at padded
        positions are meaningless.

    Returns:
      SALOutputs.
    """
    if x.ndim != 3 or x.shape[-1] != self.feature_dim:
      raise ValueError(
          f"SAL expects features [B, T, {self.feature_dim}], got shape {x.shape}")
    if self.encoder_kernel % 2 != 1:
      raise ValueError(f"encoder_kernel must be odd, got {self.encoder_kernel}")
    h, c, kw = self.hidden_dim, self.num_classes, dict(dtype=self.dtype,
                                                        param_dtype=self.param_dtype)
    half = self.feature_dim // 2
    rgb, flow = x[..., :half], x[..., half:]

    # 1-3. Actionness per stream, on the inputs and on their batch mix-up.
    # The embedding convs are shared by the plain and the mix-up inputs; every
    # dropout call draws its own mask. The conv is linear, so the mix-up branch's
    # pre-activation conv(z + prev(z)) is conv(z) + prev(conv(z)) - bias: the same
    # numbers up to round-off, without convolving the mixed inputs again.
    conv = functools.partial(Conv1d, matmul=self.conv_as_matmul, **kw)
    conv_rgb = conv(h, 3, name="action_rgb")
    conv_flow = conv(h, 3, name="action_flow")
    head_rgb = conv(1, 1, name="cls_rgb")
    head_flow = conv(1, 1, name="cls_flow")
    dropout = nn.Dropout(self.dropout_rate, deterministic=not train)

    def embed(conv, z):
      return dropout(nn.relu(conv(z)))

    def embed_with_mix(conv, z):
      pre = conv(z)
      bias = conv.variables["params"]["bias"].astype(pre.dtype)
      pre_mix = pre + roll_batch(pre) - bias
      return dropout(nn.relu(pre)), dropout(nn.relu(pre_mix))

    e_rgb, e_rgb_mix = embed_with_mix(conv_rgb, rgb)
    e_flow, e_flow_mix = embed_with_mix(conv_flow, flow)

    def actionness(head, e):
      return nn.sigmoid(head(e)[..., 0])

    action_rgb, action_flow = actionness(head_rgb, e_rgb), actionness(head_flow, e_flow)
    action_rgb_mix = actionness(head_rgb, e_rgb_mix)
    action_flow_mix = actionness(head_flow, e_flow_mix)
    a = fused_actionness(action_flow, action_rgb, hp.rgb_weight)

    # 4. Main embedding.
    e = embed(conv(h, self.encoder_kernel, name="encoder"), x)

    # 5-6. Multilevel semantics: one FC over the three second-order poolings.
    p = second_order_pool(e, mask)
    pooled = jnp.concatenate(
        [p, second_order_pool(e_rgb, mask), second_order_pool(e_flow, mask)], axis=0)
    fc = torch_dense(c, h * h, "fc", **kw)
    video_logits, logits_rgb, logits_flow = jnp.split(fc(pooled), 3, axis=0)
    semantic = SemanticProjection(h, self.fc1_outer_grad, name="fc1", **kw)(p)

    # 7-8. Semantic propagation and the class activation sequence.
    e_prop = e + a[..., None] * semantic[:, None, :]
    cas = conv(c, 1, name="cls")(e_prop)
    cas_bg = cas * (1.0 - a)[..., None]

    return SALOutputs(
        cas=cas, cas_bg=cas_bg,
        action_flow=action_flow, action_rgb=action_rgb,
        action_flow_mix=action_flow_mix, action_rgb_mix=action_rgb_mix,
        video_logits=video_logits, video_logits_flow=logits_flow,
        video_logits_rgb=logits_rgb)


def build_model(num_classes: int, hp, *, feature_dim: int = 2048,
                dtype: Optional[Dtype] = None,
                param_dtype: Dtype = jnp.float32) -> SAL:
  """SAL with the widths, encoder kernel and dropout of a `SALHparams`."""
  return SAL(num_classes=num_classes, feature_dim=feature_dim, hidden_dim=hp.hidden_dim,
             encoder_kernel=hp.encoder_kernel, dropout_rate=hp.dropout_rate,
             dtype=dtype, param_dtype=param_dtype)
