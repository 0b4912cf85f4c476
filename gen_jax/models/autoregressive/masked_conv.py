"""Masked convolutions of the Gated PixelCNN (van den Oord et al. 2016, "Conditional Image
Generation with PixelCNN Decoders"; masks of type A/B from "Pixel Recurrent Neural Networks").

Pixels are generated in raster order. A k_h x k_w kernel centred at (k_h // 2, k_w // 2) is zero
outside a mask:

  vertical stack   (k x k):  rows above the centre (type A), or rows up to and including the centre
                             row (type B), every column: it sees a widening cone of the rows above;
  horizontal stack (1 x k):  columns left of the centre (type A), or up to and including it (type B):
                             it sees the current row up to the pixel.

The first layer is type A (a pixel never sees itself), every later one type B. With the vertical
stack strictly above the pixel from the first layer on, feeding it into the horizontal stack keeps
the network causal, and the vertical stack's full-width rows reach the pixels up and to the right
that the original PixelCNN's masked 3x3 stack missed (its blind spot).

The kernel is stored only on the bounding box of its mask (a vertical type-A 3x3 kernel is a 1x3
kernel), with the padding that keeps the output aligned with the input as for a 'SAME' convolution
of the full kernel. Where that padding is negative (a type-A kernel ends before the centre) the
input's last rows or columns are sliced off instead: XLA:CPU's gradient of a convolution with
negative padding reads outside the input (jax 0.10.2; `tests/test_autoregressive.py` checks the
gradients).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

MASK_TYPES = ("A", "B")
STACKS = ("vertical", "horizontal")


def pixelcnn_mask(kernel_size: Sequence[int], stack: str, mask_type: str) -> np.ndarray:
  """The 0/1 mask [k_h, k_w] of a `stack` convolution of `mask_type` (see the module docstring)."""
  if stack not in STACKS:
    raise ValueError(f"stack must be one of {STACKS}, got {stack!r}")
  if mask_type not in MASK_TYPES:
    raise ValueError(f"mask_type must be one of {MASK_TYPES}, got {mask_type!r}")
  kh, kw = kernel_size
  if kh % 2 == 0 or kw % 2 == 0:
    raise ValueError(f"kernel_size must be odd (a centred kernel), got {tuple(kernel_size)}")
  if stack == "horizontal" and kh != 1:
    raise ValueError(f"a horizontal-stack kernel has one row, got kernel_size {tuple(kernel_size)}")
  centre_row, centre_col = kh // 2, kw // 2
  mask = np.zeros((kh, kw), np.float32)
  if stack == "vertical":
    mask[:centre_row + (mask_type == "B")] = 1.0
  else:
    mask[:, :centre_col + (mask_type == "B")] = 1.0
  if not mask.any():
    raise ValueError(f"the {stack} type-{mask_type} mask of a {kh}x{kw} kernel is empty; use a larger kernel")
  return mask


class MaskedConv2D(nn.Module):
  """y = conv(x, W * M) + b on images [B, H, W, C], 'SAME'-aligned to the full kernel's centre.

  Attributes:
    features: output channels.
    mask: numpy 0/1 array [k_h, k_w] (odd sizes); M[i, j] = 0 cuts the input pixel at offset
      (i - k_h // 2, j - k_w // 2) from the output pixel.
  """
  features: int
  mask: np.ndarray

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    mask = np.asarray(self.mask, np.float32)
    rows, cols = np.nonzero(mask)
    i0, i1, j0, j1 = rows.min(), rows.max(), cols.min(), cols.max()
    box = mask[i0:i1 + 1, j0:j1 + 1]
    kernel = self.param("kernel", nn.initializers.lecun_normal(), box.shape + (x.shape[-1], self.features),
                        jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
    ch, cw = mask.shape[0] // 2, mask.shape[1] // 2
    x = _pad_or_slice(x, 1, int(ch - i0), int(i1 - ch))
    x = _pad_or_slice(x, 2, int(cw - j0), int(j1 - cw))
    y = jax.lax.conv_general_dilated(x, kernel * box[:, :, None, None], (1, 1), "VALID",
                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    return y + bias


def _pad_or_slice(x: jax.Array, axis: int, low: int, high: int) -> jax.Array:
  """Zero-pads `axis` by (low, high); a negative amount slices that many entries off that end."""
  x = jax.lax.slice_in_dim(x, max(0, -low), x.shape[axis] - max(0, -high), axis=axis)
  pad = [(0, 0)] * x.ndim
  pad[axis] = (max(0, low), max(0, high))
  return jnp.pad(x, pad)
