"""Composition of bijectors.

For f = f_n o ... o f_1 (f_1 applied first, in the data -> latent direction),
log |det df/dx| = sum_k log |det df_k/dh_{k-1}| evaluated along the path h_0 = x, h_k = f_k(h_{k-1}).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp


class Chain(nn.Module):
  """Applies `bijectors` in order in `forward` (data -> latent) and in reverse in `inverse`.

  Attributes:
    bijectors: modules with `forward(x) -> (y, log_det [batch])` and `inverse(y) -> x`.
  """
  bijectors: Sequence[nn.Module]

  def forward(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    log_det = jnp.zeros(x.shape[:1], x.dtype)
    for bijector in self.bijectors:
      x, ld = bijector.forward(x)
      log_det = log_det + ld
    return x, log_det

  def inverse(self, y: jax.Array) -> jax.Array:
    for bijector in reversed(tuple(self.bijectors)):
      y = bijector.inverse(y)
    return y
