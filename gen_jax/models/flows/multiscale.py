"""Multi-scale architecture (Dinh et al. 2017, "Real NVP", 3.6; Kingma & Dhariwal 2018, "Glow").

Level i maps its input h_i to h_i' (optionally squeezing 2x2 space into channels on the way);
every level but the last splits h_i' in half along channels: the first half h_{i+1} continues,
the second half z_i is factored out. With a standard-normal base on every factored part and on
the output of the last level, log p(x) = sum_i log N(z_i) + log N(h_L') + sum_i log|det J_i|.

Latent arrangement (so that z has x's shape and decode(encode(x)) == x): the latent of level i
is built from the inside out as

  z^(i) = unsqueeze2d(concat_channels(z^(i+1), z_i))   if level i squeezes, else without unsqueeze,

with z^(L-1) = h_{L-1}' (unsqueezed if the last level squeezes) and z = z^(0). Squeeze, concat
and their inverses are permutations of entries, so the standard normal on z is exactly the product
of the per-level standard normals and the log-determinant is unchanged.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.models.flows.squeeze import merge_channels, split_channels, squeeze2d, unsqueeze2d


class FlowLevel(nn.Module):
  """One scale: `pre` bijectors, an optional 2x2 squeeze, then `post` bijectors.

  Attributes:
    pre: bijectors applied before the squeeze (e.g. RealNVP's checkerboard couplings).
    post: bijectors applied after the squeeze (e.g. Glow's steps, RealNVP's channel couplings).
    squeeze: whether the level squeezes [B, H, W, C] -> [B, H/2, W/2, 4C].
  """
  pre: Sequence[nn.Module] = ()
  post: Sequence[nn.Module] = ()
  squeeze: bool = True

  def forward(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    log_det = jnp.zeros(x.shape[:1], x.dtype)
    for bijector in self.pre:
      x, ld = bijector.forward(x)
      log_det = log_det + ld
    if self.squeeze:
      x = squeeze2d(x)
    for bijector in self.post:
      x, ld = bijector.forward(x)
      log_det = log_det + ld
    return x, log_det

  def inverse(self, y: jax.Array) -> jax.Array:
    for bijector in reversed(tuple(self.post)):
      y = bijector.inverse(y)
    if self.squeeze:
      y = unsqueeze2d(y)
    for bijector in reversed(tuple(self.pre)):
      y = bijector.inverse(y)
    return y


class MultiScale(nn.Module):
  """Levels with factor-out between them; z has the shape of x (arrangement in the module doc).

  Attributes:
    levels: `FlowLevel`s, outermost (full resolution) first.
  """
  levels: Sequence[FlowLevel]

  def forward(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    log_det = jnp.zeros(x.shape[:1], x.dtype)
    factored = []
    h = x
    for i, level in enumerate(self.levels):
      h, ld = level.forward(h)
      log_det = log_det + ld
      if i < len(self.levels) - 1:
        h, z_i = split_channels(h)
        factored.append(z_i)
    z = h
    for i in reversed(range(len(self.levels))):
      if i < len(self.levels) - 1:
        z = merge_channels(z, factored[i])
      if self.levels[i].squeeze:
        z = unsqueeze2d(z)
    return z, log_det

  def inverse(self, z: jax.Array) -> jax.Array:
    factored = []
    h = z
    for i, level in enumerate(self.levels):
      if level.squeeze:
        h = squeeze2d(h)
      if i < len(self.levels) - 1:
        h, z_i = split_channels(h)
        factored.append(z_i)
    for i in reversed(range(len(self.levels))):
      if i < len(self.levels) - 1:
        h = merge_channels(h, factored[i])
      h = self.levels[i].inverse(h)
    return h
