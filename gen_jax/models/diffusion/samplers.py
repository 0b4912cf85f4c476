"""Samplers of the reverse process: ancestral (DDPM) and DDIM with eta, on any grid of times.

One step from time t to an earlier time s (lambda_s > lambda_t), given the denoiser's (x_hat, eps_hat)
at z_t (Song et al. 2021, "Denoising Diffusion Implicit Models", eq. 12, in log-SNR form):

  z_s = alpha_s x_hat + sqrt(sigma_s^2 - c^2) eps_hat + c xi,   xi ~ N(0, I),
  c^2 = eta^2 sigma_s^2 (1 - e^{lambda_t - lambda_s})  (eta^2 times the posterior variance).

eta = 0 is deterministic DDIM; eta = 1 draws from q(z_s | z_t, x = x_hat), the ancestral DDPM step
of Ho et al. 2020 with the posterior variance sigma-tilde^2 (`process.posterior`: the same mean and
variance, as the tests check). The loop is a `lax.scan` over the grid, never a Python loop.

Grids run from t = 1 to t = 0. Continuous-time models take `num_steps` equal steps; models with a
discrete schedule (DDPM's T states at t_i = (i-1)/(T-1)) take `num_steps` of those states, evenly
spaced in index (DDIM's "uniform" skipping), so num_steps = T - 1 is DDPM's full chain.

`clip_denoised` clips x_hat to the data range [-1, 1] before each step, as DDPM's sampler does for
images; it changes only sampling, never a likelihood, and is off by default for vectors.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.models.diffusion.process import _per_example, alpha_sigma

# denoise_fn(z [B, ...], t [B]) -> (x_hat, eps_hat); log_snr_fn(t) -> lambda(t)
DenoiseFn = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]


def sampling_grid(num_steps: int, discrete_grid: np.ndarray | None = None, t_start: float = 1.0
                  ) -> np.ndarray:
  """Times from t_start down to 0 (float32 [num_steps + 1]): equal steps, or states of a discrete grid.

  Raises ValueError if num_steps < 1, t_start is outside (0, 1], or a discrete grid has fewer than
  num_steps + 1 states at or below t_start.
  """
  if not isinstance(num_steps, (int, np.integer)) or num_steps < 1:
    raise ValueError(f"num_steps must be an int >= 1, got {num_steps!r}")
  if not 0.0 < t_start <= 1.0:
    raise ValueError(f"t_start must lie in (0, 1], got {t_start}")
  if discrete_grid is None:
    return np.linspace(t_start, 0.0, num_steps + 1, dtype=np.float32)
  grid = np.asarray(discrete_grid, np.float32)
  last = int(np.searchsorted(grid, t_start + 1e-6, side="right")) - 1  # the last state <= t_start
  if num_steps > last:
    raise ValueError(f"num_steps={num_steps} needs {num_steps + 1} states of the discrete grid at or "
                     f"below t_start={t_start}; there are {last + 1}")
  indices = np.round(np.linspace(last, 0, num_steps + 1)).astype(np.int64)
  return grid[indices]


def generalized_step(z_t: jax.Array, x_hat: jax.Array, eps_hat: jax.Array, log_snr_s: jax.Array,
                     log_snr_t: jax.Array, eta: float, noise: jax.Array) -> jax.Array:
  """One DDIM(eta) step z_t -> z_s (see the module doc); log-SNRs scalar or per example [B]."""
  del z_t  # the step is written with (x_hat, eps_hat); z_t = alpha_t x_hat + sigma_t eps_hat
  log_snr_s = _per_example(log_snr_s, x_hat)
  log_snr_t = _per_example(log_snr_t, x_hat)
  alpha_s, sigma_s = alpha_sigma(log_snr_s)
  posterior_var = sigma_s ** 2 * -jnp.expm1(log_snr_t - log_snr_s)
  c_sq = eta ** 2 * posterior_var
  return alpha_s * x_hat + jnp.sqrt(jnp.maximum(sigma_s ** 2 - c_sq, 0.0)) * eps_hat + jnp.sqrt(c_sq) * noise


def run_sampler(denoise_fn: DenoiseFn, log_snr_fn: Callable[[jax.Array], jax.Array], z_start: jax.Array,
                times: np.ndarray, rng: jax.Array, eta: float = 1.0, clip_denoised: bool = False,
                known: tuple[jax.Array, jax.Array] | None = None, return_trajectory: bool = False):
  """Runs DDIM(eta) steps along `times` (descending, ending at 0) from z_start at times[0].

  Returns z at times[-1] = 0 ([B, ...]), and with return_trajectory the x_hat of every step
  [len(times) - 1, B, ...] as well. `known` = (x, mask) replaces the masked part of each new z_s by
  a fresh draw from q(z_s | x) (inpainting by replacement, Song et al. 2021 "Score-based generative
  modeling through SDEs", appendix I.2; mask 1 = known).
  """
  times = jnp.asarray(times, jnp.float32)
  batch = z_start.shape[0]

  def step(z_t, inputs):
    t, s, key = inputs
    noise_key, known_key = jax.random.split(key)
    x_hat, eps_hat = denoise_fn(z_t, jnp.full((batch,), t))
    if clip_denoised:
      x_hat = jnp.clip(x_hat, -1.0, 1.0)
      alpha_t, sigma_t = alpha_sigma(log_snr_fn(t))
      eps_hat = (z_t - alpha_t * x_hat) / sigma_t
    log_snr_s, log_snr_t = log_snr_fn(s), log_snr_fn(t)
    z_s = generalized_step(z_t, x_hat, eps_hat, log_snr_s, log_snr_t, eta,
                           jax.random.normal(noise_key, z_t.shape))
    if known is not None:
      x_known, mask = known
      alpha_s, sigma_s = alpha_sigma(log_snr_s)
      z_known = alpha_s * x_known + sigma_s * jax.random.normal(known_key, z_t.shape)
      z_s = jnp.where(mask > 0, z_known, z_s)
    return z_s, (x_hat if return_trajectory else None)

  keys = jax.random.split(rng, times.shape[0] - 1)
  z_end, trajectory = jax.lax.scan(step, z_start, (times[:-1], times[1:], keys))
  return (z_end, trajectory) if return_trajectory else z_end
