"""Logit preprocessing of images in [0, 1] (Dinh et al. 2017, "Density estimation using Real NVP", 4.1).

  p = alpha + (1 - 2 alpha) x,    y = logit(p) = log p - log(1 - p),
  dy/dx = (1 - 2 alpha) / (p (1 - p)),
  log |det dy/dx| = sum_i [log(1 - 2 alpha) - log p_i - log(1 - p_i)].

alpha keeps the logit away from the infinite boundary values of pixels at exactly 0 or 1. Its
inverse is x = (sigmoid(y) - alpha) / (1 - 2 alpha), which lies in (-alpha / (1 - 2 alpha),
1 + alpha / (1 - 2 alpha)) rather than exactly [0, 1].
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


class Logit(nn.Module):
  """y = logit(alpha + (1 - 2 alpha) x), elementwise; x is expected in [0, 1].

  Attributes:
    alpha: boundary margin in [0, 0.5).
  """
  alpha: float = 0.05

  def forward(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    if not 0.0 <= self.alpha < 0.5:
      raise ValueError(f"alpha must lie in [0, 0.5), got {self.alpha}")
    p = self.alpha + (1.0 - 2.0 * self.alpha) * x
    log_p, log_1mp = jnp.log(p), jnp.log1p(-p)
    y = log_p - log_1mp
    log_det_elementwise = jnp.log1p(-2.0 * self.alpha) - log_p - log_1mp
    return y, jnp.sum(log_det_elementwise.reshape(x.shape[0], -1), axis=-1)

  def inverse(self, y: jax.Array) -> jax.Array:
    return (jax.nn.sigmoid(y) - self.alpha) / (1.0 - 2.0 * self.alpha)
