"""A strided transposed convolution computed as `stride^2` stride-1 convolutions ("sub-pixel" phases).

A transposed convolution with stride s (flax `nn.ConvTranspose`, `jax.lax.conv_transpose`, explicit
padding (P_lo, P_hi), kernel not flipped) correlates the kernel K with the input dilated by s:
  y[o] = sum_k u[o + k - P_lo] K[k],   u[s i] = x[i], u = 0 between the samples.
Only the taps k = (P_lo - a) mod s + s j land on samples for the outputs o = s m + a of phase a, so
  y[s m + a] = sum_j x[m + d_a + j] K[k_a + s j],   k_a = (P_lo - a) mod s,  d_a = (a + k_a - P_lo) / s:
each phase is an ordinary stride-1 correlation of x with the sub-kernel K[k_a::s] (padding -d_a low),
and the output interleaves the s^2 phases (a depth-to-space; Shi et al. 2016 "Real-Time Single Image
and Video Super-Resolution Using an Efficient Sub-Pixel Convolutional Neural Network", whose
sub-pixel convolution is this identity read backwards). The phases do the same multiply-adds as the
transposed convolution, without the s^2 - 1 of every s^2 products with the dilation's zeros, and
their gradients are stride-1 convolutions too: XLA:CPU computes the kernel gradient of an
input-dilated convolution 10-25x slower than that of a stride-1 one (benchmarks/gan_vs_pytorch.py),
which is what a DCGAN generator's training step spends most of its time on there.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


def phase_conv_transpose(x: jax.Array, kernel: jax.Array, strides: Sequence[int],
                         padding: Sequence[tuple[int, int]]) -> jax.Array:
  """`jax.lax.conv_transpose(x, kernel, strides, padding, ('NHWC', 'HWIO', 'NHWC'))` by phases.

  Args:
    x: [B, H, W, C_in].
    kernel: [k_h, k_w, C_in, C_out], each k a multiple of its stride.
    strides: (s_h, s_w).
    padding: ((lo_h, hi_h), (lo_w, hi_w)), explicit, as flax's ConvTranspose takes it; the output
      side s (H - 1) + 1 + lo + hi - k + 1 must be a multiple of s (every phase the same size).
  Returns:
    [B, H_out, W_out, C_out].
  """
  if x.ndim != 4 or kernel.ndim != 4 or x.shape[-1] != kernel.shape[2]:
    raise ValueError(f"x must be [B, H, W, C_in] and kernel [k_h, k_w, C_in, C_out], got shapes "
                     f"{tuple(x.shape)} and {tuple(kernel.shape)}")
  sides, phase_sides = x.shape[1:3], []
  for side, k, s, (lo, hi) in zip(sides, kernel.shape[:2], strides, padding):
    out = s * (side - 1) + 1 + lo + hi - k + 1
    if k % s or out % s:
      raise ValueError(f"phase_conv_transpose needs kernel sides and output sides that are multiples "
                       f"of the stride: kernel {k}, output {out}, stride {s}")
    phase_sides.append(out // s)

  def phase_padding(a, k, s, lo, side, phase_side):
    k_a = (lo - a) % s
    d_a = (a + k_a - lo) // s
    pad_lo = -d_a
    pad_hi = phase_side - 1 + (k // s) - side - pad_lo
    return k_a, (pad_lo, pad_hi)

  (s_h, s_w), (k_h, k_w) = strides, kernel.shape[:2]
  rows = []
  for a in range(s_h):
    ka, pad_h = phase_padding(a, k_h, s_h, padding[0][0], sides[0], phase_sides[0])
    row = []
    for b in range(s_w):
      kb, pad_w = phase_padding(b, k_w, s_w, padding[1][0], sides[1], phase_sides[1])
      row.append(jax.lax.conv_general_dilated(
          x, kernel[ka::s_h, kb::s_w], window_strides=(1, 1), padding=(pad_h, pad_w),
          dimension_numbers=("NHWC", "HWIO", "NHWC")))
    rows.append(jnp.stack(row, axis=3))  # [B, H', W', s_w, C_out]
  y = jnp.stack(rows, axis=2)  # [B, H', s_h, W', s_w, C_out]
  batch, ph, _, pw, _, channels = y.shape
  return y.reshape(batch, ph * s_h, pw * s_w, channels)


class PhaseConvTranspose(nn.Module):
  """flax `nn.ConvTranspose` (explicit padding, no bias option, same "kernel" parameter, same shape
  and initialiser argument) computed by `phase_conv_transpose`: the same function of the same
  parameters, so checkpoints and weight maps of one load into the other."""
  features: int
  kernel_size: Sequence[int]
  strides: Sequence[int]
  padding: Sequence[tuple[int, int]]
  use_bias: bool = True
  kernel_init: nn.initializers.Initializer = nn.linear.default_kernel_init
  bias_init: nn.initializers.Initializer = nn.initializers.zeros

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    kernel = self.param("kernel", self.kernel_init, (*self.kernel_size, x.shape[-1], self.features))
    y = phase_conv_transpose(x, kernel, self.strides, self.padding)
    if self.use_bias:
      y = y + self.param("bias", self.bias_init, (self.features,))
    return y
