"""EDM's second-order Heun sampler (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based
Generative Models", Algorithm 2) for the variance-preserving models of this family.

EDM writes the probability-flow ODE in x = z / alpha and sigma = sigma_vp / alpha = exp(-lambda / 2)
(lambda the log-SNR, `process.alpha_sigma`), where the denoiser's x_hat is D(x; sigma):

  dx / dsigma = (x - D(x; sigma)) / sigma.

Over a decreasing grid sigma_0 > ... > sigma_N (our `sampling_grid` times t_0 = 1 > ... > t_N = 0,
converted), step i, with the optional churn (EDM's S_churn, S_tmin, S_tmax, S_noise):

  gamma_i   = min(S_churn / N, sqrt(2) - 1)  if S_tmin <= sigma_i <= S_tmax, else 0,
  sigma_hat = sigma_i (1 + gamma_i),   x_hat = x_i + sqrt(sigma_hat^2 - sigma_i^2) S_noise xi,  xi ~ N(0, I),
  d         = (x_hat - D(x_hat; sigma_hat)) / sigma_hat,
  x_{i+1}   = x_hat + (sigma_{i+1} - sigma_hat) d                                   (Euler),
  d'        = (x_{i+1} - D(x_{i+1}; sigma_{i+1})) / sigma_{i+1},
  x_{i+1}   = x_hat + (sigma_{i+1} - sigma_hat) (d + d') / 2                        (Heun's correction).

The last step is Euler, as EDM's step to sigma = 0 is (ours ends at sigma_N = exp(-lambda(0) / 2), not
0, and leaves z_0 to the family's decoder as the other samplers do): 2N - 1 network evaluations per
sample for N steps. The global error is O(h^2) (the tests measure order ~2 against the exact flow map).

The denoiser is a function of time, so a churned sigma_hat is turned back into a time t_hat by
bisection on the (monotone) log-SNR schedule, within [t_i, 1]; sigma_hat is capped at the model's
largest noise level sigma(t = 1), where its times end (EDM's network takes any sigma). With churn = 0
(the default) no noise is drawn, t_hat = t_i exactly and the sampler is deterministic.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.models.diffusion.process import alpha_sigma

# denoise_fn(z [B, ...], t [B]) -> (x_hat, eps_hat); log_snr_fn(t) -> lambda(t)
DenoiseFn = Callable[[jax.Array, jax.Array], tuple[jax.Array, jax.Array]]
BISECTION_STEPS = 40  # halvings of [t_i, 1]: below float32's resolution of t


def edm_sigma(log_snr: jax.Array) -> jax.Array:
  """EDM's noise level sigma_vp / alpha = exp(-lambda / 2)."""
  return jnp.exp(-0.5 * log_snr)


def churn_gamma(sigma: jax.Array, num_steps: int, churn: float, churn_tmin: float, churn_tmax: float
                ) -> jax.Array:
  """EDM's gamma_i = min(S_churn / N, sqrt(2) - 1) where S_tmin <= sigma_i <= S_tmax, else 0."""
  inside = (sigma >= churn_tmin) & (sigma <= churn_tmax)
  return jnp.where(inside, min(churn / num_steps, np.sqrt(2.0) - 1.0), 0.0)


def time_at_log_snr(log_snr_fn: Callable[[jax.Array], jax.Array], target: jax.Array, t_low: jax.Array,
                    t_high: jax.Array) -> jax.Array:
  """The t in [t_low, t_high] with log_snr_fn(t) = target, by bisection (lambda decreases in t)."""
  def halve(_, bounds):
    low, high = bounds
    mid = 0.5 * (low + high)
    above = log_snr_fn(mid) > target  # still too little noise: go later
    return jnp.where(above, mid, low), jnp.where(above, high, mid)

  low, high = jax.lax.fori_loop(0, BISECTION_STEPS, halve, (t_low, t_high))
  return 0.5 * (low + high)


def run_edm_heun(denoise_fn: DenoiseFn, log_snr_fn: Callable[[jax.Array], jax.Array], z_start: jax.Array,
                 times: np.ndarray, rng: jax.Array, churn: float = 0.0, churn_tmin: float = 0.0,
                 churn_tmax: float = float("inf"), noise_scale: float = 1.0, clip_denoised: bool = False,
                 return_trajectory: bool = False):
  """Runs EDM's Heun sampler (see the module doc) along `times` (descending) from z_start at times[0].

  churn, churn_tmin, churn_tmax, noise_scale are EDM's S_churn, S_tmin, S_tmax (in EDM's sigma) and
  S_noise; rng is used only where churn > 0. 2N - 1 denoiser evaluations for N = len(times) - 1 steps.
  Returns z at times[-1] in the variance-preserving scale (z = alpha x), as `samplers.run_dpm_solver`
  does, and with return_trajectory the first x_hat of every step [N, B, ...] as well.

  Raises ValueError if times has fewer than 2 entries or churn / noise_scale is negative.
  """
  times = jnp.asarray(times)
  if times.ndim != 1 or times.shape[0] < 2:
    raise ValueError(f"times must be a vector of >= 2 times (t_start ... 0), got shape {times.shape}")
  if churn < 0 or noise_scale < 0:
    raise ValueError(f"churn and noise_scale must be >= 0, got churn={churn}, noise_scale={noise_scale}")
  num_steps = times.shape[0] - 1
  batch = z_start.shape[0]
  log_snr_max_noise = log_snr_fn(jnp.ones((), times.dtype))  # lambda(1): sigma_hat's cap

  def denoise(x, t):
    """D(x; sigma(t)) in EDM's scale: the VP denoiser at z = alpha(t) x."""
    alpha, _ = alpha_sigma(log_snr_fn(t))
    x_hat, _ = denoise_fn(alpha * x, jnp.full((batch,), t))
    return jnp.clip(x_hat, -1.0, 1.0) if clip_denoised else x_hat

  def step(x, inputs):
    t, s, last, key = inputs
    log_snr_t = log_snr_fn(t)
    sigma, sigma_next = edm_sigma(log_snr_t), edm_sigma(log_snr_fn(s))
    gamma = churn_gamma(sigma, num_steps, churn, churn_tmin, churn_tmax) if churn > 0 else jnp.zeros(())
    if churn > 0:
      target = jnp.maximum(log_snr_t - 2.0 * jnp.log1p(gamma), log_snr_max_noise)
      t_hat = jnp.where(gamma > 0, time_at_log_snr(log_snr_fn, target, t, jnp.ones_like(t)), t)
      sigma_hat = jnp.where(gamma > 0, edm_sigma(log_snr_fn(t_hat)), sigma)
      x = x + jnp.sqrt(jnp.maximum(sigma_hat ** 2 - sigma ** 2, 0.0)) * noise_scale * jax.random.normal(key, x.shape)
    else:
      t_hat, sigma_hat = t, sigma
    x_hat = denoise(x, t_hat)
    derivative = (x - x_hat) / sigma_hat
    dt = sigma_next - sigma_hat
    x_euler = x + derivative * dt

    def heun(_):
      derivative_next = (x_euler - denoise(x_euler, s)) / sigma_next
      return x + (derivative + derivative_next) / 2 * dt

    x_next = jax.lax.cond(last, lambda _: x_euler, heun, None)  # the last step: Euler, one evaluation
    return x_next, (x_hat if return_trajectory else None)

  last = jnp.arange(num_steps) == num_steps - 1
  keys = jax.random.split(rng, num_steps)
  alpha_start, _ = alpha_sigma(log_snr_fn(times[0]))
  x_end, trajectory = jax.lax.scan(step, z_start / alpha_start, (times[:-1], times[1:], last, keys))
  alpha_end, _ = alpha_sigma(log_snr_fn(times[-1]))
  z_end = alpha_end * x_end
  return (z_end, trajectory) if return_trajectory else z_end
