"""Diagonal Gaussians: reparameterised samples, log-densities and KL terms, per dimension.

A diagonal Gaussian is given by its mean and log standard deviation (same shape). Every function
here works per dimension; `sum_per_example` sums a [B, ...] array to [B] (nats per example).

  reparameterize:   z = mean + exp(log_std) * eps, eps ~ N(0, I)       (Kingma & Welling 2014)
  log_prob:         log N(z; mean, diag(exp(2 log_std))), per dimension
  kl_to_standard_normal:  KL(N(m, s^2) || N(0, 1)) = (m^2 + s^2 - 1) / 2 - log s, per dimension
  kl_diag_gaussians:      KL(N(m1, s1^2) || N(m2, s2^2))
                          = log(s2 / s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2, per dimension
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

LOG_2PI = math.log(2 * math.pi)


def reparameterize(rng: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
  return mean + jnp.exp(log_std) * jax.random.normal(rng, mean.shape, mean.dtype)


def log_prob(z: jax.Array, mean: jax.Array, log_std: jax.Array) -> jax.Array:
  """Per-dimension log-density of z under N(mean, exp(log_std)^2)."""
  return -0.5 * (LOG_2PI + 2 * log_std + jnp.square((z - mean) * jnp.exp(-log_std)))


def standard_normal_log_prob(z: jax.Array) -> jax.Array:
  """Per-dimension log-density of z under N(0, 1)."""
  return -0.5 * (LOG_2PI + jnp.square(z))


def sum_per_example(values: jax.Array) -> jax.Array:
  """[B, ...] -> [B]: the sum over each example's dimensions (e.g. a log-density in nats per example)."""
  return jnp.sum(values.reshape(values.shape[0], -1), axis=-1)


def kl_to_standard_normal(mean: jax.Array, log_std: jax.Array) -> jax.Array:
  """Per-dimension KL(N(mean, exp(log_std)^2) || N(0, 1))."""
  return 0.5 * (jnp.square(mean) + jnp.exp(2 * log_std) - 1.0) - log_std


def kl_diag_gaussians(mean1: jax.Array, log_std1: jax.Array, mean2: jax.Array, log_std2: jax.Array) -> jax.Array:
  """Per-dimension KL(N(mean1, exp(log_std1)^2) || N(mean2, exp(log_std2)^2))."""
  variance_ratio = jnp.exp(2 * (log_std1 - log_std2))
  return 0.5 * (variance_ratio + jnp.square((mean1 - mean2) * jnp.exp(-log_std2)) - 1.0) - (log_std1 - log_std2)
