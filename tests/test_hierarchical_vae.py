"""Hierarchical VAE: shapes, the ELBO and IWAE estimators against each other and against Monte-Carlo
estimates of the per-layer KLs, chunking, trainability and errors on bad input.

One small model on 8x8 images with 17 levels (the digits' format); 28x28 shapes via `jax.eval_shape`.
Statistical checks use 2000 keys (or 64 repeats of the IWAE bounds) and 4 standard errors. Keys are
"rbg" (fast to compile on CPU) except in the chunking check, which needs threefry keys: their bits
do not change under vmap, so chunked and unchunked bounds draw the same samples.
"""
import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gen_jax.distributions import likelihoods
from gen_jax.models.vae.hierarchical import HierarchicalVAE

SHAPE, LEVELS, BATCH = (8, 8, 1), 17, 4
MODEL = HierarchicalVAE(event_shape=SHAPE, num_levels=LEVELS, hidden_channels=8, latent_channels=2,
                        num_blocks=0)


def rbg(seed):
  return jax.random.key(seed, impl="rbg")


def images(seed, batch=BATCH, shape=SHAPE, levels=LEVELS):
  return jnp.asarray(np.random.default_rng(seed).integers(0, levels, (batch,) + shape), jnp.uint8)


@functools.lru_cache(maxsize=None)
def setup():
  x = images(0)
  return jax.jit(functools.partial(MODEL.init, method=MODEL.elbo))(rbg(0), x, rbg(1)), x


@jax.jit
def estimates(params, keys):
  """Per key: elbo and importance_log_weight at fold_in(key, 0) (the same z) and iwae_bound(k=1)."""
  _, x = setup()

  def one(key):
    key_0 = jax.random.fold_in(key, 0)
    return (MODEL.apply(params, x, key_0, method=MODEL.elbo),
            MODEL.apply(params, x, key_0, method=MODEL.importance_log_weight),
            MODEL.apply(params, x, key, 1, method=MODEL.iwae_bound))

  return jax.vmap(one)(keys)


NUM_KEYS = 2000
KEYS = jax.random.split(rbg(2), NUM_KEYS)


@functools.lru_cache(maxsize=None)
def initial_estimates():
  params, _ = setup()
  return jax.tree.map(np.asarray, estimates(params, KEYS))


@functools.lru_cache(maxsize=None)
def iwae_bounds(num_repeats=64):
  """iwae_bound for k = 10 and 100 (chunks of 10), each [num_repeats, B], the same keys for both."""
  params, x = setup()

  def bounds(key):
    iwae = functools.partial(MODEL.apply, params, x, key, method=MODEL.iwae_bound)
    return {"k10": iwae(10), "k100": iwae(100, 10)}

  return jax.tree.map(np.asarray, jax.jit(jax.vmap(bounds))(jax.random.split(rbg(3), num_repeats)))


def mean_and_standard_error(samples, axis=0):
  samples = np.asarray(samples, np.float64)
  return samples.mean(axis), samples.std(axis, ddof=1) / np.sqrt(samples.shape[axis])


def test_shapes_8x8():
  x = jax.ShapeDtypeStruct((BATCH,) + SHAPE, jnp.uint8)
  key = jax.ShapeDtypeStruct((), rbg(0).dtype)
  params = jax.eval_shape(functools.partial(MODEL.init, method=MODEL.elbo), key, x, key)
  apply = lambda method, *args: jax.eval_shape(
      lambda p, *a: MODEL.apply(p, *a, method=method), params, *args)
  terms = apply(MODEL.elbo, x, key)
  assert {k: v.shape for k, v in terms.items()} == {
      "elbo": (BATCH,), "reconstruction": (BATCH,), "kl": (BATCH,), "kl_per_layer": (BATCH, 2)}
  assert MODEL.latent_shapes == [(2, 2, 2), (4, 4, 2)]
  for latents in (apply(MODEL.encode, x, key), apply(MODEL.encode, x)):  # sample, means
    assert [z.shape for z in latents] == [(BATCH, 2, 2, 2), (BATCH, 4, 4, 2)]
  assert apply(MODEL.decode, latents).shape == (BATCH, 8, 8, 2)  # discretized logistic: mean, log-scale
  samples = jax.eval_shape(lambda p, k: MODEL.apply(p, k, 3, method=MODEL.sample), params, key)
  assert samples.shape == (3,) + SHAPE and samples.dtype == jnp.uint8


def test_shapes_28x28_with_three_layers():
  model = HierarchicalVAE(event_shape=(28, 28, 1), num_levels=2, likelihood="bernoulli",
                          num_latent_layers=3, hidden_channels=8, latent_channels=3,
                          first_latent_downsamples=2)
  assert model.latent_shapes == [(2, 2, 3), (4, 4, 3), (7, 7, 3)]
  x = jax.ShapeDtypeStruct((5, 28, 28, 1), jnp.uint8)
  key = jax.ShapeDtypeStruct((), jax.random.key(0).dtype)
  params = jax.eval_shape(functools.partial(model.init, method=model.elbo), key, x, key)
  terms = jax.eval_shape(functools.partial(model.apply, method=model.elbo), params, x, key)
  assert terms["elbo"].shape == (5,) and terms["kl_per_layer"].shape == (5, 3)
  latents = jax.eval_shape(functools.partial(model.apply, method=model.encode), params, x)
  assert [z.shape for z in latents] == [(5, 2, 2, 3), (5, 4, 4, 3), (5, 7, 7, 3)]
  out = jax.eval_shape(functools.partial(model.apply, method=model.decode), params, latents)
  assert out.shape == (5, 28, 28, 1)
  samples = jax.eval_shape(lambda p, k: model.apply(p, k, 2, method=model.sample), params, key)
  assert samples.shape == (2, 28, 28, 1) and samples.dtype == jnp.uint8


def test_elbo_and_single_sample_iwae_agree():
  """Same key -> same z: equal reconstructions, and IWAE_1 = reconstruction - sampled log q/p.
  The analytic KL and its one-sample estimate differ per key: ELBO and IWAE_1 agree in expectation."""
  elbos, log_weights, iwae_1 = initial_estimates()
  np.testing.assert_allclose(log_weights["reconstruction"], elbos["reconstruction"], rtol=1e-6)
  np.testing.assert_allclose(iwae_1, log_weights["log_weight"], rtol=1e-6)
  np.testing.assert_allclose(
      log_weights["log_weight"],
      elbos["reconstruction"] - log_weights["log_q_minus_log_p_per_layer"].sum(-1), rtol=1e-5)
  difference, standard_error = mean_and_standard_error(elbos["elbo"] - iwae_1)
  assert np.all(np.abs(difference) < 4 * standard_error), (difference, standard_error)
  # At initialisation the bound is of the order of a uniform model's -D log L (64 log 17 = 181 nats).
  assert np.all((-300 < elbos["elbo"].mean(0)) & (elbos["elbo"].mean(0) < -150)), elbos["elbo"].mean(0)


def test_kl_per_layer_matches_monte_carlo_estimate():
  """Analytic KL_l (given the sampled z_<l) vs the mean of log q(z_l) - log p(z_l) at the same z."""
  elbos, log_weights, _ = initial_estimates()
  assert np.all(elbos["kl_per_layer"] >= 0)
  np.testing.assert_allclose(elbos["kl"], elbos["kl_per_layer"].sum(-1), rtol=1e-5)
  # E_q(z_<l)[KL_l] estimated twice from the same keys; the paired difference has mean 0.
  difference, standard_error = mean_and_standard_error(
      elbos["kl_per_layer"] - log_weights["log_q_minus_log_p_per_layer"])
  assert np.all(np.abs(difference) < 4 * standard_error), (difference, standard_error)
  monte_carlo, monte_carlo_error = mean_and_standard_error(
      log_weights["log_q_minus_log_p_per_layer"].sum(-1))
  analytic = elbos["kl"].mean(0)
  assert np.all(np.abs(analytic - monte_carlo) < 4 * monte_carlo_error), (analytic, monte_carlo)
  # The check has power: 4 standard errors are a small fraction of the total KL.
  assert np.all(4 * monte_carlo_error < 0.25 * analytic), (monte_carlo_error, analytic)


def test_iwae_bound_increases_with_k():
  """E[IWAE_1] < E[IWAE_10] < E[IWAE_100] (Burda et al. 2016, theorem 1), by > 4 standard errors."""
  _, log_weights, iwae_1 = initial_estimates()
  bounds = iwae_bounds()
  gains = {"1->10": bounds["k10"] - iwae_1.mean(0), "10->100": bounds["k100"] - bounds["k10"]}
  for name, gain in gains.items():
    mean, error = mean_and_standard_error(gain.reshape(-1))
    assert mean > 4 * error, (name, mean, error)


def test_chunked_iwae_equals_unchunked():
  """Sample i uses fold_in(rng, i) with threefry keys (the same bits under vmap): chunking cannot
  change the value. log_prob_estimate(k=12) runs one chunk of 12."""
  params, x = setup()

  @jax.jit
  def bounds(key):
    return (MODEL.apply(params, x, key, 12, 3, method=MODEL.iwae_bound),
            MODEL.apply(params, x, key, 12, method=MODEL.log_prob_estimate))

  chunked, whole = bounds(jax.random.key(8))
  np.testing.assert_allclose(chunked, whole, rtol=1e-6)


def test_gradient_steps_increase_the_elbo():
  params, x = setup()
  negative_elbo = lambda params, key: -jnp.mean(MODEL.apply(params, x, key, method=MODEL.elbo)["elbo"])
  optimizer = optax.adam(3e-3)

  @jax.jit
  def train_step(params, state, key):
    loss, grads = jax.value_and_grad(negative_elbo)(params, key)
    updates, state = optimizer.update(grads, state)
    return optax.apply_updates(params, updates), state, loss

  # A step on a fixed key decreases that key's loss.
  stepped, state, loss = train_step(params, optimizer.init(params), rbg(9))
  assert float(train_step(stepped, state, rbg(9))[2]) < float(loss)
  # Ten steps on fresh keys raise the ELBO averaged over NUM_KEYS evaluation keys.
  state = optimizer.init(params)
  for step in range(10):
    params, state, _ = train_step(params, state, jax.random.fold_in(rbg(11), step))
  before = initial_estimates()[0]["elbo"]
  after = np.asarray(estimates(params, KEYS)[0]["elbo"])
  gain, error = mean_and_standard_error((after - before).reshape(-1))
  assert gain > 10.0 and gain > 4 * error, (gain, error)                # measured: 22.7 +- 0.06 nats


def test_bad_input_raises():
  params, x = setup()
  with pytest.raises(ValueError, match=r"x \(images\) must have shape \('batch', 8, 8, 1\)"):
    MODEL.apply(params, x[:, :4], rbg(0), method=MODEL.elbo)
  with pytest.raises(ValueError, match=r"\[0, 16\]"):
    MODEL.apply(params, x + 16, rbg(0), method=MODEL.elbo)          # a level of 17
  with pytest.raises(ValueError, match="integer levels"):
    MODEL.apply(params, x.astype(jnp.float32), rbg(0), method=MODEL.elbo)
  for k in (0, -3):
    with pytest.raises(ValueError, match="k .* must be a positive integer"):
      MODEL.apply(params, x, rbg(0), k, method=MODEL.iwae_bound)
  with pytest.raises(ValueError, match="chunk_size must divide k"):
    MODEL.apply(params, x, rbg(0), 10, 3, method=MODEL.iwae_bound)
  with pytest.raises(ValueError, match="num must be a positive integer"):
    MODEL.apply(params, rbg(0), 0, method=MODEL.sample)
  latents = [jnp.zeros((BATCH,) + shape) for shape in MODEL.latent_shapes]
  with pytest.raises(ValueError, match="sequence of 2 arrays"):
    MODEL.apply(params, latents[:1], method=MODEL.decode)
  with pytest.raises(ValueError, match=r"latents\[1\] must have shape \('batch', 4, 4, 2\)"):
    MODEL.apply(params, [latents[0], latents[0]], method=MODEL.decode)
  with pytest.raises(ValueError, match="num_latent_layers must be >= 2"):
    HierarchicalVAE(event_shape=SHAPE, num_levels=LEVELS, num_latent_layers=1)
  with pytest.raises(ValueError, match=r"event_shape must be \(H, W, C\)"):
    HierarchicalVAE(event_shape=(64,), num_levels=LEVELS)
  with pytest.raises(ValueError, match="likelihood's num_levels"):
    HierarchicalVAE(event_shape=SHAPE, num_levels=LEVELS, likelihood=likelihoods.DiscretizedLogistic(256))
  with pytest.raises(ValueError, match="bernoulli likelihood needs binarized data"):
    HierarchicalVAE(event_shape=SHAPE, num_levels=LEVELS, likelihood="bernoulli")


def test_task_figures_reconstruct_and_interpolate_between_posterior_means():
  from gen_jax.data.spec import DataSpec
  from gen_jax.models.vae.task import vae_task
  params, _ = setup()
  spec = DataSpec(name="digits", event_shape=SHAPE, num_levels=LEVELS, kind="image")
  x = images(3, batch=16)
  figures = vae_task(MODEL, spec, optax.adam(1e-3)).figures({"model": params}, rbg(2), x)
  cell = SHAPE[0] + 1  # image_grid's 1-pixel padding
  assert figures["reconstructions"].shape == (2 * cell + 1, 16 * cell + 1, 1)
  assert figures["interpolations"].shape == (8 * cell + 1, 8 * cell + 1, 1)
  # Row i runs from example i's posterior mean to example 8 + i's: its end columns are reconstructions.
  recon = figures["reconstructions"][cell:]
  for i in (0, 5):
    row = figures["interpolations"][i * cell:(i + 1) * cell + 1]
    np.testing.assert_array_equal(row[:, :cell + 1], recon[:, i * cell:(i + 1) * cell + 1])
    np.testing.assert_array_equal(row[:, 7 * cell:], recon[:, (8 + i) * cell:(9 + i) * cell + 1])
