"""EDM's preconditioning and training objective (Karras et al. 2022, "Elucidating the Design Space of
Diffusion-Based Generative Models", Table 1 and Appendix B.6) on this family's variance-preserving models.

EDM writes the noisy data as y = x + sigma n, n ~ N(0, I), and its denoiser as

  D(y; sigma) = c_skip(sigma) y + c_out(sigma) F(c_in(sigma) y; c_noise(sigma)),
  c_skip = sigma_d^2 / (sigma^2 + sigma_d^2),   c_out = sigma sigma_d / sqrt(sigma^2 + sigma_d^2),
  c_in   = 1 / sqrt(sigma^2 + sigma_d^2),       c_noise = ln(sigma) / 4,

chosen (App. B.6) so that F's input and its effective training target (x - c_skip y) / c_out have unit
variance for data of standard deviation sigma_d (0.5 by default). Training draws ln sigma ~ N(P_mean,
P_std^2) (-1.2, 1.2) and minimises

  lambda(sigma) ||D(y; sigma) - x||^2,   lambda = (sigma^2 + sigma_d^2) / (sigma sigma_d)^2 = 1 / c_out^2,

i.e. ||F - (x - c_skip y) / c_out||^2 with unit weight at every sigma.

The variance-preserving z = alpha x + sigma_t eps of the log-SNR lambda_t is EDM's y scaled by alpha:
y = z / alpha, sigma = sigma_t / alpha = exp(-lambda_t / 2) (`edm_sampler.edm_sigma`). So F's input is
c_in y = z / sqrt(sigma_t^2 + sigma_d^2 alpha^2) and the "edm" prediction returns x_hat = D and
eps_hat = (y - D) / sigma = sigma / (sigma^2 + sigma_d^2) y - sigma_d / sqrt(sigma^2 + sigma_d^2) F,
the form without the cancellation of y - D at small sigma.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from gen_jax.models.diffusion.edm_sampler import edm_sigma
from gen_jax.models.diffusion.process import _per_example, alpha_sigma

SIGMA_DATA = 0.5
LOG_SIGMA_MEAN, LOG_SIGMA_STD = -1.2, 1.2  # EDM's P_mean, P_std


def preconditioning(sigma: jax.Array, sigma_data: float = SIGMA_DATA
                    ) -> tuple[jax.Array, jax.Array, jax.Array, jax.Array]:
  """(c_skip, c_out, c_in, c_noise) of EDM's Table 1 at noise levels sigma (any shape)."""
  sigma = jnp.asarray(sigma, jnp.float32)
  total = sigma ** 2 + sigma_data ** 2
  return sigma_data ** 2 / total, sigma * sigma_data / jnp.sqrt(total), 1.0 / jnp.sqrt(total), jnp.log(sigma) / 4


def loss_weight(sigma: jax.Array, sigma_data: float = SIGMA_DATA) -> jax.Array:
  """lambda(sigma) = (sigma^2 + sigma_d^2) / (sigma sigma_d)^2."""
  return (sigma ** 2 + sigma_data ** 2) / (sigma * sigma_data) ** 2


def network_time(log_snr: jax.Array) -> jax.Array:
  """c_noise = ln(sigma) / 4 = -lambda / 8, F's noise input."""
  return -jnp.asarray(log_snr, jnp.float32) / 8


def network_input(z: jax.Array, log_snr: jax.Array, sigma_data: float = SIGMA_DATA) -> jax.Array:
  """c_in y for y = z / alpha: z / sqrt(sigma_t^2 + sigma_d^2 alpha^2); log_snr [B] or scalar."""
  alpha, sigma_t = alpha_sigma(_per_example(log_snr, z))
  return z / jnp.sqrt(sigma_t ** 2 + sigma_data ** 2 * alpha ** 2)


def predictions(output: jax.Array, z: jax.Array, log_snr: jax.Array, sigma_data: float = SIGMA_DATA
                ) -> tuple[jax.Array, jax.Array]:
  """(x_hat, eps_hat) = (D(y; sigma), (y - D) / sigma) from F's output at z (module doc)."""
  log_snr = _per_example(log_snr, z)
  alpha, _ = alpha_sigma(log_snr)
  sigma = edm_sigma(log_snr)
  y = z / alpha
  c_skip, c_out, _, _ = preconditioning(sigma, sigma_data)
  eps_hat = sigma / (sigma ** 2 + sigma_data ** 2) * y - sigma_data / jnp.sqrt(sigma ** 2 + sigma_data ** 2) * output
  return c_skip * y + c_out * output, eps_hat


def prediction_target(x: jax.Array, eps: jax.Array, log_snr: jax.Array, sigma_data: float = SIGMA_DATA
                      ) -> jax.Array:
  """F's effective target (x - c_skip y) / c_out for y = x + sigma eps (App. B.6: unit variance)."""
  sigma = edm_sigma(_per_example(log_snr, x))
  c_skip, c_out, _, _ = preconditioning(sigma, sigma_data)
  return (x - c_skip * (x + sigma * eps)) / c_out


def sample_log_snr(rng: jax.Array, batch: int, log_sigma_mean: float = LOG_SIGMA_MEAN,
                   log_sigma_std: float = LOG_SIGMA_STD) -> jax.Array:
  """Training noise levels as log-SNRs [B]: ln sigma ~ N(P_mean, P_std^2), lambda = -2 ln sigma."""
  if not log_sigma_std > 0:
    raise ValueError(f"log_sigma_std (EDM's P_std) must be > 0, got {log_sigma_std}")
  log_sigma = log_sigma_mean + log_sigma_std * jax.random.normal(rng, (batch,))
  return -2.0 * log_sigma


def weighted_denoising_loss(x_hat: jax.Array, x: jax.Array, log_snr: jax.Array, sigma_data: float = SIGMA_DATA
                            ) -> jax.Array:
  """lambda(sigma) times the mean over dimensions of (D - x)^2, per example [B]."""
  batch = x.shape[0]
  weight = loss_weight(edm_sigma(jnp.asarray(log_snr, jnp.float32)), sigma_data)
  return weight * jnp.mean(((x_hat - x) ** 2).reshape(batch, -1), axis=-1)
