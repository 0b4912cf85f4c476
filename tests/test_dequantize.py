"""Dequantization and bits/dim against exact discrete likelihoods and autodiff."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.data import dequantize as dq
from gen_jax.data import levels

_BELOW_ONE = float(np.nextafter(np.float32(1), np.float32(0)))


@pytest.mark.parametrize("num_levels", [2, 17, 255, 256])
def test_dequantize_with_noise_stays_in_bin_at_the_edges(num_levels):
  # Every level with u at 0, just below 1, exactly 1 (a saturated sigmoid) and inside.
  us = np.array([0.0, 1e-8, 0.5, _BELOW_ONE, 1.0], np.float32)
  x = np.repeat(np.arange(num_levels, dtype=np.int32), len(us))
  u = np.tile(us, num_levels)
  y = np.asarray(dq.dequantize_with_noise(jnp.asarray(x), jnp.asarray(u), num_levels))
  assert y.dtype == np.float32
  assert y.min() >= 0 and y.max() < 1
  np.testing.assert_array_equal(np.floor(y * np.float32(num_levels)), x)


@pytest.mark.parametrize("num_levels", [17, 256])
def test_uniform_dequantize_in_bin_and_uniform(num_levels):
  x = jnp.asarray(np.random.default_rng(0).integers(0, num_levels, (64, 8, 8, 1)), jnp.uint8)
  y = np.asarray(jax.jit(dq.uniform_dequantize, static_argnums=2)(jax.random.key(1), x, num_levels))
  assert y.shape == x.shape and y.dtype == np.float32
  assert y.min() >= 0 and y.max() < 1
  np.testing.assert_array_equal(np.floor(y * num_levels), np.asarray(x))
  frac = y * num_levels - np.asarray(x)  # the noise u, ~ U[0, 1): mean 1/2, variance 1/12
  assert abs(frac.mean() - 0.5) < 0.02 and abs(frac.var() - 1 / 12) < 0.01


def test_uniform_density_gives_exactly_minus_d_log_l():
  num_dims, num_levels = 3 * 32 * 32, 256
  log_p = jnp.zeros((4,))  # the uniform density on [0, 1)^D
  ll = dq.discrete_log_likelihood(log_p, num_dims, num_levels)
  np.testing.assert_allclose(ll, -num_dims * math.log(256), rtol=1e-6)
  np.testing.assert_allclose(levels.bits_per_dim(-ll, num_dims), 8.0, rtol=1e-6)


def test_bound_is_exact_for_piecewise_constant_density():
  # p(y) = P(bin(y)) L^D on [0, 1)^D with a random table P: log p(y) - D log L == log P(x) for
  # every noise u, the bound has no gap.
  num_levels, num_dims = 5, 2
  table = np.random.default_rng(0).dirichlet(np.ones(num_levels**num_dims)).reshape(5, 5)
  x = jnp.asarray(np.random.default_rng(1).integers(0, num_levels, (200, num_dims)), jnp.int32)
  y = dq.uniform_dequantize(jax.random.key(1), x, num_levels)
  bins = np.floor(np.asarray(y) * num_levels).astype(int)
  log_p = np.log(table[bins[:, 0], bins[:, 1]] * num_levels**num_dims)
  ll = dq.discrete_log_likelihood(jnp.asarray(log_p), num_dims, num_levels)
  exact = np.log(table[np.asarray(x)[:, 0], np.asarray(x)[:, 1]])
  np.testing.assert_allclose(ll, exact, rtol=1e-5, atol=1e-6)


def test_bound_matches_closed_form_jensen_gap():
  # p(y) = 2y on [0, 1), L = 4: P(x) = (2x + 1) / 16 and
  # E_u[log p((x + u) / L)] - log L = log(2 / 16) + (x+1) log(x+1) - x log x - 1 < log P(x).
  num_levels = 4
  u = (np.arange(200_000) + 0.5) / 200_000  # midpoint rule over u
  for x in range(num_levels):
    y = (x + u) / num_levels
    bound = float(np.mean(dq.discrete_log_likelihood(jnp.asarray(np.log(2 * y)), 1, num_levels)))
    xlogx = x * math.log(x) if x else 0.0
    closed = math.log(2 / 16) + (x + 1) * math.log(x + 1) - xlogx - 1
    assert bound == pytest.approx(closed, abs=1e-4)
    assert bound < math.log((2 * x + 1) / 16)


def test_bits_per_dim_numbers():
  np.testing.assert_allclose(levels.bits_per_dim(jnp.asarray(1000.0), 100), 1000 / (100 * math.log(2)))
  np.testing.assert_allclose(levels.bits_per_dim(jnp.asarray(784 * math.log(2)), 784), 1.0, rtol=1e-6)
  with pytest.raises(ValueError, match="num_dims"):
    levels.bits_per_dim(jnp.asarray(1.0), 0)


def test_logistic_normal_log_prob_matches_autodiff_and_normalises():
  mu, log_sigma = 0.3, -0.4
  eps = jnp.linspace(-3, 3, 7)
  u_of_eps = lambda e: jax.nn.sigmoid(mu + jnp.exp(log_sigma) * e)
  du = jax.vmap(jax.grad(u_of_eps))(eps)
  ref = jax.scipy.stats.norm.logpdf(eps) - jnp.log(du)
  z = mu + jnp.exp(log_sigma) * eps
  np.testing.assert_allclose(dq.logistic_normal_log_prob(z, eps, jnp.full_like(eps, log_sigma)), ref,
                             rtol=1e-5, atol=1e-5)
  # integral of q(u) du over (0, 1) == 1, on a fine grid in u
  u = (np.arange(1, 200_000) / 200_000).astype(np.float64)
  z = np.log(u) - np.log1p(-u)
  e = (z - mu) / math.exp(log_sigma)
  log_q = dq.logistic_normal_log_prob(jnp.asarray(z), jnp.asarray(e), jnp.full(z.shape, log_sigma))
  assert float(np.sum(np.exp(np.asarray(log_q, np.float64))) / 200_000) == pytest.approx(1.0, abs=1e-3)


@pytest.mark.parametrize("shape", [(4, 6, 6, 2), (8, 3)])
def test_variational_dequantizer_density_and_bound(shape):
  num_levels = 17
  model = dq.VariationalDequantizer(num_levels=num_levels, hidden=8)
  np_rng = np.random.default_rng(0)
  x = jnp.asarray(np_rng.integers(0, num_levels, shape), jnp.uint8)
  params = jax.jit(model.init)(jax.random.key(1), x, jax.random.key(2))
  # Move away from the zero-initialised output layer so mu(x), sigma(x) vary with x.
  params = jax.tree.map(lambda p: p + 0.05 * np_rng.standard_normal(p.shape, np.float32), params)

  @jax.jit
  def run(params, x, rng):
    u, log_q = model.apply(params, x, rng, method=model.noise)
    y, log_q2 = model.apply(params, x, rng)
    mu, log_sigma = model.apply(params, x, method=model.location_scale)
    grad_y = jax.grad(lambda p: jnp.sum(model.apply(p, x, rng)[0]))(params)
    grad_u = jax.grad(lambda p: jnp.sum(model.apply(p, x, rng, method=model.noise)[0]))(params)
    return u, log_q, y, log_q2, mu, log_sigma, grad_y, grad_u

  u, log_q, y, log_q2, mu, log_sigma, grad_y, grad_u = run(params, x, jax.random.key(4))
  np.testing.assert_array_equal(log_q, log_q2)
  assert log_q.shape == (shape[0],)
  np.testing.assert_array_equal(np.floor(np.asarray(y) * num_levels), np.asarray(x))
  # log q(u|x) from the definition: eps = (logit u - mu) / sigma,
  # log q = sum log N(eps) - log sigma - log(u (1 - u)).
  u64, mu64, ls64 = (np.asarray(a, np.float64) for a in (u, mu, log_sigma))
  eps = (np.log(u64) - np.log1p(-u64) - mu64) / np.exp(ls64)
  ref = -0.5 * eps**2 - 0.5 * math.log(2 * math.pi) - ls64 - np.log(u64 * (1 - u64))
  np.testing.assert_allclose(log_q, ref.reshape(shape[0], -1).sum(-1), rtol=1e-3, atol=1e-2)
  # For a piecewise-constant p the variational bound is log P(x) - log q(u|x) exactly, so its
  # mean over q is log P(x) - KL(q || uniform) <= log P(x).
  num_dims = math.prod(shape[1:])
  log_p = jnp.zeros(shape[0])  # uniform p: log P(x) = -D log L
  bound = dq.variational_discrete_log_likelihood(log_p, log_q, num_dims, num_levels)
  np.testing.assert_allclose(bound, -num_dims * math.log(num_levels) - log_q, rtol=1e-6)
  # Gradients reach q's parameters through y (dy/du = 1 / L despite the in-bin correction).
  for gy, gu in zip(jax.tree.leaves(grad_y), jax.tree.leaves(grad_u)):
    np.testing.assert_allclose(gy, gu / num_levels, rtol=1e-4, atol=1e-7)
  assert any(np.abs(g).max() > 0 for g in jax.tree.leaves(grad_y))


def test_bad_input_raises_with_expected_value():
  with pytest.raises(ValueError, match="integer dtype"):
    dq.uniform_dequantize(jax.random.key(0), jnp.zeros((2, 3), jnp.float32), 256)
  with pytest.raises(ValueError, match=r"\[0, 16\]"):
    dq.uniform_dequantize(jax.random.key(0), jnp.full((2, 3), 17, jnp.uint8), 17)
  with pytest.raises(ValueError, match="num_levels"):
    dq.discrete_log_likelihood(jnp.zeros(2), 4, 0)
