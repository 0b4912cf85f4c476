"""The variational bound of a diffusion model, term by term, in nats per example.

For data x (continuous vectors, or discrete levels mapped to bin centres in [-1, 1]) and latents
z_t = alpha_t x + sigma_t eps on t in [0, 1] (Kingma et al. 2021, "Variational Diffusion Models",
eq. 5-11):

  -log p(x) <= -ELBO(x) = KL(q(z_1 | x) || N(0, I))            prior
                        + L_diffusion(x)                        diffusion
                        - E_{q(z_0 | x)}[log p(x | z_0)]        reconstruction (decoder)

Diffusion term, with x_hat = x_hat(z_t; t) the denoiser and ||.||^2 summed over dimensions:
  discrete time, T transitions between grid points s_i < t_i (DDPM's states, Ho et al. 2020, with
  the reverse process p(z_s | z_t) = q(z_s | z_t, x = x_hat), i.e. variance sigma-tilde^2):
    L_T = sum_i 1/2 (SNR(s_i) - SNR(t_i)) ||x - x_hat(z_{t_i})||^2
        = sum_i 1/2 expm1(lambda_{s_i} - lambda_{t_i}) ||eps - eps_hat(z_{t_i})||^2,       (VDM eq. 13)
    each term the KL(q(z_s | z_t, x) || p(z_s | z_t)); estimated without bias by one uniformly drawn
    i times T, or summed over all i.
  continuous time, T -> infinity (VDM eq. 17, with lambda' = dlambda/dt < 0):
    L_inf = -1/2 E_{t ~ U(0, 1)}[lambda'(t) ||eps - eps_hat(z_t)||^2].

Decoder p(x | z_0): a Gaussian N(x_hat(z_0; 0), (sigma_0 / alpha_0)^2) per dimension -- the noise
level of z_0 in data units -- and for discrete data the same Gaussian discretized to the L bins of
width 2 / (L - 1) centred on the levels, the edge bins taking the tails (as Ho et al.'s decoder), so
the bound is on the probability of the discrete data and bits/dim need no dequantization.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from gen_jax.distributions.gaussian import sum_per_example



def prior_kl(x: jax.Array, log_snr_1: jax.Array) -> jax.Array:
  """KL(N(alpha_1 x, sigma_1^2 I) || N(0, I)) = 1/2 sum(sigma_1^2 + alpha_1^2 x^2 - 1 - log sigma_1^2); [B]."""
  log_snr_1 = jnp.asarray(log_snr_1, jnp.float32)
  alpha_sq = jax.nn.sigmoid(log_snr_1)
  # sigma^2 - 1 = -alpha^2 and -log sigma^2 = softplus(lambda): no 1 - 1 cancellation in float32.
  return 0.5 * sum_per_example(alpha_sq * x ** 2 - alpha_sq + jax.nn.softplus(log_snr_1))


def discrete_diffusion_term(eps: jax.Array, eps_hat: jax.Array, log_snr_s: jax.Array,
                            log_snr_t: jax.Array) -> jax.Array:
  """1/2 expm1(lambda_s - lambda_t) ||eps - eps_hat||^2: KL(q(z_s|z_t,x) || p(z_s|z_t)) per example [B]."""
  weight = jnp.expm1(jnp.asarray(log_snr_s, jnp.float32) - log_snr_t)
  return 0.5 * weight * sum_per_example((eps - eps_hat) ** 2)


def continuous_diffusion_term(eps: jax.Array, eps_hat: jax.Array, dlog_snr_dt: jax.Array) -> jax.Array:
  """-1/2 lambda'(t) ||eps - eps_hat||^2 per example [B]: one draw of VDM's L_inf integrand."""
  return -0.5 * dlog_snr_dt * sum_per_example((eps - eps_hat) ** 2)


def decoder_std(log_snr_0: jax.Array) -> jax.Array:
  """sigma_0 / alpha_0 = exp(-lambda_0 / 2): the decoder's standard deviation in data units."""
  return jnp.exp(-0.5 * jnp.asarray(log_snr_0, jnp.float32))
