"""Dequantization and bits/dim: the one place where discrete data meets continuous densities.

Discrete data x in {0, ..., L-1}^D (L = `num_levels`: 256 for 8-bit images, 17 for `digits`) is
mapped to y = (x + u) / L in [0, 1)^D with noise u in [0, 1)^D. For any density p on [0, 1)^D the
probability of the bin of x is P(x) = int_{[0,1)^D} p((x + u) / L) L^{-D} du, so by Jensen
(Theis et al. 2016, "A note on the evaluation of generative models"; Ho et al. 2019, "Flow++"):

  uniform noise u ~ U[0, 1)^D:   log P(x) >= E_u[log p((x + u) / L)] - D log L
  variational noise u ~ q(u|x):  log P(x) >= E_q[log p((x + u) / L) - log q(u | x)] - D log L

with equality when p is constant on each bin (and, in the variational case, q(u|x) is then uniform).
Both are reported in nats per example, and in bits per dimension of the discrete data:
bpd = -log P(x) / (D ln 2) (`gen_jax.data.levels.bits_per_dim`). `log_density` arguments are always the log-density of y on [0, 1)^D in
nats (a model defined on another scaling, e.g. [-1, 1], must add its log-Jacobian first).
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
from jax.scipy.stats import norm

from gen_jax import checks
from gen_jax.data.levels import check_levels, levels_to_centres


def dequantize_with_noise(x_int: jax.Array, u: jax.Array, num_levels: int) -> jax.Array:
  """y = (x + u) / L as float32, guaranteed to lie in x's bin: floor(y L) == x, 0 <= y < 1.

  u in [0, 1] is accepted (a sigmoid can round to exactly 1 in float32); y is moved by one float32
  ulp where rounding of (x + u) / L would leave the bin [x / L, (x + 1) / L).
  """
  check_levels(x_int, num_levels, "x_int")
  x = x_int.astype(jnp.float32)
  y_raw = (x + u.astype(jnp.float32)) / num_levels
  y = jax.lax.stop_gradient(y_raw)
  for _ in range(2):  # one ulp step fixes float32 rounding; a second pass covers ties
    k = jnp.floor(y * num_levels)
    y = jnp.where(k > x, jnp.nextafter(y, jnp.float32(0)), y)
    y = jnp.where(k < x, jnp.nextafter(y, jnp.float32(1)), y)
  # The ulp correction carries no gradient: dy/du = 1 / L (variational dequantization trains q).
  return y_raw + jax.lax.stop_gradient(y - y_raw)


def uniform_dequantize(rng: jax.Array, x_int: jax.Array, num_levels: int) -> jax.Array:
  """y = (x + u) / L with u ~ U[0, 1)^D: float32 of x's shape, in [0, 1), floor(y L) == x.

  Args:
    rng: a `jax.random` key.
    x_int: integer data (uint8 images [N, H, W, C] or any shape), values in {0, ..., L-1}.
    num_levels: L.
  """
  x_int = jnp.asarray(x_int)
  u = jax.random.uniform(rng, x_int.shape, jnp.float32)
  return dequantize_with_noise(x_int, u, num_levels)


def uniform_dequantize_centres(rng: jax.Array, x_int: jax.Array, num_levels: int) -> jax.Array:
  """Levels x -> points uniform over their bins on the [-1, 1] scale of the continuous-time models:
  width 2 / (L - 1) centred on `levels.levels_to_centres(x)`, float32 of x's shape.

  With y = (x + u) / L from `uniform_dequantize`, the point is (2 L y - 1) / (L - 1) - 1; a density p
  on this scale bounds log P(x) >= E_u[log p] + D log(2 / (L - 1)) (`centres_discrete_log_likelihood`).
  """
  y = uniform_dequantize(rng, x_int, num_levels)
  return (2.0 * num_levels * y - 1.0) / (num_levels - 1) - 1.0


def centres_discrete_log_likelihood(log_density: jax.Array, num_dims: int, num_levels: int) -> jax.Array:
  """Lower bound on log P(x) in nats [batch] from log p at `uniform_dequantize_centres` points: the bins
  there have width 2 / (L - 1), so log P(x) >= E_u[log p] + D log(2 / (L - 1))."""
  checks.check_positive_int(num_dims, "num_dims")
  checks.check_positive_int(num_levels, "num_levels")
  return log_density + num_dims * math.log(2.0 / (num_levels - 1))


def discrete_log_likelihood(log_density: jax.Array, num_dims: int, num_levels: int) -> jax.Array:
  """Lower bound on log P(x) in nats: log p(y) - D log L, for y = (x + u) / L.

  Averaged over u ~ U[0, 1)^D it is E_u[log p(y)] - D log L <= log P(x) (Theis et al. 2016); it is
  exact for densities constant on each bin (a uniform p gives log P(x) = -D log L).

  Args:
    log_density: log p(y) in nats per example, p a density on [0, 1)^D; shape [batch].
    num_dims: D, scalar dimensions per example (e.g. H * W * C).
    num_levels: L, discrete levels per dimension.

  Returns:
    Log-likelihood bound of the discrete data in nats per example, shape [batch].
  """
  checks.check_positive_int(num_dims, "num_dims")
  checks.check_positive_int(num_levels, "num_levels")
  return log_density - num_dims * math.log(num_levels)


def variational_discrete_log_likelihood(log_density: jax.Array, log_q_noise: jax.Array,
                                        num_dims: int, num_levels: int) -> jax.Array:
  """Variational-dequantization bound on log P(x) in nats (Ho et al. 2019, Flow++, eq. 12).

  log p((x + u) / L) - log q(u | x) - D log L, u ~ q(u|x); its mean over q is <= log P(x), with a
  gap KL(q(u|x) || p(u|x)). With q uniform (log q = 0) it is `discrete_log_likelihood`.

  Args:
    log_density: log p(y) in nats per example, y = (x + u) / L; shape [batch].
    log_q_noise: log q(u | x) in nats per example, the density of u on [0, 1)^D; shape [batch].
    num_dims: D.
    num_levels: L.
  """
  return discrete_log_likelihood(log_density - log_q_noise, num_dims, num_levels)


def logistic_normal_log_prob(z: jax.Array, eps: jax.Array, log_sigma: jax.Array) -> jax.Array:
  """log q(u) of u = sigmoid(z), z = mu + sigma eps, eps ~ N(0, 1), per dimension (nats).

  log q(u) = log N(eps; 0, 1) - log sigma - log sigmoid'(z),
  log sigmoid'(z) = log sigmoid(z) + log sigmoid(-z) = -softplus(-z) - softplus(z).
  """
  return norm.logpdf(eps) - log_sigma + jax.nn.softplus(z) + jax.nn.softplus(-z)


class VariationalDequantizer(nn.Module):
  """Flow++-style variational dequantization noise q(u | x) (Ho et al. 2019).

  u = sigmoid(mu(x) + sigma(x) * eps), eps ~ N(0, I): a logistic-normal per dimension whose
  location and scale come from a small conditional net on x (3x3 convolutions for images
  [N, H, W, C], an MLP on the flattened example otherwise). Flow++ uses a conditional flow for q;
  this is its simplest member. The last layer starts at zero (mu = 0, sigma = 1).

  Call: `y, log_q = dequantizer.apply(params, x_int, rng)` with y = (x + u) / L (float32, in x's
  bin, see `dequantize_with_noise`) and log_q = log q(u | x) in nats per example, shape [batch], the
  density of u on [0, 1)^D. Feed them to `variational_discrete_log_likelihood(log p(y), log_q, D, L)`.
  Use `method=VariationalDequantizer.noise` for (u, log_q).
  """
  num_levels: int
  hidden: int = 32

  @nn.compact
  def location_scale(self, x_int: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(mu(x), log sigma(x)), each float32 of x's shape."""
    h = levels_to_centres(x_int, self.num_levels)  # in [-1, 1]
    if h.ndim == 4:  # [N, H, W, C]
      h = nn.relu(nn.Conv(self.hidden, (3, 3))(h))
      h = nn.relu(nn.Conv(self.hidden, (3, 3))(h))
      out = nn.Conv(2 * x_int.shape[-1], (3, 3), kernel_init=nn.initializers.zeros)(h)
      mu, log_sigma = jnp.split(out, 2, axis=-1)
    else:
      flat = h.reshape(h.shape[0], -1)
      d = flat.shape[-1]
      g = nn.relu(nn.Dense(self.hidden)(flat))
      g = nn.relu(nn.Dense(self.hidden)(g))
      out = nn.Dense(2 * d, kernel_init=nn.initializers.zeros)(g)
      mu, log_sigma = (a.reshape(x_int.shape) for a in jnp.split(out, 2, axis=-1))
    return mu, log_sigma

  def noise(self, x_int: jax.Array, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(u in [0, 1]^D of x's shape, log q(u | x) in nats per example [batch])."""
    check_levels(x_int, self.num_levels, "x_int")
    mu, log_sigma = self.location_scale(x_int)
    eps = jax.random.normal(rng, x_int.shape, jnp.float32)
    z = mu + jnp.exp(log_sigma) * eps
    log_q = logistic_normal_log_prob(z, eps, log_sigma)
    return jax.nn.sigmoid(z), jnp.sum(log_q.reshape(x_int.shape[0], -1), axis=-1)

  def __call__(self, x_int: jax.Array, rng: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(y = (x + u) / L float32 in x's bin, log q(u | x) in nats per example [batch])."""
    u, log_q = self.noise(x_int, rng)
    return dequantize_with_noise(x_int, u, self.num_levels), log_q
