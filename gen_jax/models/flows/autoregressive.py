"""Masked autoregressive affine layer (Papamakarios et al. 2017, "Masked Autoregressive Flow").

With (mu_i, alpha_i) = MADE(x)_i depending only on x_{<i} (Germain et al. 2015), the data ->
latent direction is a single parallel pass

  z_i = (x_i - mu_i(x_{<i})) * exp(-alpha_i(x_{<i})),   log |det dz/dx| = -sum_i alpha_i,

(the Jacobian is lower-triangular with diagonal exp(-alpha)). The inverse (sampling) direction

  x_i = z_i * exp(alpha_i(x_{<i})) + mu_i(x_{<i})

is sequential: D passes of MADE inside `lax.fori_loop`; after pass i the entries x_{<=i} are
final, because output i of MADE only reads x_{<i}. For stability alpha = c * tanh(h / c) with
c = `log_scale_bound`. MADE's last layer is zero-initialised, so the layer starts as the identity.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.nn.made import MADE


class MaskedAutoregressiveAffine(nn.Module):
  """One MAF layer on vectors [B, D].

  Attributes:
    hidden_sizes: widths of MADE's masked hidden layers.
    log_scale_bound: c in alpha = c * tanh(h / c).
  """
  hidden_sizes: Sequence[int] = (64, 64)
  log_scale_bound: float = 3.0

  def setup(self):
    self.made = MADE(hidden_sizes=tuple(self.hidden_sizes), params_per_input=2)

  def _shift_log_scale(self, out: jax.Array) -> tuple[jax.Array, jax.Array]:
    c = self.log_scale_bound
    return out[..., 0], c * jnp.tanh(out[..., 1] / c)

  def _check(self, x, name):
    if x.ndim != 2:
      raise ValueError(f"{name} must have rank 2 [B, D], got shape {tuple(x.shape)}")

  def forward(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    self._check(x, "x")
    mu, alpha = self._shift_log_scale(self.made(x))
    return (x - mu) * jnp.exp(-alpha), -jnp.sum(alpha, axis=-1)

  def inverse(self, z: jax.Array) -> jax.Array:
    self._check(z, "z")
    if self.is_initializing():
      self.made(z)                                          # creates MADE's parameters
    # MADE as a pure function of its parameters, so that it can run inside lax.fori_loop (a bound
    # linen submodule cannot be called inside a raw JAX control-flow trace).
    params = self.made.variables["params"]
    made = MADE(hidden_sizes=tuple(self.hidden_sizes), params_per_input=2, parent=None)

    def body(_, x):
      mu, alpha = self._shift_log_scale(made.apply({"params": params}, x))
      return z * jnp.exp(alpha) + mu

    return jax.lax.fori_loop(0, z.shape[-1], body, jnp.zeros_like(z))
