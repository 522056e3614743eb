"""The CO2-Net / DELU network (SPEC-CO2NET-DELU section 1) as Flax Linen modules.

Both methods use the same model, class `CO2` / `DELU` of the authors' code. Arrays
are batch-major: features x [B, T, 2M] (the first M columns rgb, the last M flow),
attention hidden width H, C classes plus a background column. `CO2Net.apply`
returns a `CO2NetOutputs`; with `mutable=["intermediates"]` it also returns the
channel attention, bit-wise attention and filtered features of each cross-modal
consensus module and the classifier's hidden layer.

Parameter names mirror the authors' torch names (SPEC-CO2NET-DELU 1.6; see
`salx.methods.co2net.torch_names`): `vAttn` / `fAttn` each with `bit_wise_attn`,
`channel_conv`, `attention_0`, `attention_3`, `attention_5`; `fusion`,
`classifier_1`, `classifier_4`. Each holds a conv `kernel` [k, in, out] and `bias`
[out]. Their `feat_encoder` is never used by the forward (1.6, 3.2) and is not
built here.
"""

from __future__ import annotations

import functools
from typing import Any, Optional, Tuple

import flax
import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
Dtype = Any

LEAKY_SLOPE = 0.2            # LReLU(z) = z if z > 0 else 0.2 z (SPEC-CO2NET-DELU 1.1).
CCM_DROPOUT = 0.5            # the CCMs' dropout, hard-coded in their code (1.4).


def kaiming_uniform_init() -> nn.initializers.Initializer:
  """`weights_init`: kaiming_uniform(a=0, fan_in), U(-sqrt(6 / fan_in), sqrt(6 / fan_in)).

  SPEC-CO2NET-DELU 1.5: the leaky-relu gain is sqrt(2) (a = 0; the 0.2 slope is not
  used), so the variance is 2 / fan_in. Flax's fan_in of a conv kernel [k, in, out]
  is k * in, as PyTorch's.
  """
  return nn.initializers.variance_scaling(2.0, "fan_in", "uniform")


def leaky_relu(x: Array) -> Array:
  return nn.leaky_relu(x, LEAKY_SLOPE)


def torch_conv1d(features: int, kernel_size: int, padding: int, name: str,
                 dtype: Optional[Dtype] = None, param_dtype: Dtype = jnp.float32
                 ) -> nn.Conv:
  """PyTorch's Conv1d as a Flax Conv: cross-correlation, explicit zero padding.

  [B, T, in] -> [B, T + 2 padding - k + 1, features], y[b, t, o] = bias[o] +
  sum_i sum_j kernel[j, i, o] x[b, t + j - padding, i] with x = 0 outside [0, T)
  (SPEC-CO2NET-DELU 1.1). Weights kaiming-uniform, biases zero (1.5).
  """
  return nn.Conv(features, (kernel_size,), padding=[(padding, padding)],
                 kernel_init=kaiming_uniform_init(), bias_init=nn.initializers.zeros,
                 dtype=dtype, param_dtype=param_dtype, name=name)


class CrossModalConsensus(nn.Module):
  """CCM(main, aux), `BWA_fusion_dropout_feat_v2` (SPEC-CO2NET-DELU 1.2).

  Attributes:
    width: M, the width of each stream (1024 in the code).
    attention_hidden: H of the attention head (512).
  """
  width: int
  attention_hidden: int = 512
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, main: Array, aux: Array, *, train: bool = False,
               mask: Optional[Array] = None) -> Tuple[Array, Array]:
    """Attention and filtered features of the main stream, guided by the other.

    Args:
      main, aux: [B, T, M], zero at padded snippets.
      train: dropout on (needs a 'dropout' rng) or off.
      mask: optional [B, T] valid snippets of a padded batch: the global mean is
        over them, and what the k-3 convs read at padded positions stays zero, so
        each video gets the outputs it gets alone.

    Returns:
      (a [B, T] attention in (0, 1), f [B, T, M] filtered features).
    """
    conv = functools.partial(torch_conv1d, dtype=self.dtype, param_dtype=self.param_dtype)
    dropout = nn.Dropout(CCM_DROPOUT, deterministic=not train)
    m, h = self.width, self.attention_hidden

    # 1.2.1-2: channel attention on the global mean, a length-1 sequence: only the
    # centre tap of the k-3 conv touches data (the side taps see padding).
    if mask is None:
      mean = jnp.mean(main, axis=-2, keepdims=True)                        # [B, 1, M]
    else:
      valid = mask[..., None].astype(main.dtype)
      mean = (jnp.sum(main * valid, axis=-2, keepdims=True)
              / jnp.maximum(jnp.sum(valid, axis=-2, keepdims=True), 1.0))
    ca = dropout(leaky_relu(conv(m, 3, 1, name="channel_conv")(mean)))    # [B, 1, M]
    # 1.2.3: bit-wise attention from the other stream.
    bw = dropout(leaky_relu(conv(m, 3, 1, name="bit_wise_attn")(aux)))   # [B, T, M]
    # 1.2.4: filtered features.
    f = nn.sigmoid(bw * ca) * main                                         # [B, T, M]
    # 1.2.5: attention; the last dropout acts on the logit, before the sigmoid.
    z = dropout(leaky_relu(conv(h, 3, 1, name="attention_0")(f)))
    if mask is not None:
      z = z * mask[..., None].astype(z.dtype)
    z = leaky_relu(conv(h, 3, 1, name="attention_3")(z))
    a = nn.sigmoid(dropout(conv(1, 1, 0, name="attention_5")(z)))[..., 0]  # [B, T]

    # Named with the letters of SPEC-CO2NET-DELU 1.2 (a submodule holds the names).
    self.sow("intermediates", "ca", ca[:, 0, :])
    self.sow("intermediates", "bw", bw)
    self.sow("intermediates", "f", f)
    return a, f


@flax.struct.dataclass
class CO2NetOutputs:
  """The outputs of one CO2-Net / DELU forward pass (SPEC-CO2NET-DELU 1.3).

  Attributes:
    feat: fused features u [B, T, 2M] (after the fusion dropout in training).
    cas: class activation logits [B, T, C+1], last column background.
    attn: fused attention (v_atn + f_atn) / 2 [B, T].
    v_atn: attention of the rgb-main CCM [B, T].
    f_atn: attention of the flow-main CCM [B, T].
  """
  feat: Array
  cas: Array
  attn: Array
  v_atn: Array
  f_atn: Array


class CO2Net(nn.Module):
  """CO2-Net's model, also DELU's (SPEC-CO2NET-DELU section 1).

  Attributes:
    num_classes: C (the classifier has C + 1 outputs, the last background).
    feature_dim: D = 2M, rgb and flow halves of M each (2048 for I3D).
    attention_hidden: H of each CCM's attention head (512).
    dropout_ratio: dropout of the fusion and classifier layers (0.7).
    dtype: computation dtype (None: from inputs and params).
    param_dtype: dtype of the parameters at init.
  """
  num_classes: int
  feature_dim: int = 2048
  attention_hidden: int = 512
  dropout_ratio: float = 0.7
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array, hp: Any = None, *, train: bool = False,
               mask: Optional[Array] = None) -> CO2NetOutputs:
    """Runs the network.

    Args:
      x: features [B, T, D], zero at padded snippets.
      hp: the method's hyperparameters (the forward reads none of them: the widths
        and dropout are the module's; accepted so every salx model is called alike).
      train: dropout on (needs a 'dropout' rng) or off (`model.eval()`).
      mask: optional [B, T] valid snippets of a padded test batch (each video then
        gets its own outputs; padded positions are meaningless).

    Returns:
      CO2NetOutputs. The intermediates collection (when mutable) receives
      `vAttn/{ca [B, M] channel attention, bw [B, T, M] bit-wise attention,
      f [B, T, M] filtered features}` (SPEC-CO2NET-DELU 1.2.2-4), the same under
      `fAttn`, and `classifier_hidden` [B, T, D] (LReLU(Conv1d_c1) of the
      classifier input). Each sown value is a 1-tuple.
    """
    if x.ndim != 3 or x.shape[-1] != self.feature_dim or self.feature_dim % 2:
      raise ValueError(f"CO2Net expects features [B, T, {self.feature_dim}] with an even "
                       f"width, got shape {x.shape}")
    kw = dict(dtype=self.dtype, param_dtype=self.param_dtype)
    m, d = self.feature_dim // 2, self.feature_dim
    rgb, flow = x[..., :m], x[..., m:]
    ccm = functools.partial(CrossModalConsensus, m, self.attention_hidden, **kw)
    conv = functools.partial(torch_conv1d, **kw)
    dropout = nn.Dropout(self.dropout_ratio, deterministic=not train)

    # 1.3.1-2: the two consensus modules and the fused attention.
    del hp
    v_atn, v_feat = ccm(name="vAttn")(rgb, flow, train=train, mask=mask)
    f_atn, f_feat = ccm(name="fAttn")(flow, rgb, train=train, mask=mask)
    attn = (f_atn + v_atn) / 2.0
    # 1.3.3: fusion, dropped as the contrastive loss sees it.
    fused = jnp.concatenate([v_feat, f_feat], axis=-1)
    u = dropout(leaky_relu(conv(d, 1, 0, name="fusion")(fused)))          # [B, T, D]
    # 1.3.4: classifier.
    u_in = dropout(u)
    if mask is not None:
      u_in = u_in * mask[..., None].astype(u_in.dtype)
    hidden = leaky_relu(conv(d, 3, 1, name="classifier_1")(u_in))
    self.sow("intermediates", "classifier_hidden", hidden)
    cas = conv(self.num_classes + 1, 1, 0, name="classifier_4")(dropout(hidden))
    return CO2NetOutputs(feat=u, cas=cas, attn=attn, v_atn=v_atn, f_atn=f_atn)


def build_model(num_classes: int, hp, *, feature_dim: int = 2048,
                dtype: Optional[Dtype] = None,
                param_dtype: Dtype = jnp.float32) -> CO2Net:
  """CO2Net with the attention width and dropout of a `CO2NetHparams`."""
  return CO2Net(num_classes=num_classes, feature_dim=feature_dim,
                attention_hidden=hp.attention_hidden, dropout_ratio=hp.dropout_ratio,
                dtype=dtype, param_dtype=param_dtype)
