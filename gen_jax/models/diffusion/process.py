"""The variance-preserving forward process and its Gaussian posteriors, in terms of the log-SNR.

With lambda = log(alpha^2 / sigma^2) (see `schedules`), z_t = alpha_t x + sigma_t eps and, for
s < t (lambda_s > lambda_t), the posterior of the earlier state given the later one and the data is
Gaussian (Ho et al. 2020, eq. 6-7; Kingma et al. 2021, "Variational Diffusion Models", appendix A):

  q(z_s | z_t, x) = N(mu, var),
  mu  = (alpha_s / alpha_t) e^{lambda_t - lambda_s} z_t + alpha_s (1 - e^{lambda_t - lambda_s}) x,
  var = sigma_s^2 (1 - e^{lambda_t - lambda_s}),

written with expm1 so that neighbouring steps (lambda_t -> lambda_s) keep their precision.

A denoiser predicts one of (Salimans & Ho 2022 for v):
  "eps": eps_hat, then x_hat = (z - sigma eps_hat) / alpha;
  "x0":  x_hat, then eps_hat = (z - alpha x_hat) / sigma;
  "v":   v_hat (v = alpha eps - sigma x), then x_hat = alpha z - sigma v_hat, eps_hat = sigma z + alpha v_hat;
  "edm": F of EDM's preconditioned denoiser D = c_skip y + c_out F(c_in y) (Karras et al. 2022), `edm`.
`predictions` turns any of them into (x_hat, eps_hat); `prediction_target` is what the "simple"
loss regresses onto.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

PREDICTIONS = ("eps", "x0", "v", "edm")


def _per_example(value: jax.Array, like: jax.Array) -> jax.Array:
  """Broadcasts a per-example value [B] (or a scalar) against data [B, ...]."""
  value = jnp.asarray(value, jnp.float32)
  return value.reshape(value.shape + (1,) * (like.ndim - value.ndim))


def alpha_sigma(log_snr: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(alpha, sigma) with alpha^2 = sigmoid(lambda), sigma^2 = sigmoid(-lambda)."""
  return jnp.sqrt(jax.nn.sigmoid(log_snr)), jnp.sqrt(jax.nn.sigmoid(-log_snr))


def diffuse(x: jax.Array, log_snr: jax.Array, eps: jax.Array) -> jax.Array:
  """z = alpha x + sigma eps; log_snr per example [B] (or scalar), x and eps [B, ...]."""
  alpha, sigma = alpha_sigma(_per_example(log_snr, x))
  return alpha * x + sigma * eps


def posterior(z_t: jax.Array, x: jax.Array, log_snr_s: jax.Array, log_snr_t: jax.Array
              ) -> tuple[jax.Array, jax.Array]:
  """Mean and standard deviation of q(z_s | z_t, x) for lambda_s > lambda_t (see the module doc)."""
  log_snr_s, log_snr_t = _per_example(log_snr_s, z_t), _per_example(log_snr_t, z_t)
  alpha_s, sigma_s = alpha_sigma(log_snr_s)
  alpha_t, _ = alpha_sigma(log_snr_t)
  one_minus_ratio = -jnp.expm1(log_snr_t - log_snr_s)  # 1 - e^{lambda_t - lambda_s} in (0, 1]
  mean = alpha_s / alpha_t * (1.0 - one_minus_ratio) * z_t + alpha_s * one_minus_ratio * x
  return mean, sigma_s * jnp.sqrt(one_minus_ratio)


def predictions(output: jax.Array, z: jax.Array, log_snr: jax.Array, prediction: str, sigma_data: float = 0.5
                ) -> tuple[jax.Array, jax.Array]:
  """(x_hat, eps_hat) from the denoiser's output under the `prediction` parameterisation (sigma_data:
  EDM's data standard deviation, used by "edm" only)."""
  if prediction == "edm":
    from gen_jax.models.diffusion import edm  # edm builds on this module
    return edm.predictions(output, z, log_snr, sigma_data)
  alpha, sigma = alpha_sigma(_per_example(log_snr, z))
  if prediction == "eps":
    return (z - sigma * output) / alpha, output
  if prediction == "x0":
    return output, (z - alpha * output) / sigma
  if prediction == "v":
    return alpha * z - sigma * output, sigma * z + alpha * output
  raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")


def prediction_target(x: jax.Array, eps: jax.Array, log_snr: jax.Array, prediction: str, sigma_data: float = 0.5
                      ) -> jax.Array:
  """What the denoiser should output for z = alpha x + sigma eps: eps, x, v = alpha eps - sigma x, or
  EDM's (x - c_skip y) / c_out."""
  if prediction == "edm":
    from gen_jax.models.diffusion import edm  # edm builds on this module
    return edm.prediction_target(x, eps, log_snr, sigma_data)
  if prediction == "eps":
    return eps
  if prediction == "x0":
    return x
  if prediction == "v":
    alpha, sigma = alpha_sigma(_per_example(log_snr, x))
    return alpha * eps - sigma * x
  raise ValueError(f"prediction must be one of {PREDICTIONS}, got {prediction!r}")
