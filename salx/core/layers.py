"""Layers shared by the methods: PyTorch-equivalent Conv1d, Dense and initialisers.

The authors' models are PyTorch; these layers give the same numbers with Flax
parameter layouts (conv kernel [k, in, out], linear [in, out], bias [out]), so a
method's torch names map to its params by a rename plus a transpose.
"""

from __future__ import annotations

import math
from typing import Any, Optional

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array
Dtype = Any


# ----------------------------------------------------------------------------
# PyTorch default initialisers.


def torch_default_kernel_init() -> nn.initializers.Initializer:
  """PyTorch's Conv1d / Linear weight init: U(-1/sqrt(fan_in), 1/sqrt(fan_in)).

  kaiming_uniform(a=sqrt(5)) has bound sqrt(6 / ((1 + a^2) fan_in)) = 1/sqrt(fan_in),
  which is variance_scaling(1/3, fan_in, uniform). Flax's fan_in of a conv kernel
  [k, in, out] is k * in, as PyTorch's.
  """
  return nn.initializers.variance_scaling(1.0 / 3.0, "fan_in", "uniform")


def torch_default_bias_init(fan_in: int) -> nn.initializers.Initializer:
  """PyTorch's Conv1d / Linear bias init: U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""
  bound = 1.0 / math.sqrt(fan_in)

  def init(key, shape, dtype=jnp.float32):
    return jax.random.uniform(key, shape, dtype, -bound, bound)

  return init


def kaiming_normal_init() -> nn.initializers.Initializer:
  """kaiming_normal (fan_in, gain sqrt 2): N(0, 2 / fan_in), used for FC1."""
  return nn.initializers.variance_scaling(2.0, "fan_in", "normal")


class Conv1d(nn.Module):
  """PyTorch-style Conv1d over T (zero padding k // 2, default init) as one GEMM.

  [B, T, in] -> [B, T, features]. Parameters as flax's Conv: kernel [k, in, out],
  bias [out]. With matmul=True (default) it computes z = x @ [W_0 | ... | W_{k-1}]
  ([B, T, k * out], one matrix product) and y[t] = sum_j z[t + j - k // 2, j] + b
  with zero rows outside [0, T): the same numbers as the convolution up to
  round-off, but a single GEMM that XLA fuses and schedules well on GPUs and CPUs
  (no per-conv library launches). matmul=False uses lax.conv_general_dilated.
  """
  features: int
  kernel_size: int = 1
  matmul: bool = True
  dtype: Optional[Dtype] = None
  param_dtype: Dtype = jnp.float32

  @nn.compact
  def __call__(self, x: Array) -> Array:
    k, in_features = self.kernel_size, x.shape[-1]
    kernel = self.param("kernel", torch_default_kernel_init(),
                        (k, in_features, self.features), self.param_dtype)
    bias = self.param("bias", torch_default_bias_init(in_features * k),
                      (self.features,), self.param_dtype)
    x, kernel, bias = nn.dtypes.promote_dtype(x, kernel, bias, dtype=self.dtype)
    pad = k // 2
    if not self.matmul:
      y = jax.lax.conv_general_dilated(x, kernel, (1,), [(pad, pad)],
                                       dimension_numbers=("NWC", "WIO", "NWC"))
      return y + bias
    if k == 1:
      return jnp.einsum("btc,cn->btn", x, kernel[0]) + bias
    num_segments = x.shape[-2]
    taps = jnp.einsum("btc,cjn->btjn", x, jnp.transpose(kernel, (1, 0, 2)))
    taps = jnp.pad(taps, [(0, 0), (pad, pad), (0, 0), (0, 0)])
    y = bias
    for j in range(k):  # output t takes tap j of input t + j - pad
      y = y + taps[:, j:j + num_segments, j, :]
    return y


def torch_dense(features: int, fan_in: int, name: str, dtype, param_dtype,
                kernel_init=None, bias_init=None) -> nn.Dense:
  """Linear layer with PyTorch's default init unless told otherwise."""
  return nn.Dense(
      features,
      kernel_init=kernel_init or torch_default_kernel_init(),
      bias_init=bias_init or torch_default_bias_init(fan_in),
      dtype=dtype, param_dtype=param_dtype, name=name)
