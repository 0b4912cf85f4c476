"""The divergence of a per-example vector field, exactly or by Hutchinson's estimator.

The probability-flow ODE dz/dt = f(z, t) changes the log-density by the instantaneous change of
variables (Chen et al. 2018, "Neural Ordinary Differential Equations", theorem 1):

  d log p(z_t) / dt = -div f(z_t) = -tr(df/dz).

f maps a batch [B, ...] to [B, ...] acting on each example separately, so its Jacobian is block
diagonal and the divergence of example b is the trace of its own D x D block (D = prod of the
event shape). Both functions return (f(x), div [B]), so that the ODE right-hand side calls the
network once.

`exact_divergence`: tr J = sum_i e_i^T J e_i, D Jacobian-vector products with the basis vectors e_i
(after one linearisation of f): exact, O(D) cost, for D up to a few hundred.

`hutchinson_divergence` (Hutchinson 1989, "A stochastic estimator of the trace of the influence
matrix"; as in FFJORD, Grathwohl et al. 2019, and score_sde, Song et al. 2021): for noise eps with
E[eps] = 0 and E[eps eps^T] = I,

  E[eps^T J eps] = tr J,

from ONE Jacobian-vector product per draw. Its variance, with S = (J + J^T) / 2:
  Rademacher eps (+-1):  Var = sum_{i != j} (J_ij^2 + J_ij J_ji) = 2 (||S||_F^2 - sum_i J_ii^2),
  Gaussian eps:          Var = sum_{i, j} (J_ij^2 + J_ij J_ji)   = 2 ||S||_F^2,
so Rademacher noise is never worse, and exact for a diagonal J (Hutchinson 1989).
"""
from __future__ import annotations

import math
from typing import Callable

import jax
import jax.numpy as jnp

NOISE_KINDS = ("rademacher", "gaussian")

Field = Callable[[jax.Array], jax.Array]


def exact_divergence(f: Field, x: jax.Array, *, chunk_size: int | None = None
                     ) -> tuple[jax.Array, jax.Array]:
  """(f(x), tr(df/dx) per example [B]) from D Jacobian-vector products.

  Args:
    f: maps [B, ...] to the same shape, each example independently of the others.
    x: [B, ...].
    chunk_size: basis vectors per pass; None takes all D at once (fastest, D times the memory of
      one Jacobian-vector product), an integer k runs ceil(D / k) passes of k in a `lax.map`.
  """
  _check_batch(x)
  batch, dim = x.shape[0], math.prod(x.shape[1:])
  fx, f_jvp = jax.linearize(f, x)
  _check_same_shape(fx, x)

  def diagonal_entry(i):  # J_ii of every example: [B]
    e_i = jnp.zeros((batch, dim), x.dtype).at[:, i].set(1).reshape(x.shape)
    return f_jvp(e_i).reshape(batch, dim)[:, i]

  indices = jnp.arange(dim)
  if chunk_size is None:
    diagonal = jax.vmap(diagonal_entry)(indices)
  else:
    diagonal = jax.lax.map(diagonal_entry, indices, batch_size=chunk_size)
  return fx, jnp.sum(diagonal, axis=0)  # [D, B] -> [B]


def hutchinson_divergence(f: Field, x: jax.Array, noise: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(f(x), eps^T (df/dx) eps per example [B]): an unbiased estimate of the divergence.

  Args:
    f: maps [B, ...] to the same shape, each example independently of the others.
    x: [B, ...].
    noise: eps, x's shape, zero mean and identity covariance per example (`divergence_noise`).
  """
  _check_batch(x)
  if noise.shape != x.shape:
    raise ValueError(f"noise must have x's shape {tuple(x.shape)}, got {tuple(noise.shape)}")
  noise = noise.astype(x.dtype)
  fx, j_eps = jax.jvp(f, (x,), (noise,))
  _check_same_shape(fx, x)
  return fx, jnp.sum((noise * j_eps).reshape(x.shape[0], -1), axis=1)


def divergence_noise(rng: jax.Array, shape, kind: str = "rademacher",
                     dtype=jnp.float32) -> jax.Array:
  """Noise for `hutchinson_divergence`: independent +-1 ("rademacher") or N(0, 1) ("gaussian")."""
  if kind == "rademacher":
    return jax.random.rademacher(rng, tuple(shape), dtype)
  if kind == "gaussian":
    return jax.random.normal(rng, tuple(shape), dtype)
  raise ValueError(f"kind must be one of {NOISE_KINDS}, got {kind!r}")


def _check_batch(x) -> None:
  if x.ndim < 1:
    raise ValueError(f"x must be a batch [B, ...] (e.g. [B, D]), got a scalar of shape "
                     f"{tuple(x.shape)}")


def _check_same_shape(fx, x) -> None:
  if fx.shape != x.shape:
    raise ValueError(f"f must map x [B, ...] to the same shape {tuple(x.shape)}, "
                     f"got {tuple(fx.shape)}")
