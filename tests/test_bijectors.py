"""Bijectors: exact inverses, log-determinants against the autodiff Jacobian, spline properties.

Every parametrised bijector is tested with its parameters perturbed by noise (the couplings'
zero-initialised last layers would otherwise make them the identity), and the tests check the
perturbation really moved the map.
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.models.flows import (ActNorm, AffineCoupling, Chain, FlowLevel, Glow, Invertible1x1Conv,
                                  Logit, LULinear, MaskedAutoregressiveAffine, MultiScale, Reverse,
                                  SplineCoupling, Squeeze, rational_quadratic_spline, squeeze2d,
                                  unsqueeze2d)
from gen_jax.models.flows import coupling
from gen_jax.nn import MADE

VEC = (3,)
IMG = (4, 4, 2)


# Test randomness comes from numpy, and flax's initialisers get "rbg" keys: on CPU the threefry
# PRNG's compile time would dominate these tiny tests.
def key(seed):
  return jax.random.key(seed, impl="rbg")


def _normal(scale=1.0):
  return lambda rng, shape: jnp.asarray(scale * rng.standard_normal(shape), jnp.float32)


def _unit(rng, shape):
  return jnp.asarray(rng.uniform(0.02, 0.98, shape), jnp.float32)


# name -> (bijector factory, event shape, input sampler)
CASES = {
    "affine_coupling_dimension": (lambda: AffineCoupling("dimension", 0, hidden=8), VEC, _normal()),
    "affine_coupling_dimension_parity1": (
        lambda: AffineCoupling("dimension", 1, hidden=8, depth=1), VEC, _normal()),
    "affine_coupling_checkerboard": (
        lambda: AffineCoupling("checkerboard", 1, hidden=4, depth=1), IMG, _normal()),
    "affine_coupling_channel": (
        lambda: AffineCoupling("channel", 0, hidden=4, depth=0), IMG, _normal()),
    "spline_coupling_dimension": (
        lambda: SplineCoupling("dimension", 1, num_bins=4, bound=1.5, hidden=8), VEC, _normal(2.0)),
    "spline_coupling_checkerboard": (
        lambda: SplineCoupling("checkerboard", 0, num_bins=3, bound=1.5, hidden=4, depth=0), IMG,
        _normal(2.0)),
    "spline_coupling_channel": (
        lambda: SplineCoupling("channel", 1, num_bins=3, bound=1.5, hidden=4, depth=1), IMG,
        _normal(2.0)),
    "actnorm_vector": (ActNorm, VEC, _normal(3.0)),
    "actnorm_image": (ActNorm, IMG, _normal(3.0)),
    "invertible_1x1_conv": (lambda: Invertible1x1Conv(seed=3), (4, 4, 3), _normal()),
    "lu_linear": (lambda: LULinear(seed=1), VEC, _normal()),
    "squeeze": (Squeeze, IMG, _normal()),
    "logit": (lambda: Logit(alpha=0.05), IMG, _unit),
    "masked_autoregressive_affine": (
        lambda: MaskedAutoregressiveAffine(hidden_sizes=(8, 8)), VEC, _normal()),
    "reverse": (Reverse, VEC, _normal()),
    "chain_glow_step": (
        lambda: Chain([ActNorm(), Invertible1x1Conv(seed=2),
                       AffineCoupling("channel", 1, hidden=4, depth=0)]), IMG, _normal()),
    "multiscale_two_levels": (
        lambda: MultiScale([FlowLevel(post=[AffineCoupling("channel", 0, hidden=4, depth=0)]),
                            FlowLevel(post=[AffineCoupling("channel", 1, hidden=4, depth=0)])]),
        IMG, _normal()),
}


def perturb(variables, seed, scale=0.1):
  """Adds N(0, scale^2) noise to every parameter, so zero-initialised layers become non-trivial."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda a: a + jnp.asarray(scale * rng.standard_normal(a.shape), a.dtype), variables)


def make(name, batch, seed=0):
  """(bijector, perturbed variables, initial variables, input x [batch, *event])."""
  factory, event_shape, sampler = CASES[name]
  bijector = factory()
  x = sampler(np.random.default_rng(seed), (batch,) + event_shape)
  variables = jax.jit(functools.partial(bijector.init, method=bijector.forward))(key(seed), x)
  return bijector, perturb(variables, seed + 1), variables, x


@pytest.mark.parametrize("name", sorted(CASES))
def test_inverse_recovers_input(name):
  bijector, variables, init_variables, x = make(name, batch=3)
  forward = jax.jit(functools.partial(bijector.apply, method=bijector.forward))
  inverse = jax.jit(functools.partial(bijector.apply, method=bijector.inverse))
  y, log_det = forward(variables, x)
  assert log_det.shape == (3,)
  assert y.size == x.size
  np.testing.assert_allclose(inverse(variables, y), x, atol=1e-4, rtol=1e-4)
  if jax.tree.leaves(variables):
    # The perturbation must have changed the map (otherwise the test could pass on an identity).
    y_init, _ = forward(init_variables, x)
    assert float(jnp.max(jnp.abs(y - y_init))) > 1e-3


@functools.lru_cache(maxsize=None)
def jacobian_case(name):
  """float64 (bijector, variables, x [2, ...], log|det| of each example's autodiff Jacobian)."""
  bijector, variables, _, x = make(name, batch=2, seed=7)
  with jax.enable_x64(True):
    variables = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), variables)
    x = jnp.asarray(x, jnp.float64)
    n = math.prod(x.shape[1:])

    @jax.jit
    def jacobian(v):
      flat = lambda v: bijector.apply(variables, v.reshape(x.shape),
                                      method=bijector.forward)[0].reshape(-1)
      return jax.jacfwd(flat)(v)

    jac = np.asarray(jacobian(x.reshape(-1)))                           # [2n, 2n]
  assert jac.dtype == np.float64
  # Examples are transformed independently: the off-diagonal blocks vanish.
  np.testing.assert_allclose(jac[:n, n:], 0.0, atol=1e-12)
  np.testing.assert_allclose(jac[n:, :n], 0.0, atol=1e-12)
  signs, logabsdets = zip(*[np.linalg.slogdet(jac[i * n:(i + 1) * n, i * n:(i + 1) * n])
                            for i in range(2)])
  assert all(sign != 0 for sign in signs)
  return bijector, variables, x, np.array(logabsdets)


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_log_det_matches_autodiff_jacobian(name, use_jit):
  bijector, variables, x, expected = jacobian_case(name)
  with jax.enable_x64(True):
    log_det_fn = lambda v, x: bijector.apply(v, x, method=bijector.forward)[1]
    log_det = (jax.jit(log_det_fn) if use_jit else log_det_fn)(variables, x)
    assert log_det.dtype == jnp.float64
  np.testing.assert_allclose(log_det, expected, atol=1e-6, rtol=1e-6)


# ---------------------------------------------------------------- rational-quadratic spline


# The spline under test, compiled (eager dispatch of its many small ops is slow on CPU).
spline = jax.jit(rational_quadratic_spline, static_argnames=("bound", "inverse"))


def _spline_params(seed, shape, num_bins, scale=1.5):
  rng = np.random.default_rng(seed)
  return tuple(jnp.asarray(scale * rng.standard_normal(shape + (k,)))
               for k in (num_bins, num_bins, num_bins - 1))


def test_spline_is_monotone_and_identity_outside_bound():
  bound, num_bins = 2.0, 5
  x = jnp.linspace(-4.0, 4.0, 2001)
  # One set of spline parameters shared by the whole grid.
  w, h, d = _spline_params(0, (), num_bins)
  y, log_det = spline(x, w, h, d, bound)
  assert bool(jnp.all(jnp.diff(y) > 0))
  outside = jnp.abs(x) > bound
  np.testing.assert_array_equal(y[outside], x[outside])
  np.testing.assert_array_equal(log_det[outside], 0.0)
  np.testing.assert_allclose(spline(jnp.array([-bound, bound]), w, h, d,
                                                       bound)[0], [-bound, bound], atol=1e-6)
  # Non-trivial: inside the interval the map is not the identity.
  assert float(jnp.max(jnp.abs(y - x))) > 0.1


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_spline_inverse_is_exact(dtype):
  with jax.enable_x64(dtype == "float64"):
    shape, bound = (4, 50), 3.0
    x = jnp.asarray(2.5 * np.random.default_rng(1).standard_normal(shape), dtype)  # in and out of [-B, B]
    w, h, d = _spline_params(2, shape, 6, scale=1.0)
    spline = jax.jit(rational_quadratic_spline, static_argnames=("bound", "inverse"))
    y, log_det = spline(x, w, h, d, bound=bound)
    x_back, log_det_inv = spline(y, w, h, d, bound=bound, inverse=True)
    # float32 round-off in y is amplified by 1 / g'(x) on the way back.
    atol = 1e-4 if dtype == "float32" else 1e-10
    np.testing.assert_allclose(x_back, x, atol=atol)
    np.testing.assert_allclose(log_det_inv, -log_det, atol=100 * atol)


def test_spline_log_det_matches_finite_difference():
  with jax.enable_x64(True):
    shape, bound, eps = (200,), 2.0, 1e-6
    x = jnp.asarray(np.random.default_rng(3).uniform(-2.5, 2.5, shape))
    w, h, d = [p.astype(jnp.float64) for p in _spline_params(4, shape, 7)]
    _, log_det = spline(x, w, h, d, bound)
    y_plus, _ = spline(x + eps, w, h, d, bound)
    y_minus, _ = spline(x - eps, w, h, d, bound)
    fd = (y_plus - y_minus) / (2 * eps)
    np.testing.assert_allclose(jnp.exp(log_det), fd, rtol=1e-5, atol=1e-7)


def test_spline_interpolates_its_knots():
  """Independent construction of the knots: g(x^k) = y^k and g'(x^k) = d^k."""
  with jax.enable_x64(True):
    num_bins, bound, min_size, min_deriv = 4, 1.5, 1e-3, 1e-3
    w, h, d = [p.astype(jnp.float64) for p in _spline_params(5, (), num_bins)]

    def knots(p):
      sizes = min_size + (1 - min_size * num_bins) * np.exp(p) / np.exp(p).sum()
      return -bound + 2 * bound * np.concatenate([[0.0], np.cumsum(sizes)])

    kx, ky = knots(np.asarray(w)), knots(np.asarray(h))
    # softplus(d + log(expm1(1 - m))) + m, and 1 at the two ends.
    kd = np.concatenate([[1.0], min_deriv + np.log1p(np.exp(np.asarray(d) + np.log(
        np.expm1(1 - min_deriv)))), [1.0]])
    y, log_det = spline(jnp.asarray(kx), w, h, d, bound)
    np.testing.assert_allclose(y, ky, atol=1e-10)
    np.testing.assert_allclose(jnp.exp(log_det), kd, rtol=1e-8)


def test_spline_zero_params_is_identity():
  x = jnp.linspace(-3.0, 3.0, 101)
  y, log_det = spline(x, jnp.zeros(5), jnp.zeros(5), jnp.zeros(4), 2.0)
  np.testing.assert_allclose(y, x, atol=1e-5)
  np.testing.assert_allclose(log_det, 0.0, atol=1e-5)


def test_spline_rejects_mismatched_params():
  with pytest.raises(ValueError, match=r"derivatives \[\.\.\., K-1\]"):
    rational_quadratic_spline(jnp.zeros(3), jnp.zeros(4), jnp.zeros(4), jnp.zeros(4), 1.0)


def _spline_points(bound):
  """Inside (-B, B), exactly at -B and B, and beyond them (the identity tails)."""
  inside = np.linspace(-bound, bound, 21)[1:-1]
  return np.concatenate([inside, [-bound, bound], [-1.5 * bound, 1.5 * bound, -10.0, 10.0]])


@pytest.mark.parametrize("num_bins", [1, 2, 8])
def test_spline_zero_params_is_identity_at_and_beyond_the_bounds(num_bins):
  bound = 2.0
  x = jnp.asarray(_spline_points(bound), jnp.float32)
  zeros = [jnp.zeros(k) for k in (num_bins, num_bins, num_bins - 1)]
  for inverse in (False, True):
    y, log_det = spline(x, *zeros, bound, inverse=inverse)
    np.testing.assert_allclose(y, x, atol=1e-6)
    np.testing.assert_allclose(log_det, 0.0, atol=1e-6)
    np.testing.assert_array_equal(y[-4:], x[-4:])             # tails: exactly the identity
    np.testing.assert_array_equal(log_det[-4:], 0.0)


@pytest.mark.parametrize("num_bins", [1, 2, 8])
def test_spline_round_trips_at_random_params_including_the_bounds(num_bins):
  bound = 2.0
  with jax.enable_x64(True):
    x = jnp.asarray(np.concatenate([_spline_points(bound),
                                    np.random.default_rng(8).uniform(-3.0, 3.0, 50)]))
    params = _spline_params(9, x.shape, num_bins)             # one spline per entry of x
    y, log_det = spline(x, *params, bound)
    x_back, log_det_inv = spline(y, *params, bound, inverse=True)
    np.testing.assert_allclose(x_back, x, atol=1e-5)
    np.testing.assert_allclose(log_det_inv, -log_det, atol=1e-5)
    assert bool(jnp.all(jnp.isfinite(log_det)))
    if num_bins == 1:
      # One bin [-B, B] -> [-B, B] with unit end derivatives has s = 1: the identity for any params.
      np.testing.assert_allclose(y, x, atol=1e-12)
      np.testing.assert_allclose(log_det, 0.0, atol=1e-12)
    else:
      assert float(jnp.max(jnp.abs(y - x))) > 0.1            # the params do move the map
  # float32 exactly at the bounds, over many random splines: the slope there is 1, so x comes back
  # within a few ulp of B (2.4e-7 each; the unstable form of the inverse lost up to 1e-5 there).
  x = jnp.asarray(np.repeat([-bound, bound], 500), jnp.float32)
  params = [p.astype(jnp.float32) for p in _spline_params(10, x.shape, num_bins)]
  y, _ = spline(x, *params, bound)
  x_back, log_det_inv = spline(y, *params, bound, inverse=True)
  np.testing.assert_allclose(x_back, x, atol=2e-6)
  assert bool(jnp.all(jnp.isfinite(log_det_inv)))


@pytest.mark.parametrize("num_bins", [1, 2, 8])
def test_spline_log_det_matches_jacfwd_including_the_bounds(num_bins):
  bound = 2.0
  with jax.enable_x64(True):
    x = jnp.asarray(_spline_points(bound))
    params = _spline_params(11, x.shape, num_bins)
    for inverse in (False, True):
      _, log_det = spline(x, *params, bound, inverse=inverse)
      jac = np.asarray(jax.jacfwd(lambda v: spline(v, *params, bound, inverse=inverse)[0])(x))
      diag = np.diag(jac)
      np.testing.assert_allclose(jac - np.diag(diag), 0.0, atol=1e-12)   # elementwise map
      assert bool(jnp.all(jnp.isfinite(log_det)))
      np.testing.assert_allclose(log_det, np.log(diag), rtol=1e-8, atol=1e-10)
      if num_bins == 1:
        np.testing.assert_allclose(diag, 1.0, atol=1e-12)      # the one-bin spline is the identity


def test_spline_rejects_zero_bins_naming_the_range():
  with pytest.raises(ValueError, match="K >= 1"):
    rational_quadratic_spline(jnp.zeros(3), jnp.zeros(0), jnp.zeros(0), jnp.zeros(0), 1.0)
  with pytest.raises(ValueError, match="num_bins must be an integer >= 1, got 0"):
    SplineCoupling("dimension", 0, num_bins=0)


@pytest.mark.parametrize("mask_type, event", [("dimension", VEC), ("channel", IMG)])
def test_spline_coupling_with_one_bin_builds_and_is_the_identity(mask_type, event):
  """With one bin the spline has no free knot, so the coupling is the identity for any weights."""
  bijector = SplineCoupling(mask_type, 1, num_bins=1, bound=1.5, hidden=4, depth=0)
  x = _normal(2.0)(np.random.default_rng(12), (3,) + event)
  x = x.at[0].set(1.5).at[1].set(-1.5)                       # whole examples exactly at the bounds
  variables = perturb(jax.jit(functools.partial(bijector.init, method=bijector.forward))(key(0), x),
                      seed=13, scale=1.0)
  y, log_det = jax.jit(functools.partial(bijector.apply, method=bijector.forward))(variables, x)
  x_back = jax.jit(functools.partial(bijector.apply, method=bijector.inverse))(variables, y)
  np.testing.assert_allclose(y, x, atol=1e-6)
  np.testing.assert_allclose(log_det, 0.0, atol=1e-6)
  np.testing.assert_allclose(x_back, x, atol=1e-6)


# ---------------------------------------------------------------- ActNorm, 1x1 conv, squeeze, MADE


@pytest.mark.parametrize("shape", [(64, 3), (8, 4, 4, 2)], ids=["vector", "image"])
def test_actnorm_data_dependent_init_normalises_the_init_batch(shape):
  x = jnp.asarray(3.0 + 5.0 * np.random.default_rng(0).standard_normal(shape)
                  * np.arange(1, shape[-1] + 1), jnp.float32)
  actnorm = ActNorm()
  variables = actnorm.init(key(1), x, method=actnorm.forward)
  y, _ = actnorm.apply(variables, x, method=actnorm.forward)
  axes = tuple(range(len(shape) - 1))
  np.testing.assert_allclose(jnp.mean(y, axis=axes), 0.0, atol=1e-5)
  np.testing.assert_allclose(jnp.var(y, axis=axes), 1.0, atol=1e-4)
  # Parameters created from the inverse direction (no data) start at the identity.
  from_inverse = actnorm.init(key(1), x, method=actnorm.inverse)
  np.testing.assert_allclose(actnorm.apply(from_inverse, x, method=actnorm.forward)[0], x)


@pytest.mark.parametrize("batch", ["zeros", "one_vector", "nan"])
def test_actnorm_init_refuses_a_degenerate_batch(batch):
  x = {"zeros": jnp.zeros((16, 3)), "one_vector": jnp.ones((1, 3)),
       "nan": jnp.full((16, 3), jnp.nan)}[batch]
  actnorm = ActNorm()
  with pytest.raises(ValueError, match="ActNorm's data-dependent init"):
    actnorm.init(key(1), x, method=actnorm.forward)
  # One channel that does not vary is enough to refuse; a batch that varies everywhere is accepted.
  varied = jnp.asarray(np.random.default_rng(0).standard_normal((16, 3)), jnp.float32)
  with pytest.raises(ValueError, match="1 of 3 channels are constant"):
    actnorm.init(key(1), varied.at[:, 1].set(0.5), method=actnorm.forward)
  actnorm.init(key(1), varied, method=actnorm.forward)


def test_glow_init_on_a_zero_batch_is_refused():
  """The trap of a flax user's `model.init(rng, jnp.zeros(...))`: a non-finite log_prob, unannounced."""
  glow = Glow(event_shape=(8, 8, 1), num_scales=2, num_steps=1, hidden_channels=8)
  with pytest.raises(ValueError, match="not zeros or a single example"):
    glow.init(key(0), jnp.zeros((4, 8, 8, 1)))


def test_invertible_1x1_conv_starts_at_a_rotation_and_its_weight_matches():
  conv = Invertible1x1Conv(seed=4)
  x = jnp.asarray(np.random.default_rng(0).standard_normal((2, 4, 4, 5)), jnp.float32)
  variables = conv.init(key(1), x, method=conv.forward)
  w = conv.apply(variables, method=conv.weight)
  np.testing.assert_allclose(w @ w.T, np.eye(5), atol=1e-5)          # Glow's rotation init
  y, log_det = conv.apply(variables, x, method=conv.forward)
  np.testing.assert_allclose(y, jnp.einsum("ij,bhwj->bhwi", w, x), atol=1e-5)
  np.testing.assert_allclose(log_det, 0.0, atol=1e-5)                 # |det| of a rotation = 1
  # Different seeds give different permutations / rotations.
  other = Invertible1x1Conv(seed=5)
  w_other = other.apply(other.init(key(1), x, method=other.forward),
                        method=other.weight)
  assert float(jnp.max(jnp.abs(w - w_other))) > 1e-2


def test_squeeze_layout_and_odd_sizes():
  x = jnp.arange(2 * 4 * 6 * 3, dtype=jnp.float32).reshape(2, 4, 6, 3)
  y = squeeze2d(x)
  assert y.shape == (2, 2, 3, 12)
  for i in range(2):
    for j in range(2):
      np.testing.assert_array_equal(y[:, :, :, (2 * i + j) * 3:(2 * i + j + 1) * 3],
                                    x[:, i::2, j::2, :])
  np.testing.assert_array_equal(unsqueeze2d(y), x)
  with pytest.raises(ValueError, match="even H and W.*H=3"):
    squeeze2d(jnp.zeros((1, 3, 4, 1)))
  with pytest.raises(ValueError, match="even H and W.*W=5"):
    Squeeze().apply({}, jnp.zeros((1, 4, 5, 1)), method=Squeeze.forward)


def test_made_is_autoregressive():
  made = MADE(hidden_sizes=(16, 16), params_per_input=2, zero_init_output=False)
  x = jnp.asarray(np.random.default_rng(0).standard_normal((1, 5)), jnp.float32)
  variables = made.init(key(1), x)
  jac = jax.jit(jax.jacfwd(lambda v: made.apply(variables, v[None])[0]))(x[0])   # [D, 2, D]
  for p in range(2):
    j = np.asarray(jac[:, p, :])
    np.testing.assert_array_equal(np.triu(j), 0.0)      # out_i depends on x_{<i} only
    assert np.all(np.abs(np.tril(j, k=-1)[1:, :1]) > 0)  # ... and does depend on x_1


def test_logit_matches_its_formula():
  x = jnp.array([[0.0, 0.25, 1.0]])
  y, log_det = Logit(alpha=0.1).apply({}, x, method=Logit.forward)
  p = 0.1 + 0.8 * np.array([0.0, 0.25, 1.0])
  np.testing.assert_allclose(y[0], np.log(p / (1 - p)), rtol=1e-6)
  np.testing.assert_allclose(log_det[0], np.sum(np.log(0.8 / (p * (1 - p)))), rtol=1e-6)


# ---------------------------------------------------------------- masks and bad input


def test_masks():
  cb = coupling.checkerboard_mask(2, 3, 2, parity=0)
  np.testing.assert_array_equal(cb[..., 0], [[1, 0, 1], [0, 1, 0]])
  np.testing.assert_array_equal(coupling.checkerboard_mask(2, 3, 1, parity=1)[..., 0],
                                [[0, 1, 0], [1, 0, 1]])
  np.testing.assert_array_equal(coupling.channel_mask(4, 0), [1, 1, 0, 0])
  np.testing.assert_array_equal(coupling.channel_mask(4, 1), [0, 0, 1, 1])
  np.testing.assert_array_equal(coupling.dimension_mask(2, 0), [1, 0])
  np.testing.assert_array_equal(coupling.dimension_mask(2, 1), [0, 1])


def test_bijectors_reject_bad_input():
  layer = AffineCoupling("channel", hidden=4)
  with pytest.raises(ValueError, match="at least C=2 channels"):
    layer.init(key(0), jnp.zeros((1, 4, 4, 1)), method=layer.forward)
  layer = AffineCoupling("dimension", hidden=4)
  with pytest.raises(ValueError, match=r"needs vectors \[B, D\]"):
    layer.init(key(0), jnp.zeros((1, 4, 4, 2)), method=layer.forward)
  layer = AffineCoupling("diagonal", hidden=4)
  with pytest.raises(ValueError, match="mask_type must be one of"):
    layer.init(key(0), jnp.zeros((1, 4)), method=layer.forward)
  with pytest.raises(ValueError, match=r"rank 2 \[B, D\] or rank 4"):
    ActNorm().init(key(0), jnp.zeros((2, 3, 4)), method=ActNorm.forward)
  with pytest.raises(ValueError, match=r"rank 2 \[B, D\]"):
    layer = MaskedAutoregressiveAffine(hidden_sizes=(4,))
    layer.init(key(0), jnp.zeros((2, 3, 4, 1)), method=layer.forward)
