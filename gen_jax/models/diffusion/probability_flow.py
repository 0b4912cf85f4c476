"""The probability-flow ODE of a diffusion model: exact likelihoods and deterministic sampling.

The variance-preserving forward process has marginals q_t whose evolution is matched by the ODE
(Song et al. 2021, "Score-based generative modeling through SDEs", eq. 13)

  dz/dt = f(t) z - 1/2 g(t)^2 grad log q_t(z),

which, with the score written through the denoiser (grad log q_t(z) ~ -eps_hat / sigma_t) and the
schedule in log-SNR form (alpha^2 = sigmoid(lambda), so dlog alpha/dlambda = sigma^2 / 2 and
dlog sigma/dlambda = -alpha^2 / 2), becomes

  dz/dt = lambda'(t) / 2 (sigma_t^2 z - sigma_t eps_hat(z, t)).

It is DDIM's deterministic sampler in the limit of small steps. By the instantaneous change of
variables (Chen et al. 2018), the model's density of z_0 follows from integrating t = 0 -> 1:

  log p_0(z_0) = log N(z_1; 0, I) + int_0^1 div_z (dz/dt) dt,

with the divergence exact (D Jacobian-vector products; small D) or Hutchinson's estimate
eps^T J eps (one Jacobian-vector product; FFJORD, Grathwohl et al. 2019) with eps fixed along a
solve -- unbiased for the log-density, a stochastic estimate per solve.

Discrete data (levels x of L values) is scored by uniform dequantization: z_0 = the bin centre of x
plus noise uniform over its bin (width 2 / (L - 1)), so (`gen_jax.data.dequantize`)
  log P(x) >= E_u[log p_0(z_0)] + D log(2 / (L - 1)).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from gen_jax.data import dequantize
from gen_jax import ode
from gen_jax.models.diffusion.process import alpha_sigma

DIVERGENCES = ode.DIVERGENCES


def velocity_field(denoise_fn: Callable, log_snr_and_derivative_fn: Callable) -> Callable:
  """(t scalar, z [B, ...]) -> dz/dt of the probability-flow ODE (see the module doc)."""
  def velocity(t, z):
    log_snr, dlog_snr_dt = log_snr_and_derivative_fn(t)
    _, sigma = alpha_sigma(log_snr)
    _, eps_hat = denoise_fn(z, jnp.full((z.shape[0],), t, jnp.float32))
    return 0.5 * dlog_snr_dt * (sigma ** 2 * z - sigma * eps_hat)
  return velocity


def log_prob(denoise_fn: Callable, log_snr_and_derivative_fn: Callable, z_0: jax.Array, rng: jax.Array,
             divergence: str = "exact", noise: str = "rademacher", method: str = "dopri5",
             rtol: float = 1e-5, atol: float = 1e-5, num_steps: int | None = None
             ) -> tuple[jax.Array, ode.ODESolution]:
  """log p_0(z_0) in nats per example [B] by the probability-flow ODE, and the ODE's solution.

  Args:
    denoise_fn: (z [B, ...], t [B]) -> (x_hat, eps_hat).
    log_snr_and_derivative_fn: t -> (lambda(t), dlambda/dt).
    z_0: points [B, ...] in the model's space.
    rng: draws Hutchinson's noise (unused for the exact divergence).
    divergence: "exact" or "hutchinson".
    noise: Hutchinson's noise, "rademacher" or "gaussian".
    method, rtol, atol, num_steps: `gen_jax.ode.solve_ode`'s solver ("dopri5" adaptive; fixed steps).
  """
  return ode.log_prob(velocity_field(denoise_fn, log_snr_and_derivative_fn), z_0, 0.0, 1.0, rng, divergence,
                      noise, method=method, rtol=rtol, atol=atol, num_steps=num_steps)


def sample(denoise_fn: Callable, log_snr_and_derivative_fn: Callable, z_1: jax.Array, method: str = "dopri5",
           rtol: float = 1e-5, atol: float = 1e-5, num_steps: int | None = None) -> tuple[jax.Array, ode.ODESolution]:
  """z_0 from z_1 by integrating the probability-flow ODE from t = 1 to t = 0 (deterministic)."""
  velocity = velocity_field(denoise_fn, log_snr_and_derivative_fn)
  solution = ode.solve_ode(velocity, z_1, 1.0, 0.0, method=method, rtol=rtol, atol=atol, num_steps=num_steps)
  return solution.y, solution


# The [-1, 1]-scale dequantization, shared with flow matching (`gen_jax.data.dequantize`).
dequantized_start = dequantize.uniform_dequantize_centres


def levels_log_likelihood(log_p0: jax.Array, num_dims: int, num_levels: int) -> jax.Array:
  """log P(x) bound from log p_0 at a dequantized z_0: log p_0 + D log(2 / (L - 1)), [B]."""
  return dequantize.centres_discrete_log_likelihood(log_p0, num_dims, num_levels)
