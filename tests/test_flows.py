"""Flow models: exact inverses, exact log-densities (autodiff change of variables, integration to 1
on a 2-D grid), sampling, transformability, and errors on bad input.

Models are tested with perturbed parameters (zero-initialised couplings would be the identity).
"""
import functools
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.distributions import gaussian
from gen_jax.models.flows import MAF, Glow, NeuralSplineFlow, RealNVP


# Test randomness comes from numpy, and flax's initialisers get "rbg" keys: on CPU the threefry
# PRNG's compile time would dominate these tiny tests.
def key(seed):
  return jax.random.key(seed, impl="rbg")


def _normal(rng, shape):
  return jnp.asarray(rng.standard_normal(shape), jnp.float32)


def _unit(rng, shape):
  return jnp.asarray(rng.uniform(0.02, 0.98, shape), jnp.float32)


IMG = (4, 4, 2)
# name -> (model, input sampler)
MODELS = {
    "realnvp_vector": (RealNVP(event_shape=(3,), num_couplings=3, hidden=8), _normal),
    "realnvp_image": (RealNVP(event_shape=IMG, num_scales=2, num_couplings_per_scale=1, hidden=4,
                              depth=1), _unit),
    "glow": (Glow(event_shape=IMG, num_scales=2, num_steps=1, hidden_channels=4), _unit),
    "nsf_vector": (NeuralSplineFlow(event_shape=(3,), num_layers=2, num_bins=4, bound=2.0,
                                    hidden=8), _normal),
    "nsf_image": (NeuralSplineFlow(event_shape=IMG, num_scales=2, num_layers=1, num_bins=3,
                                   hidden=4, depth=0), _unit),
    "maf": (MAF(event_shape=(3,), num_layers=2, hidden_sizes=(8,)), _normal),
}


def perturb(variables, seed, scale=0.1):
  """Adds N(0, scale^2) noise to every parameter, so zero-initialised layers become non-trivial."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(
      lambda a: a + jnp.asarray(scale * rng.standard_normal(a.shape), a.dtype), variables)


@functools.lru_cache(maxsize=None)
def setup_model(name, batch=3, seed=0):
  """(model, perturbed variables, initial variables, x [batch, *event_shape])."""
  model, sampler = MODELS[name]
  x = sampler(np.random.default_rng(seed), (batch,) + model.event_shape)
  variables = jax.jit(model.init)(key(seed), x)          # data-dependent ActNorm init on x
  return model, perturb(variables, seed + 1), variables, x


@pytest.mark.parametrize("name", sorted(MODELS))
def test_decode_inverts_encode(name):
  model, variables, init_variables, x = setup_model(name)

  @jax.jit
  def run(v, v_init, x):
    z = model.apply(v, x, method=model.encode)
    z_forward, log_det = model.apply(v, x, method=model.forward)
    return (z, model.apply(v, z, method=model.decode), z_forward, log_det,
            model.apply(v_init, x, method=model.encode))

  z, x_back, z_forward, log_det, z_init = run(variables, init_variables, x)
  assert z.shape == x.shape and z.dtype == jnp.float32
  np.testing.assert_allclose(x_back, x, atol=1e-4, rtol=1e-4)
  # forward is encode with its log-determinant.
  np.testing.assert_array_equal(z_forward, z)
  assert log_det.shape == (x.shape[0],)
  # The perturbation must have changed the map.
  assert float(jnp.max(jnp.abs(z_init - z))) > 1e-3


@functools.lru_cache(maxsize=None)
def change_of_variables(name):
  """float64 log N(f(x)) + log|det df/dx| from the autodiff Jacobian, per example ([2])."""
  model, variables, _, x = setup_model(name)
  x = x[:2]
  with jax.enable_x64(True):
    variables = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), variables)
    x = jnp.asarray(x, jnp.float64)
    n = math.prod(x.shape[1:])

    @jax.jit
    def z_and_jacobian(v):
      flat = lambda v: model.apply(variables, v.reshape(x.shape), method=model.encode).reshape(-1)
      return flat(v), jax.jacfwd(flat)(v)

    z, jac = z_and_jacobian(x.reshape(-1))
    z, jac = np.asarray(z).reshape(x.shape), np.asarray(jac)
  logabsdet = np.array([np.linalg.slogdet(jac[i * n:(i + 1) * n, i * n:(i + 1) * n])[1]
                        for i in range(2)])
  np.testing.assert_allclose(jac[:n, n:], 0.0, atol=1e-12)
  base = -0.5 * np.sum(z.reshape(2, -1) ** 2, axis=1) - 0.5 * n * np.log(2 * np.pi)
  return model, variables, x, base + logabsdet


@pytest.mark.parametrize("use_jit", [False, True], ids=["eager", "jit"])
@pytest.mark.parametrize("name", sorted(MODELS))
def test_log_prob_is_the_change_of_variables_density(name, use_jit):
  model, variables, x, expected = change_of_variables(name)
  with jax.enable_x64(True):
    log_prob = functools.partial(model.apply, method=model.log_prob)
    got = (jax.jit(log_prob) if use_jit else log_prob)(variables, x)
    assert got.dtype == jnp.float64 and got.shape == (2,)
  np.testing.assert_allclose(got, expected, atol=1e-6, rtol=1e-7)


@pytest.mark.parametrize("model", [
    RealNVP(event_shape=(2,), num_couplings=4, hidden=8),
    NeuralSplineFlow(event_shape=(2,), num_layers=2, num_bins=5, bound=2.5, hidden=8),
    MAF(event_shape=(2,), num_layers=3, hidden_sizes=(8,)),
], ids=["realnvp", "nsf", "maf"])
def test_2d_density_integrates_to_one(model):
  """Riemann sum of exp(log_prob) on [-12, 12]^2 (961^2 points): |integral - 1| < 2e-3."""
  x0 = _normal(np.random.default_rng(0), (64, 2))
  variables = perturb(jax.jit(model.init)(key(0), x0), seed=1, scale=0.2)
  grid = np.linspace(-12.0, 12.0, 961)
  xx, yy = np.meshgrid(grid, grid, indexing="ij")
  points = jnp.asarray(np.stack([xx.ravel(), yy.ravel()], axis=-1), jnp.float32)
  log_prob = jax.jit(functools.partial(model.apply, method=model.log_prob))(variables, points)
  density = np.exp(np.asarray(log_prob, np.float64))
  integral = density.sum() * (grid[1] - grid[0]) ** 2
  assert abs(integral - 1.0) < 2e-3, integral
  # Not trivially the base density: the flow moved the mass (L1 distance to N(0, I) > 0.3).
  base = np.exp(np.asarray(gaussian.sum_per_example(gaussian.standard_normal_log_prob(points)), np.float64))
  assert np.abs(density - base).sum() * (grid[1] - grid[0]) ** 2 > 0.3


@pytest.mark.parametrize("name", ["glow", "maf", "nsf_image"])
def test_sample(name):
  model, variables, _, _ = setup_model(name)
  sample = jax.jit(functools.partial(model.apply, method=model.sample), static_argnums=2)
  x = sample(variables, key(3), 5)
  assert x.shape == (5,) + model.event_shape and x.dtype == jnp.float32
  assert bool(jnp.all(jnp.isfinite(x)))
  assert float(jnp.std(x, axis=0).min()) > 0        # different samples
  if model.event_shape == IMG:                       # logit preprocessing: near [0, 1]
    assert float(jnp.min(x)) > -0.06 and float(jnp.max(x)) < 1.06
  # temperature 0 decodes z = 0: every sample is the same point.
  x0 = sample(variables, key(4), 5, 0.0)
  np.testing.assert_allclose(x0, jnp.broadcast_to(x0[:1], x0.shape), atol=1e-6)
  assert float(jnp.max(jnp.abs(x0 - x))) > 1e-3


@pytest.mark.parametrize("name", ["realnvp_image", "maf"])
def test_log_prob_is_jit_vmap_grad_transformable(name):
  model, variables, _, x = setup_model(name)
  log_prob = lambda v, x: model.apply(v, x, method=model.log_prob)
  direct = jax.jit(log_prob)(variables, x)
  # vmap over examples, each a batch of one.
  mapped = jax.jit(jax.vmap(log_prob, in_axes=(None, 0)))(variables, x[:, None])
  np.testing.assert_allclose(mapped[:, 0], direct, atol=1e-4, rtol=1e-5)
  grads = jax.jit(jax.grad(lambda v: -jnp.mean(log_prob(v, x))))(variables)
  leaves = jax.tree.leaves(grads)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
  assert sum(float(jnp.sum(jnp.abs(g))) for g in leaves) > 0


@pytest.mark.parametrize("event_shape,num_scales", [((8, 8, 1), 3), ((28, 28, 1), 2)],
                         ids=["digits_8x8_L3", "mnist_28x28_L2"])
def test_glow_on_dataset_shapes(event_shape, num_scales):
  model = Glow(event_shape=event_shape, num_scales=num_scales, num_steps=1, hidden_channels=4)
  x = _unit(np.random.default_rng(0), (2,) + event_shape)
  variables = perturb(jax.jit(model.init)(key(0), x), seed=1)

  @jax.jit
  def roundtrip(v, x):
    z = model.apply(v, x, method=model.encode)
    return z, model.apply(v, z, method=model.decode), model.apply(v, x, method=model.log_prob)

  z, x_back, log_prob = roundtrip(variables, x)
  assert z.shape == x.shape and log_prob.shape == (2,)
  np.testing.assert_allclose(x_back, x, atol=1e-4)
  assert bool(jnp.all(jnp.isfinite(log_prob)))


def test_nsf_with_one_bin_builds_inverts_and_is_affine():
  """One bin leaves every spline the identity, so the vector NSF is its LU-linear layers,
  z = A x + c: its Jacobian (float64 autodiff) is the same at every x, and log|det| is the log-det."""
  model = NeuralSplineFlow(event_shape=(2,), num_layers=2, num_bins=1, bound=1.0, hidden=8)
  x = jnp.asarray(np.array([[0.3, -0.8], [2.5, -1.7], [1.0, -1.0]]), jnp.float32)  # in, out, at B
  variables = perturb(jax.jit(model.init)(key(0), x), seed=1, scale=0.5)
  z = jax.jit(functools.partial(model.apply, method=model.encode))(variables, x)
  x_back = jax.jit(functools.partial(model.apply, method=model.decode))(variables, z)
  np.testing.assert_allclose(x_back, x, atol=1e-5)
  with jax.enable_x64(True):
    variables = jax.tree.map(lambda a: jnp.asarray(a, jnp.float64), variables)
    x = jnp.asarray(x, jnp.float64)

    @jax.jit
    def jacobians_and_log_det(x):
      encode = lambda v: model.apply(variables, v[None], method=model.encode)[0]
      return jax.vmap(jax.jacfwd(encode))(x), model.apply(variables, x, method=model.forward)[1]

    jacobians, log_det = jacobians_and_log_det(x)                       # [3, 2, 2], [3]
  jacobians = np.asarray(jacobians)
  np.testing.assert_allclose(jacobians, np.broadcast_to(jacobians[0], jacobians.shape), atol=1e-10)
  np.testing.assert_allclose(log_det, np.linalg.slogdet(jacobians[0])[1], atol=1e-10)


# ---------------------------------------------------------------- bad input


def test_nsf_rejects_zero_bins_naming_the_range():
  with pytest.raises(ValueError, match="num_bins must be an integer >= 1, got 0"):
    NeuralSplineFlow(event_shape=(2,), num_bins=0)


def test_too_many_levels_names_the_maximum():
  with pytest.raises(ValueError, match="at most 2"):
    Glow(event_shape=(28, 28, 1), num_scales=3)
  with pytest.raises(ValueError, match="at most 3"):
    Glow(event_shape=(8, 8, 1), num_scales=4)
  with pytest.raises(ValueError, match="at most 0"):
    NeuralSplineFlow(event_shape=(7, 8, 1), num_scales=1)
  with pytest.raises(ValueError, match="num_scales must be between 1 and 3"):
    RealNVP(event_shape=(8, 8, 1), num_scales=4)
  with pytest.raises(ValueError, match=r"event_shape \(D,\)"):
    MAF(event_shape=(4, 4, 1))
  with pytest.raises(ValueError, match=r"event_shape must be \(D,\) for vectors or \(H, W, C\)"):
    RealNVP(event_shape=(4, 4))
  with pytest.raises(ValueError, match="at least D=2"):
    RealNVP(event_shape=(1,))


def test_bad_data_names_the_expected_value():
  model, variables, _, x = setup_model("glow")
  apply = functools.partial(model.apply, variables)
  with pytest.raises(ValueError, match=r"\('batch', 4, 4, 2\) \(rank 4\)"):
    apply(x[..., 0], method=model.log_prob)                       # wrong rank
  with pytest.raises(ValueError, match=r"\('batch', 4, 4, 2\), got \(3, 4, 4, 1\)"):
    apply(x[..., :1], method=model.log_prob)                      # wrong channel count
  with pytest.raises(ValueError, match=r"must lie in \[0.0, 1.0\]"):
    apply(x * 2.0, method=model.log_prob)                         # not in [0, 1]
  with pytest.raises(ValueError, match=r"z must have shape \('batch', 4, 4, 2\)"):
    apply(jnp.zeros((3, 2, 2, 8)), method=model.decode)
  with pytest.raises(ValueError, match="num must be a positive integer, got 0"):
    apply(key(0), 0, method=model.sample)
  with pytest.raises(ValueError, match="num must be a positive integer, got -2"):
    apply(key(0), -2, method=model.sample)
  vector_model, vector_variables, _, v = setup_model("maf")
  with pytest.raises(ValueError, match=r"x must have shape \('batch', 3\), got \(3, 2\)"):
    vector_model.apply(vector_variables, v[:, :2], method=vector_model.log_prob)


def test_float64_numpy_input_is_read_as_float32_without_warnings():
  """A float64 numpy batch (numpy's default) goes through every bijector of a Glow as JAX's float32,
  with no per-layer 'float64 is not available' warning, and the same log-density as float32 input."""
  import warnings  # pylint: disable=import-outside-toplevel
  model = Glow(event_shape=(8, 8, 1), num_scales=1, num_steps=2, hidden_channels=8)
  x64 = np.random.default_rng(0).uniform(0.05, 0.95, size=(4, 8, 8, 1))
  with warnings.catch_warnings():
    warnings.simplefilter("error")
    params = model.init(jax.random.key(0), x64, method=model.log_prob)
    log_p = model.apply(params, x64, method=model.log_prob)
    back = model.apply(params, model.apply(params, x64, method=model.encode), method=model.decode)
  assert log_p.dtype == np.float32 and back.dtype == np.float32
  np.testing.assert_array_equal(log_p, model.apply(params, x64.astype(np.float32), method=model.log_prob))
