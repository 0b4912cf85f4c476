"""Divergences against the trace of the autodiff Jacobian, closed forms, and Hutchinson's moments.

Rademacher noise takes finitely many values: averaging over all 2^D sign vectors gives the
estimator's exact mean and variance, which the tests compare with tr J and with the closed form
Var = sum_{i != j} (J_ij^2 + J_ij J_ji) (Hutchinson 1989).
"""
import itertools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.ode.divergence import (divergence_noise, exact_divergence,
                                                 hutchinson_divergence)

RNG = np.random.default_rng(0)
D = 5
A = RNG.standard_normal((D, D))


def key(seed):
  return jax.random.key(seed, impl="rbg")


def mlp_field(shape, seed=1, hidden=16):
  """A random tanh MLP acting on each example of a batch [B, *shape]; returns (f, f_single)."""
  rng = np.random.default_rng(seed)
  dim = int(np.prod(shape))
  w1 = rng.standard_normal((dim, hidden)) / np.sqrt(dim)
  w2 = rng.standard_normal((hidden, dim)) / np.sqrt(hidden)
  b1 = rng.standard_normal(hidden)

  def f_single(x):  # [*shape] -> [*shape], in x's precision
    w1_, w2_, b1_ = (jnp.asarray(a, x.dtype) for a in (w1, w2, b1))
    return (jnp.tanh(x.reshape(-1) @ w1_ + b1_) @ w2_ + jnp.sin(x.reshape(-1))).reshape(shape)

  return jax.vmap(f_single), f_single


def linear_field(x):  # x [B, D] -> x A^T: Jacobian A for every example
  return x @ jnp.asarray(A, x.dtype).T


def jacobian_traces(f_single, x):
  """tr of each example's Jacobian from jax.jacobian (the independent truth)."""
  dim = int(np.prod(x.shape[1:]))
  return np.array([np.trace(np.asarray(jax.jacobian(f_single)(xb)).reshape(dim, dim)) for xb in x])


def all_signs(shape):
  """Every Rademacher vector of `shape` (one example): [2^prod(shape), *shape]."""
  signs = np.array(list(itertools.product([-1.0, 1.0], repeat=int(np.prod(shape)))))
  return signs.reshape((-1,) + tuple(shape))


def test_exact_divergence_is_the_jacobian_trace():
  shape = (2, 3)  # a non-flat event: D = 6
  f, f_single = mlp_field(shape)
  with jax.enable_x64(True):
    x = jnp.asarray(RNG.standard_normal((4,) + shape))
    fx, div = jax.jit(lambda x: exact_divergence(f, x))(x)
    _, chunked = exact_divergence(f, x, chunk_size=4)  # two lax.map passes, the last one partial
    expected = jacobian_traces(f_single, x)
    fx_direct = np.asarray(f(x))
  assert div.shape == (4,)
  np.testing.assert_allclose(np.asarray(fx), fx_direct, rtol=1e-12)
  np.testing.assert_allclose(np.asarray(div), expected, rtol=1e-10)
  np.testing.assert_allclose(np.asarray(chunked), expected, rtol=1e-10)


def test_exact_divergence_of_a_linear_map_is_its_trace():
  with jax.enable_x64(True):
    x = jnp.asarray(RNG.standard_normal((3, D)))
    _, div = exact_divergence(linear_field, x)
    # d tr(A) / dA = I: the divergence is differentiable in the field's parameters.
    grad = jax.grad(lambda a: jnp.sum(exact_divergence(lambda x: x @ a.T, x)[1]))(jnp.asarray(A))
  np.testing.assert_allclose(np.asarray(div), np.trace(A), rtol=1e-12)
  np.testing.assert_allclose(np.asarray(grad), 3 * np.eye(D), atol=1e-12)


def test_hutchinson_is_unbiased_over_all_rademacher_vectors():
  """The mean of eps^T J eps over all 2^D sign vectors is exactly tr J, for a nonlinear field."""
  f, _ = mlp_field((D,), seed=2)
  with jax.enable_x64(True):
    x = jnp.asarray(RNG.standard_normal((1, D)))
    signs = jnp.asarray(all_signs((D,)))  # [32, 1 example of D]
    fx, estimates = jax.vmap(lambda eps: hutchinson_divergence(f, x, eps[None]))(signs)
    _, exact = exact_divergence(f, x)
    fx_direct = np.asarray(f(x))
  estimates = np.asarray(estimates)
  np.testing.assert_allclose(np.asarray(fx[0]), fx_direct, rtol=1e-12)
  assert estimates.shape == (2 ** D, 1)
  np.testing.assert_allclose(estimates.mean(), float(exact[0]), rtol=1e-12)
  assert estimates.std() > 0.1  # a non-trivial estimator: single draws differ


def test_rademacher_variance_matches_the_closed_form():
  """Var = sum_{i != j} (A_ij^2 + A_ij A_ji) exactly; zero for a diagonal Jacobian."""
  off = ~np.eye(D, dtype=bool)
  closed_form = float(np.sum((A ** 2 + A * A.T)[off]))
  with jax.enable_x64(True):
    x = jnp.asarray(RNG.standard_normal((1, D)))
    signs = jnp.asarray(all_signs((D,)))
    estimate = lambda f: jax.vmap(lambda eps: hutchinson_divergence(f, x, eps[None])[1][0])(signs)
    linear = np.asarray(estimate(linear_field))
    w = jnp.asarray(RNG.standard_normal(D))
    diagonal = estimate(lambda x: jnp.tanh(x * w))  # elementwise: J = diag(w (1 - tanh^2(x w)))
    _, diagonal_exact = exact_divergence(lambda x: jnp.tanh(x * w), x)
  np.testing.assert_allclose(linear.mean(), np.trace(A), rtol=1e-12)
  np.testing.assert_allclose(linear.var(), closed_form, rtol=1e-12)
  # Every draw is exact for a diagonal Jacobian.
  np.testing.assert_allclose(np.asarray(diagonal), float(diagonal_exact[0]), rtol=1e-12)


def test_gaussian_noise_is_unbiased_with_variance_two_frobenius_sym():
  """Monte Carlo: the mean within 4 standard errors of tr A, Var near 2 ||(A + A^T) / 2||_F^2."""
  num_draws = 20_000
  x = jnp.zeros((num_draws, D), jnp.float32)  # one draw per example of a batch
  noise = divergence_noise(key(0), x.shape, "gaussian")
  _, estimates = jax.jit(lambda x, eps: hutchinson_divergence(linear_field, x, eps))(x, noise)
  estimates = np.asarray(estimates, np.float64)
  closed_form = 2 * np.sum(((A + A.T) / 2) ** 2)
  standard_error = estimates.std(ddof=1) / np.sqrt(num_draws)
  assert abs(estimates.mean() - np.trace(A)) < 4 * standard_error
  # The sample variance of a Gaussian quadratic form has relative standard error ~2.5% here.
  np.testing.assert_allclose(estimates.var(ddof=1), closed_form, rtol=0.1)


def test_rademacher_monte_carlo_on_a_nonlinear_field():
  shape = (2, 3)
  f, f_single = mlp_field(shape, seed=3)
  x = jnp.asarray(np.repeat(RNG.standard_normal((1,) + shape), 4000, axis=0), jnp.float32)
  noise = divergence_noise(key(1), x.shape)
  _, estimates = jax.jit(lambda x, eps: hutchinson_divergence(f, x, eps))(x, noise)
  exact = jacobian_traces(f_single, x[:1])[0]
  standard_error = float(jnp.std(estimates)) / np.sqrt(x.shape[0])
  assert abs(float(jnp.mean(estimates)) - exact) < 4 * standard_error


def test_divergence_noise():
  rademacher = divergence_noise(key(2), (1000, 3))
  gaussian = divergence_noise(key(2), (1000, 3), kind="gaussian")
  assert rademacher.shape == gaussian.shape == (1000, 3) and rademacher.dtype == jnp.float32
  assert set(np.unique(np.asarray(rademacher))) == {-1.0, 1.0}
  assert abs(float(jnp.mean(rademacher))) < 0.1 and abs(float(jnp.std(gaussian)) - 1) < 0.1
  with pytest.raises(ValueError, match="kind must be one of"):
    divergence_noise(key(2), (2, 3), kind="uniform")


def test_shape_errors_name_what_was_expected():
  x = jnp.ones((2, 3))
  with pytest.raises(ValueError, match=r"noise must have x's shape \(2, 3\), got \(2, 4\)"):
    hutchinson_divergence(lambda x: x, x, jnp.ones((2, 4)))
  with pytest.raises(ValueError, match=r"f must map x \[B, \.\.\.\] to the same shape \(2, 3\)"):
    exact_divergence(lambda x: x[:, :2], x)
  with pytest.raises(ValueError, match=r"f must map x \[B, \.\.\.\] to the same shape"):
    hutchinson_divergence(lambda x: x[:, :2], x, x)
  with pytest.raises(ValueError, match="x must be a batch"):
    exact_divergence(lambda x: x, jnp.ones(()))
