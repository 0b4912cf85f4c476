"""Invertible 1x1 convolution, LU-parameterised (Kingma & Dhariwal 2018, "Glow", 3.2).

A 1x1 convolution with a C x C matrix W mixes the channels at every spatial position:
y[b, h, w, :] = W x[b, h, w, :]. Glow parameterises

  W = P L (U + diag(sign(s) * exp(log|s|)))

with P a fixed permutation, L unit lower-triangular, U strictly upper-triangular and s the
diagonal, so that log |det W| = sum(log|s|) costs O(C) and

  log |det dy/dx| = H * W * sum_c log|s_c|.

Initialisation (as in Glow): a random rotation W0 = QR-orthogonalised Gaussian, decomposed as
W0 = P L U; P and sign(s) stay fixed, L, U, log|s| are the trainable parameters. P and sign(s)
are not parameters (an optimiser must not move them): they are recomputed from the static
`seed`, so a flow must give each layer its own seed to get different permutations.

On vectors [B, D] the same layer is a learned invertible linear map (H * W = 1), used between
the couplings of a Neural Spline Flow (Durkan et al. 2019, "LU-linear").
"""
from __future__ import annotations

import functools
import math

import flax.linen as nn
import jax
import jax.scipy.linalg
import jax.numpy as jnp
import numpy as np
import scipy.linalg

from gen_jax import checks


@functools.lru_cache(maxsize=None)
def _lu_of_random_rotation(channels: int, seed: int):
  """(P, L, U, sign_s, log_abs_s) of W0 = P L (U + diag(s)) for a random rotation W0."""
  rng = np.random.default_rng(seed)
  w0, _ = np.linalg.qr(rng.standard_normal((channels, channels)))
  p, l, u = scipy.linalg.lu(w0)
  s = np.diag(u)
  u = np.triu(u, k=1)
  return (p.astype(np.float32), l.astype(np.float32), u.astype(np.float32),
          np.sign(s).astype(np.float32), np.log(np.abs(s)).astype(np.float32))


class Invertible1x1Conv(nn.Module):
  """y = x W^T along the last axis, W = P L (U + diag(sign(s) exp(log|s|))).

  Works on images [B, H, W, C] and vectors [B, D].

  Attributes:
    seed: static seed of the initial rotation and of the fixed permutation P and signs sign(s).
  """
  seed: int = 0

  def _factors(self, channels: int, dtype):
    p, l0, u0, sign_s, log_abs_s0 = _lu_of_random_rotation(channels, self.seed)
    lower = self.param("lower", lambda rng, shape: jnp.asarray(l0), (channels, channels))
    upper = self.param("upper", lambda rng, shape: jnp.asarray(u0), (channels, channels))
    log_abs_s = self.param("log_abs_s", lambda rng, shape: jnp.asarray(log_abs_s0), (channels,))
    eye = jnp.eye(channels, dtype=dtype)
    lower = jnp.tril(lower.astype(dtype), k=-1) + eye                     # unit lower-triangular
    upper = (jnp.triu(upper.astype(dtype), k=1)
             + jnp.diag(jnp.asarray(sign_s, dtype) * jnp.exp(log_abs_s.astype(dtype))))
    return jnp.asarray(p, dtype), lower, upper, log_abs_s.astype(dtype)

  @nn.compact
  def __call__(self, x: jax.Array, inverse: bool = False) -> tuple[jax.Array, jax.Array]:
    """forward (inverse=False) or inverse map of x, and its log |det J| [batch]."""
    checks.check_vector_or_image(x, "y" if inverse else "x")
    p, lower, upper, log_abs_s = self._factors(x.shape[-1], x.dtype)
    log_det = math.prod(x.shape[1:-1]) * jnp.sum(log_abs_s)
    if inverse:
      # W^-1 = U'^-1 L^-1 P^T by two triangular solves (better conditioned than a general inverse).
      l_inv_pt = jax.scipy.linalg.solve_triangular(lower, p.T, lower=True, unit_diagonal=True)
      w_inv = jax.scipy.linalg.solve_triangular(upper, l_inv_pt, lower=False)
      return x @ w_inv.T, jnp.broadcast_to(-log_det, x.shape[:1])
    w = p @ lower @ upper
    return x @ w.T, jnp.broadcast_to(log_det, x.shape[:1])

  def forward(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return self(x)

  def weight(self) -> jax.Array:
    """The C x C matrix W from existing parameters (call with `apply(..., method=...)`)."""
    params = self.variables["params"]
    channels = params["log_abs_s"].shape[0]
    p, _, _, sign_s, _ = _lu_of_random_rotation(channels, self.seed)
    eye = jnp.eye(channels, dtype=params["lower"].dtype)
    lower = jnp.tril(params["lower"], k=-1) + eye
    upper = jnp.triu(params["upper"], k=1) + jnp.diag(sign_s * jnp.exp(params["log_abs_s"]))
    return jnp.asarray(p) @ lower @ upper

  def inverse(self, y: jax.Array) -> jax.Array:
    return self(y, inverse=True)[0]


LULinear = Invertible1x1Conv
