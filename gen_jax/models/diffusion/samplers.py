"""Samplers of the reverse process: ancestral (DDPM), DDIM with eta and DPM-Solver++(2M), on any grid of times.

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

DPM-Solver++(2M) (Lu et al. 2022, "DPM-Solver++: Fast Solver for Guided Sampling of Diffusion
Probabilistic Models", Algorithm 2) solves the probability-flow ODE in its data-prediction form. With
DPM-Solver's l = lambda / 2 = log(alpha / sigma) (half our log-SNR), step i from t_{i-1} to t_i:

  h_i = l_i - l_{i-1},  r_i = h_{i-1} / h_i,
  D_i = (1 + 1 / (2 r_i)) x_hat_{i-1} - 1 / (2 r_i) x_hat_{i-2}     (second order, multistep)
  D_i = x_hat_{i-1}                                                  (first order: DDIM, eta = 0)
  z_i = (sigma_i / sigma_{i-1}) z_{i-1} - alpha_i (e^{-h_i} - 1) D_i,

x_hat_{i-1} the denoiser at (z_{i-1}, t_{i-1}): one evaluation per step, the previous one reused. The
first step is first order (there is no x_hat_{i-2}); with `lower_order_final` (the default, as in
diffusers' `DPMSolverMultistepScheduler`) so is the last when there are fewer than 15 steps, which
diffusers finds stabilises few-step sampling (on the Gaussian test's 10 steps it also lowers the error,
0.044 against 0.063). Its global error is O(h^2) against DDIM's O(h); the tests check both orders and
diffusers' trajectories.

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

SAMPLERS = ("ddim", "dpm_solver_2m", "edm_heun")  # "edm_heun": `edm_sampler.run_edm_heun`
LOWER_ORDER_FINAL_BELOW = 15  # diffusers' threshold: fewer steps than this end with a first-order step


def check_sampler(sampler: str) -> None:
  """Raises ValueError unless `sampler` is one of SAMPLERS."""
  if sampler not in SAMPLERS:
    raise ValueError(f"sampler must be one of {SAMPLERS}, got {sampler!r}")


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


def _broadcast(value: jax.Array, like: jax.Array) -> jax.Array:
  """A scalar or per-example value [B] against data [B, ...], its dtype kept (no float32 cast)."""
  value = jnp.asarray(value)
  return value.reshape(value.shape + (1,) * (like.ndim - value.ndim))


def dpm_solver_2m_step(z_t: jax.Array, x_hat: jax.Array, x_hat_prev: jax.Array, log_snr_s: jax.Array,
                       log_snr_t: jax.Array, log_snr_prev: jax.Array, second_order: jax.Array) -> jax.Array:
  """One DPM-Solver++(2M) step z_t -> z_s (see the module doc): x_hat at (z_t, t), x_hat_prev at the
  previous grid time, whose log-SNR is log_snr_prev; second_order False is DDIM's eta = 0 step and
  ignores x_hat_prev. Log-SNRs scalar or per example [B]."""
  log_snr_s, log_snr_t, log_snr_prev = (_broadcast(v, z_t) for v in (log_snr_s, log_snr_t, log_snr_prev))
  h = 0.5 * (log_snr_s - log_snr_t)                                     # > 0: toward less noise
  h_prev = jnp.where(second_order, 0.5 * (log_snr_t - log_snr_prev), h)  # guarded: unused when first order
  half_over_r = jnp.where(second_order, h / (2.0 * h_prev), 0.0)        # 1 / (2 r), r = h_prev / h
  d = (1.0 + half_over_r) * x_hat - half_over_r * x_hat_prev
  alpha_s, sigma_s = alpha_sigma(log_snr_s)
  _, sigma_t = alpha_sigma(log_snr_t)
  return sigma_s / sigma_t * z_t - alpha_s * jnp.expm1(-h) * d


def dpm_solver_2m_orders(num_steps: int, lower_order_final: bool = True) -> np.ndarray:
  """Which of `num_steps` steps are second order (bool [num_steps]): all but the first, and but the
  last where lower_order_final and num_steps < LOWER_ORDER_FINAL_BELOW."""
  second_order = np.arange(num_steps) > 0
  if lower_order_final and num_steps < LOWER_ORDER_FINAL_BELOW:
    second_order[-1] = False
  return second_order


def run_dpm_solver(denoise_fn: DenoiseFn, log_snr_fn: Callable[[jax.Array], jax.Array], z_start: jax.Array,
                   times: np.ndarray, lower_order_final: bool = True, clip_denoised: bool = False,
                   return_trajectory: bool = False):
  """Runs DPM-Solver++(2M) along `times` (descending, ending at 0) from z_start at times[0].

  Deterministic (no key). Returns z at times[-1] = 0 ([B, ...]), exactly as `run_sampler` ends, and
  with return_trajectory the x_hat of every step [len(times) - 1, B, ...] as well. lower_order_final
  (default True, diffusers' default): the last step is first order when there are fewer than
  LOWER_ORDER_FINAL_BELOW steps; False: Algorithm 2 as written, second order after the first step.
  The times keep their dtype (`sampling_grid` gives float32).

  Raises ValueError if times has fewer than 2 entries.
  """
  times = jnp.asarray(times)
  if times.ndim != 1 or times.shape[0] < 2:
    raise ValueError(f"times must be a vector of >= 2 times (t_start ... 0), got shape {times.shape}")
  batch = z_start.shape[0]
  second_order = jnp.asarray(dpm_solver_2m_orders(times.shape[0] - 1, lower_order_final))

  def step(carry, inputs):
    z_t, x_hat_prev, log_snr_prev = carry
    t, s, second = inputs
    x_hat, _ = denoise_fn(z_t, jnp.full((batch,), t))
    if clip_denoised:
      x_hat = jnp.clip(x_hat, -1.0, 1.0)
    log_snr_t = log_snr_fn(t)
    z_s = dpm_solver_2m_step(z_t, x_hat, x_hat_prev, log_snr_fn(s), log_snr_t, log_snr_prev, second)
    return (z_s, x_hat, log_snr_t), (x_hat if return_trajectory else None)

  init = (z_start, jnp.zeros_like(z_start), log_snr_fn(times[0]))
  (z_end, _, _), trajectory = jax.lax.scan(step, init, (times[:-1], times[1:], second_order))
  return (z_end, trajectory) if return_trajectory else z_end
