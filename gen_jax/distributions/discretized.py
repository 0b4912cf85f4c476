"""Densities of continuous laws discretized to the L bins of [-1, 1] (the centred model space of
`gen_jax.data.levels`): level x has bin centre c = 2 x / (L - 1) - 1 and half-width h = 1 / (L - 1),
and the edge bins take the tails, so the L masses sum to one.

  discretized_logistic_log_prob   PixelCNN++'s bins (Salimans et al. 2017), per dimension
  discretized_gaussian_log_prob   DDPM's decoder (Ho et al. 2020), per dimension
  expected_level                  E[x] of a mixture of discretized logistics
  sample_discretized_logistic     x ~ the discretized logistic
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
from jax.scipy.special import log_ndtr


def _log_one_minus_exp_neg(delta: jax.Array) -> jax.Array:
  """log(1 - exp(-delta)) for delta > 0, accurate for tiny delta (where it is log delta - delta/2)."""
  tiny = delta < 1e-6
  safe = jnp.where(tiny, 1.0, delta)
  return jnp.where(tiny, jnp.log(jnp.where(tiny, delta, 1.0)) - 0.5 * delta, jnp.log(-jnp.expm1(-safe)))


def bin_edge(j: jax.Array, num_levels: int) -> jax.Array:
  """The lower edge (2 j - 1) / (L - 1) - 1 of level j's bin (= the upper edge of level j - 1), float32."""
  return (2.0 * jnp.asarray(j, jnp.float32) - 1.0) / (num_levels - 1) - 1.0


def discretized_logistic_log_prob(x: jax.Array, mean: jax.Array, log_scale: jax.Array,
                                  num_levels: int) -> jax.Array:
  """Log-mass of level x under a logistic discretized to L bins on [-1, 1], per dimension (nats).

  Level x has bin centre c = 2 x / (L - 1) - 1 and half-width h = 1 / (L - 1); the edge bins absorb
  the tails (Salimans et al. 2017, "PixelCNN++", eq. 2):

    P(x) = sigma(a) - sigma(b),  a = (c + h - mean) / s,  b = (c - h - mean) / s,  s = exp(log_scale),

  with sigma(b) := 0 for x = 0 and sigma(a) := 1 for x = L - 1, so the L masses sum to one. The
  difference is never formed: sigma(a) - sigma(b) = sigma(a) sigma(-b) (1 - exp(-(a - b))), so

    log P(x) = -softplus(-a) [x < L-1] - softplus(b) [x > 0] + log(1 - exp(-(a - b))) [0 < x < L-1],

  finite and accurate at every scale. PixelCNN++ subtracts the two CDFs and falls back to the
  density at the bin centre times the bin width when the difference underflows; here that limit is
  taken inside `_log_one_minus_exp_neg` (log(1 - exp(-w)) -> log w for tiny bins w = a - b).
  Neighbouring bins share the float32 value of their common edge (`bin_edge`) and a - b is the
  rounded width between the rounded edges, so the masses telescope to one in float32 too (to ~1e-6,
  also where s is far below float32's resolution of the edges).

  Args:
    x: integer levels in {0, ..., L-1}.
    mean, log_scale: the logistic's location (on the [-1, 1] scale) and log-scale, x's shape.
    num_levels: L >= 2.
  """
  level = x.astype(jnp.float32)                                  # (x + 1 would wrap in uint8)
  lower_edge, upper_edge = bin_edge(level, num_levels), bin_edge(level + 1.0, num_levels)
  inverse_scale = jnp.exp(-log_scale)
  a = (upper_edge - mean) * inverse_scale
  b = (lower_edge - mean) * inverse_scale
  not_first = x > 0
  not_last = x < num_levels - 1
  width_term = _log_one_minus_exp_neg((upper_edge - lower_edge) * inverse_scale)
  return (jnp.where(not_last, -jax.nn.softplus(-a), 0.0)
          + jnp.where(not_first, -jax.nn.softplus(b), 0.0)
          + jnp.where(not_first & not_last, width_term, 0.0))


def expected_level(mean: jax.Array, log_scale: jax.Array, weights: jax.Array,
                    num_levels: int) -> jax.Array:
  """E[x] = sum_{k=1}^{L-1} P(x >= k) of a mixture of discretized logistics.

  mean, log_scale, weights: [..., K, C] (weights sum to one over K) -> [..., C] float32 levels.
  P(x >= k) = sum_j w_j sigma((mean_j - t_k) / s_j) with t_k = (2k - 1) / (L - 1) - 1, the lower edge
  of bin k.
  """
  inverse_scale = jnp.exp(-log_scale)

  def add_tail(k, total):
    edge = bin_edge(k, num_levels)
    return total + jnp.sum(weights * jax.nn.sigmoid((mean - edge) * inverse_scale), axis=-2)

  return jax.lax.fori_loop(1, num_levels, add_tail, jnp.zeros(mean.shape[:-2] + mean.shape[-1:]))


def sample_discretized_logistic(rng: jax.Array, mean: jax.Array, log_scale: jax.Array,
                                 num_levels: int) -> jax.Array:
  """Level of y ~ Logistic(mean, s): the bin round((y + 1) (L - 1) / 2), edge bins taking the tails."""
  y = mean + jnp.exp(log_scale) * jax.random.logistic(rng, mean.shape, jnp.float32)
  level = jnp.floor((y + 1.0) * (0.5 * (num_levels - 1)) + 0.5)
  return jnp.clip(level, 0, num_levels - 1).astype(jnp.uint8)


def discretized_gaussian_log_prob(levels: jax.Array, mean: jax.Array, std: jax.Array,
                                  num_levels: int) -> jax.Array:
  """log P(level) under N(mean, std^2) discretized to L bins on [-1, 1], per dimension (nats).

  Level k's bin is [c_k - h, c_k + h), c_k = 2 k / (L - 1) - 1, h = 1 / (L - 1); level 0 takes
  (-inf, c_0 + h) and level L-1 takes [c_{L-1} - h, inf). Masses are differences of normal CDFs,
  computed from whichever tail is smaller (log_ndtr), so bins far in a tail keep their precision.
  """
  k = levels.astype(jnp.float32)
  half_width = 1.0 / (num_levels - 1)
  centre = 2.0 * k * half_width - 1.0
  upper = (centre + half_width - mean) / std
  lower = (centre - half_width - mean) / std
  # log(Phi(upper) - Phi(lower)) from the tail where both CDF values are small: mirror when lower > 0,
  # then mass = Phi(b) - Phi(a) with a < b on the left tail (a = -inf for an open edge bin).
  mirror = lower > 0
  a = jnp.where(mirror, -upper, lower)
  b = jnp.where(mirror, -lower, upper)
  open_below = jnp.where(mirror, k == num_levels - 1, k == 0)  # a = -inf: mass = Phi(b)
  open_above = jnp.where(mirror, k == 0, k == num_levels - 1)  # b = +inf: mass = 1 - Phi(a)
  log_b = jnp.where(open_above, 0.0, log_ndtr(jnp.where(open_above, 0.0, b)))
  log_a = log_ndtr(jnp.where(open_below, b - 1.0, a))  # safe value where a = -inf (masked below)
  log_mass = jnp.where(open_below, log_b, log_b + jnp.log(-jnp.expm1(jnp.minimum(log_a - log_b, -1e-30))))
  return log_mass
