"""One layer of the Gated PixelCNN (van den Oord et al. 2016, "Conditional Image Generation with
PixelCNN Decoders", section 2.2 and figure 2), without the blind spot.

  v_pre = conv_v(v)                                       vertical stack, 2p channels
  h_pre = conv_h(h) + W_link v_pre                        the vertical stack feeds the horizontal one
  v'    = tanh(v_pre[:p]) * sigmoid(v_pre[p:])            gated activation unit
  h'    = h + W_out (tanh(h_pre[:p]) * sigmoid(h_pre[p:]))     (the residual only for type B)

conv_v and conv_h are `MaskedConv2D`s of the layer's mask type (A for the first layer, B after),
W_link and W_out 1x1 convolutions. The vertical stack at a pixel sees only rows above it (see
`masked_conv`), so the link adds no dependence on the current row; the type-A first layer has no
residual connection, which would pass the pixel's own value on.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.models.autoregressive.masked_conv import MaskedConv2D, pixelcnn_mask


def gated_activation(pre: jax.Array) -> jax.Array:
  """tanh(a) * sigmoid(b) for pre = [a, b] split on the last axis: [..., 2p] -> [..., p]."""
  a, b = jnp.split(pre, 2, axis=-1)
  return jnp.tanh(a) * jax.nn.sigmoid(b)


class GatedLayer(nn.Module):
  """(v, h) [B, H, W, *] -> (v', h') [B, H, W, channels].

  Attributes:
    channels: p, the feature maps of each stack.
    kernel_size: k (odd): a k x k vertical and a 1 x k horizontal kernel.
    mask_type: "A" (first layer: the pixel itself is hidden) or "B".
  """
  channels: int
  kernel_size: int
  mask_type: str

  @nn.compact
  def __call__(self, v: jax.Array, h: jax.Array) -> tuple[jax.Array, jax.Array]:
    k, p = self.kernel_size, self.channels
    v_pre = MaskedConv2D(2 * p, pixelcnn_mask((k, k), "vertical", self.mask_type), name="vertical")(v)
    h_pre = MaskedConv2D(2 * p, pixelcnn_mask((1, k), "horizontal", self.mask_type), name="horizontal")(h)
    h_pre = h_pre + nn.Dense(2 * p, name="link")(v_pre)
    h_out = nn.Dense(p, name="out")(gated_activation(h_pre))
    if self.mask_type == "B":
      h_out = h_out + h
    return gated_activation(v_pre), h_out
