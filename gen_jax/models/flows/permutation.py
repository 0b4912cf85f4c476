"""Reversal of the feature axis, the fixed permutation between MAF layers (Papamakarios et al. 2017)."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class Reverse(nn.Module):
  """y = x[..., ::-1]: a permutation of the last axis, |det| = 1, so log_det = 0."""

  def forward(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return x[..., ::-1], jnp.zeros(x.shape[:1], x.dtype)

  def inverse(self, y: jax.Array) -> jax.Array:
    return y[..., ::-1]
