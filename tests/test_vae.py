"""VAE: exactness on probabilistic PCA (closed-form log p(x)), decoder likelihoods against scipy and an
enumeration of the levels, analytic KL against Monte Carlo, chunked IWAE, latent-space tools, bad input.

Probabilistic PCA (Tipping & Bishop 1999): z ~ N(0, I_d), x = W z + mu + sigma eps, so
log p(x) = log N(x; mu, W W^T + sigma^2 I) and p(z | x) = N(M^{-1} W^T (x - mu), sigma^2 M^{-1}) with
M = W^T W + sigma^2 I. A VAE with affine encoder and decoder (hidden_sizes=()) and a Gaussian
likelihood of fixed std sigma is this model; with orthogonal columns of W, M is diagonal and the
diagonal-Gaussian posterior can be exact.
"""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import special, stats

from gen_jax.data.spec import DataSpec
from gen_jax.data.levels import levels_to_centres
from gen_jax.distributions import (Bernoulli, DiscretizedLogistic, DiscretizedLogisticMixture, Gaussian, gaussian,
                                   get_likelihood)
from gen_jax.latent_space import (active_units, interpolation_grid, latent_traversal, linear_interpolation,
                                  mean_kl_per_dim, spherical_interpolation, traversal_grid)
from gen_jax.models.vae import VAE, check_finite
from gen_jax.models.vae.vae import largest_divisor_at_most


# flax's initialisers get "rbg" keys: on CPU the threefry PRNG's compile time would dominate.
def key(seed):
  return jax.random.key(seed, impl="rbg")


def apply_jit(model, method, *static):
  """jit of model.apply(variables, *args, method=method), with trailing static Python arguments."""
  return jax.jit(lambda variables, *args: model.apply(variables, *args, *static, method=method))


# ---------------------------------------------------------------- probabilistic PCA

PPCA_DIMS, PPCA_LATENT, PPCA_SIGMA, PPCA_N = 6, 2, 0.5, 1000


class PPCA:
  """A pPCA model with orthogonal columns of W, its data, exact log p(x), and VAE parameters."""

  def __init__(self, seed=0):
    rng = np.random.default_rng(seed)
    q, _ = np.linalg.qr(rng.standard_normal((PPCA_DIMS, PPCA_LATENT)))
    self.w = q * np.array([2.0, 1.0])                                   # W^T W = diag(4, 1)
    self.mu = rng.standard_normal(PPCA_DIMS)
    z = rng.standard_normal((PPCA_N, PPCA_LATENT))
    noise = PPCA_SIGMA * rng.standard_normal((PPCA_N, PPCA_DIMS))
    self.x = (z @ self.w.T + self.mu + noise).astype(np.float32)
    covariance = self.w @ self.w.T + PPCA_SIGMA ** 2 * np.eye(PPCA_DIMS)
    self.exact_log_prob = stats.multivariate_normal(self.mu, covariance).logpdf(self.x.astype(np.float64))
    self.model = VAE(event_shape=(PPCA_DIMS,), latent_dim=PPCA_LATENT, hidden_sizes=(),
                     likelihood=Gaussian(log_std=math.log(PPCA_SIGMA)))
    self.template = self.model.init(key(0), self.x[:2], key(0))

  def variables(self, mean_scale=1.0, log_std_shift=0.0):
    """VAE parameters: the true decoder; the exact posterior's encoder, its mean scaled and its
    log-std shifted (1, 0: the optimal encoder)."""
    m_diag = np.sum(self.w ** 2, axis=0) + PPCA_SIGMA ** 2             # M = diag(m_diag)
    mean_kernel = self.w / m_diag                                      # x -> M^{-1} W^T x, as [D, d]
    mean_bias = -(self.w.T @ self.mu) / m_diag
    log_std = 0.5 * np.log(PPCA_SIGMA ** 2 / m_diag)
    encoder = {"kernel": np.concatenate([mean_scale * mean_kernel, np.zeros_like(mean_kernel)], 1),
               "bias": np.concatenate([mean_scale * mean_bias, log_std + log_std_shift])}
    decoder = {"kernel": self.w.T, "bias": self.mu}
    params = {"encoder": {"MLP_0": {"Dense_0": encoder}}, "decoder": {"MLP_0": {"Dense_0": decoder}}}
    variables = jax.tree.map(lambda a: jnp.asarray(a, jnp.float32), {"params": params})
    assert jax.tree.map(jnp.shape, variables) == jax.tree.map(jnp.shape, self.template)
    return variables

  def elbo_draws(self, variables, num_draws, seed=0):
    """The ELBO of every example under num_draws posterior draws: [num_draws, N]."""
    model = self.model
    run = jax.jit(lambda v, x, r: jax.vmap(
        lambda i: model.apply(v, x, jax.random.fold_in(r, i), method=model.elbo)["elbo"])(
            jnp.arange(num_draws)))
    return np.asarray(run(variables, self.x, key(seed)), np.float64)

  def iwae(self, variables, k, seeds):
    """IWAE_k of every example for each seed: [seeds, N]."""
    model = self.model
    run = jax.jit(lambda v, x, r: model.apply(v, x, r, k, min(k, 100), method=model.iwae_bound))
    return np.stack([np.asarray(run(variables, self.x, key(seed)), np.float64) for seed in seeds])


@pytest.fixture(scope="module")
def ppca():
  return PPCA()


def test_ppca_elbo_is_a_bound_with_the_posterior_kl_as_its_gap(ppca):
  variables = ppca.variables(mean_scale=0.7, log_std_shift=0.5)          # a non-optimal encoder
  elbo = ppca.elbo_draws(variables, 200).mean(axis=0)                    # E_q[ELBO] per example
  gap = ppca.exact_log_prob - elbo
  # The gap is KL(q(z|x) || p(z|x)) (both diagonal Gaussians: the exact posterior is the optimal encoder's).
  model = ppca.model
  mean, log_std = model.apply(variables, ppca.x, method=model.encode)
  true_mean, true_log_std = model.apply(ppca.variables(), ppca.x, method=model.encode)
  posterior_kl = np.asarray(jnp.sum(gaussian.kl_diag_gaussians(mean, log_std, true_mean, true_log_std), -1))
  standard_error = np.std(gap - posterior_kl) / math.sqrt(PPCA_N)
  assert np.mean(gap) > 1.0                                              # measured 1.613
  assert abs(np.mean(gap - posterior_kl)) < 4 * standard_error + 1e-3


def test_ppca_iwae_rises_with_k_to_the_exact_log_likelihood(ppca):
  variables = ppca.variables(mean_scale=0.7, log_std_shift=0.5)
  ks = (1, 10, 100, 1000)
  # [k, seed, example]: 8 draws of every bound on the 1000 examples (seed s draws the same first
  # samples for every k, so the rises are paired).
  bounds = np.stack([ppca.iwae(variables, k, range(8)) for k in ks])
  per_example = bounds.mean(axis=1) - ppca.exact_log_prob                # [k, N]
  # Monotone in expectation (Burda et al. 2016, Thm. 1): each step up is > 4 standard errors of the
  # paired difference.
  for lower, higher in zip(per_example[:-1], per_example[1:]):
    rise = higher - lower
    assert np.mean(rise) > 4 * np.std(rise) / math.sqrt(PPCA_N)
  # Every bound stays below log p(x) (up to 3 standard errors), and k = 1000 is within 0.005 nats.
  mean_gap = per_example.mean(axis=1)
  standard_errors = per_example.std(axis=1) / math.sqrt(PPCA_N)
  assert np.all(mean_gap < 3 * standard_errors)
  assert abs(mean_gap[-1]) < 5e-3


def test_ppca_optimal_encoder_makes_the_bounds_tight(ppca):
  variables = ppca.variables()
  # The log-weight log p(x, z) - log q(z | x) equals log p(x) for every z: IWAE_k for any k, including
  # k = 1 (the ELBO with its KL estimated by the sample), is exact with zero variance over the rng.
  for k in (1, 10):
    bounds = ppca.iwae(variables, k, (1, 2, 3))
    np.testing.assert_allclose(bounds, np.broadcast_to(ppca.exact_log_prob, bounds.shape), atol=1e-4)
    assert np.max(np.std(bounds, axis=0)) < 1e-5
  # The analytic-KL ELBO estimator is unbiased for log p(x) here, but stochastic (its KL is not the
  # sample's): its mean over draws and examples matches log p(x).
  draws = ppca.elbo_draws(variables, 200)
  error = draws - ppca.exact_log_prob
  assert abs(np.mean(error)) < 4 * np.std(error) / math.sqrt(error.size)


def test_ppca_linear_vae_trained_by_the_elbo_reaches_the_true_log_likelihood(ppca):
  model = ppca.model
  optimizer = optax.adam(optax.cosine_decay_schedule(0.03, 800))

  @jax.jit
  def step(variables, state, i):
    loss = lambda v: -jnp.mean(model.apply(v, ppca.x, jax.random.fold_in(key(7), i), method=model.elbo)["elbo"])
    value, grads = jax.value_and_grad(loss)(variables)
    updates, state = optimizer.update(grads, state, variables)
    return optax.apply_updates(variables, updates), state, value

  variables = model.init(key(5), ppca.x[:2], key(5))
  state = optimizer.init(variables)
  for i in range(800):
    variables, state, _ = step(variables, state, i)
  trained = ppca.elbo_draws(variables, 50).mean()
  # The ELBO of a linear VAE peaks at the pPCA maximum likelihood (Lucas et al. 2019).
  assert trained > ppca.exact_log_prob.mean() - 0.1


# ---------------------------------------------------------------- likelihoods

def _random_params(rng, shape, min_log_scale=-5.0, max_log_scale=4.0):
  """(locations in [-2, 2], log-scales in [min, max]), float32 values as float64 arrays of `shape`.

  Against a float64 reference the log-scale stays >= -5: at smaller scales the float32 rounding of
  the bin edges (~1e-7) moves a = (edge - mean) / s by more than the 1e-4 tolerance.
  """
  return _float32(rng.uniform(-2, 2, shape), rng.uniform(min_log_scale, max_log_scale, shape))


def _enumerated_log_probs(likelihood, params, num_levels):
  """log_prob_per_dim of every level for S parameter sets: ([L, S] float64, levels uint8 [L, S]).

  params: the P parameter arrays [S] in the order of the decoder output's last axis.
  """
  out = np.concatenate(params, axis=-1).astype(np.float32)                # [P * S], parameter-major
  levels = np.repeat(np.arange(num_levels, dtype=np.uint8)[:, None], out.shape[-1] // likelihood.params_per_dim, 1)
  log_p = jax.jit(likelihood.log_prob_per_dim)(jnp.broadcast_to(out, (num_levels,) + out.shape), levels)
  return np.asarray(log_p, np.float64), levels


def _float32(*arrays):
  return [np.asarray(a, np.float32).astype(np.float64) for a in arrays]


def _logistic_log_mass_reference(x, mean, log_scale, num_levels):
  """float64 log P(x) of the discretized logistic, from log-CDFs on the side of the smaller tail."""
  centre = 2 * x / (num_levels - 1) - 1
  h, s = 1 / (num_levels - 1), np.exp(log_scale)
  a, b = (centre + h - mean) / s, (centre - h - mean) / s
  first, last = x == 0, x == num_levels - 1
  with np.errstate(divide="ignore"):
    upper, lower = np.where(last, 0.0, special.log_expit(a)), np.where(first, -np.inf, special.log_expit(b))
    upper_sf, lower_sf = np.where(first, 0.0, special.log_expit(-b)), np.where(last, -np.inf, special.log_expit(-a))
    from_cdf = upper + np.log1p(-np.exp(lower - upper))
    from_sf = upper_sf + np.log1p(-np.exp(lower_sf - upper_sf))
  return np.where(centre > mean, from_sf, from_cdf)


@pytest.mark.parametrize("num_levels", [2, 17, 256])
def test_discretized_logistic_sums_to_one_and_matches_float64(num_levels):
  rng = np.random.default_rng(num_levels)
  likelihood = DiscretizedLogistic(num_levels)
  # From scales far below a bin (log-scale -14) to far above the whole range (+14, the tiny-bin limit).
  log_p, _ = _enumerated_log_probs(likelihood, _random_params(rng, (256,), -14.0, 14.0), num_levels)
  assert np.all(np.isfinite(log_p))
  np.testing.assert_allclose(np.exp(log_p).sum(axis=0), 1.0, atol=1e-6)
  mean, log_scale = _random_params(rng, (64,))
  log_p, levels = _enumerated_log_probs(likelihood, [mean, log_scale], num_levels)
  reference = _logistic_log_mass_reference(levels.astype(np.float64), mean, log_scale, num_levels)
  np.testing.assert_allclose(log_p, reference, rtol=1e-4, atol=1e-4)


def test_discretized_logistic_at_extreme_scales():
  likelihood = DiscretizedLogistic(256)
  levels = np.arange(256, dtype=np.float64)[:, None]
  # A scale 1e6 times the range: every inner bin has mass ~ (2 / 255) / (4 s), the tiny-bin limit.
  # A scale 1e-5 of a bin centred on level 100: the neighbours' log-mass is ~ -(1/255) / s ~ -392.
  for mean, log_scale in [(0.3, math.log(1e6)), (levels_to_centres(np.uint8(100), 256), math.log(1e-5))]:
    mean, log_scale = _float32(mean, log_scale)
    log_p, _ = _enumerated_log_probs(likelihood, [np.array([mean]), np.array([log_scale])], 256)
    reference = _logistic_log_mass_reference(levels, mean, log_scale, 256)
    np.testing.assert_allclose(log_p, reference, rtol=2e-4, atol=1e-6)
    out = jnp.asarray([[mean, log_scale]] * 256, jnp.float32)
    levels_x = jnp.arange(256, dtype=jnp.uint8)[:, None]
    grads = jax.jit(jax.grad(lambda o: jnp.sum(likelihood.log_prob(o, levels_x))))(out)
    assert np.all(np.isfinite(grads))


@pytest.mark.parametrize("num_levels", [5, 256])
def test_discretized_logistic_mixture_sums_to_one_and_is_a_mixture(num_levels):
  rng = np.random.default_rng(1)
  k, s = 3, 32
  logits, (means, log_scales) = _float32(rng.normal(size=(k, s)))[0], _random_params(rng, (k, s))
  likelihood = DiscretizedLogisticMixture(num_levels, num_components=k)
  assert likelihood.params_per_dim == 9
  out = [logits.reshape(-1), means.reshape(-1), log_scales.reshape(-1)]   # parameter-major: [3K, S]
  log_p, levels = _enumerated_log_probs(likelihood, out, num_levels)
  probs = np.exp(log_p)
  np.testing.assert_allclose(probs.sum(axis=0), 1.0, atol=1e-6)
  weights = special.softmax(logits, axis=0)
  components = np.exp(_logistic_log_mass_reference(levels[:, None, :].astype(np.float64), means,
                                                   log_scales, num_levels))
  np.testing.assert_allclose(probs, np.sum(weights * components, axis=1), rtol=1e-4, atol=1e-6)


@pytest.mark.parametrize("likelihood, out", [
    (DiscretizedLogistic(5), [np.array([0.3, -1.2]), np.array([-1.0, -0.5])]),
    (DiscretizedLogisticMixture(5, 2), [np.array([0.5, -0.5, 1.0, 0.0]), np.array([-0.8, 0.6, 0.1, -1.5]),
                                        np.array([-1.5, -1.0, 0.0, -2.0])]),
])
def test_discrete_samples_and_means_follow_the_probabilities(likelihood, out):
  probs = np.exp(_enumerated_log_probs(likelihood, out, 5)[0])            # [L, C]
  out = jnp.asarray(np.concatenate(out), jnp.float32)
  num = 20000
  samples = np.asarray(jax.jit(likelihood.sample)(key(0), jnp.broadcast_to(out, (num,) + out.shape)))
  assert samples.dtype == np.uint8
  frequencies = np.stack([np.mean(samples == level, axis=0) for level in range(5)])
  np.testing.assert_array_less(np.abs(frequencies - probs), 5 * np.sqrt(probs * (1 - probs) / num) + 1e-3)
  mean = np.asarray(jax.jit(likelihood.mean)(out[None]))[0]
  np.testing.assert_allclose(mean, np.sum(np.arange(5)[:, None] * probs, axis=0), rtol=1e-5)


def test_bernoulli_and_gaussian_match_scipy():
  rng = np.random.default_rng(0)
  logits = rng.normal(size=(4, 3)).astype(np.float32)
  x = rng.integers(0, 2, size=(4, 3)).astype(np.uint8)
  np.testing.assert_allclose(Bernoulli().log_prob(logits, x),
                             stats.bernoulli.logpmf(x, special.expit(logits)).sum(-1), rtol=1e-5)
  np.testing.assert_allclose(Bernoulli().mean(logits), special.expit(logits), rtol=1e-6)
  draws = np.asarray(jax.jit(Bernoulli("float32").sample)(key(0), jnp.full((20000, 1), 1.0)))
  assert draws.dtype == np.float32 and set(np.unique(draws)) == {0.0, 1.0}
  assert abs(draws.mean() - special.expit(1.0)) < 5 * math.sqrt(0.2 / 20000)
  mean, log_std = rng.normal(size=(2, 4, 3)).astype(np.float32)
  y = rng.normal(size=(4, 3)).astype(np.float32)
  learned = Gaussian()
  assert learned.params_per_dim == 2
  np.testing.assert_allclose(learned.log_prob(np.concatenate([mean, log_std], -1), y),
                             stats.norm.logpdf(y, mean, np.exp(log_std)).sum(-1), rtol=1e-5)
  np.testing.assert_allclose(Gaussian(log_std=-0.7).log_prob(mean, y),
                             stats.norm.logpdf(y, mean, np.exp(-0.7)).sum(-1), rtol=1e-5)
  samples = np.asarray(learned.sample(key(1), jnp.broadcast_to(jnp.asarray([0.5, math.log(2.0)]), (20000, 2))))
  assert abs(samples.mean() - 0.5) < 0.1 and abs(samples.std() - 2.0) < 0.1


def test_get_likelihood_by_name_and_its_errors():
  image = DataSpec("digits", (8, 8, 1), 17, "image")
  binary = DataSpec("binary", (28, 28, 1), 2, "image")
  vector = DataSpec("toy", (2,), None, "vector")
  assert get_likelihood("discretized_logistic", image) == DiscretizedLogistic(17)
  assert get_likelihood("discretized_logistic_mixture", image, num_components=4).params_per_dim == 12
  assert get_likelihood("bernoulli", binary) == Bernoulli("uint8")
  assert get_likelihood("bernoulli", vector).dtype == "float32"
  assert get_likelihood("gaussian", vector, log_std=0.0).params_per_dim == 1
  with pytest.raises(ValueError, match="unknown likelihood 'poisson'.*expected one of"):
    get_likelihood("poisson", image)
  with pytest.raises(ValueError, match="discrete and needs data with num_levels"):
    get_likelihood("discretized_logistic", vector)
  with pytest.raises(ValueError, match="density for continuous data"):
    get_likelihood("gaussian", image)
  with pytest.raises(ValueError, match="binarized data"):
    get_likelihood("bernoulli", image)
  with pytest.raises(ValueError, match="unknown options \\['scale'\\]"):
    get_likelihood("discretized_logistic", image, scale=1.0)
  for num_levels in (1, 257):
    with pytest.raises(ValueError, match="num_levels must be an integer in \\[2, 256\\]"):
      DiscretizedLogistic(num_levels)


def test_likelihood_errors_name_the_expected_input():
  x = jnp.zeros((2, 4, 4, 1), jnp.uint8)
  with pytest.raises(ValueError, match=r"decoder output must have shape \(2, 4, 4, 2\)"):
    DiscretizedLogistic(17).log_prob(jnp.zeros((2, 4, 4, 1)), x)
  with pytest.raises(ValueError, match="integer levels"):
    DiscretizedLogistic(17).log_prob(jnp.zeros((2, 4, 4, 2)), x.astype(jnp.float32))
  with pytest.raises(ValueError, match="must lie in \\[0, 16\\]"):
    DiscretizedLogistic(17).log_prob(jnp.zeros((2, 4, 4, 2)), x + 17)
  with pytest.raises(ValueError, match="binarized"):
    Bernoulli().log_prob(jnp.zeros((2, 4, 4, 1)), x + 2)


# ---------------------------------------------------------------- the VAE

# An MLP VAE on 8x8 images of 17 levels: cheap to compile (the conv nets are checked by tracing).
DIGITS_VAE = VAE(event_shape=(8, 8, 1), latent_dim=3, likelihood="discretized_logistic", num_levels=17,
                 hidden_sizes=(16,))


@pytest.fixture(scope="module")
def digits_vae():
  x = jnp.asarray(np.random.default_rng(0).integers(0, 17, (4, 8, 8, 1)), jnp.uint8)
  return DIGITS_VAE, jax.jit(DIGITS_VAE.init)(key(0), x, key(1)), x


def test_analytic_kl_matches_monte_carlo(digits_vae):
  model, variables, x = digits_vae
  kl = model.apply(variables, x, key(2), method=model.elbo)["kl"]
  mean, log_std = model.apply(variables, x, method=model.encode)
  z = gaussian.reparameterize(key(3), jnp.broadcast_to(mean, (20000,) + mean.shape), log_std)
  log_ratio = np.asarray(jnp.sum(gaussian.log_prob(z, mean, log_std) - gaussian.standard_normal_log_prob(z), -1))
  standard_error = log_ratio.std(axis=0) / math.sqrt(log_ratio.shape[0])
  np.testing.assert_array_less(np.abs(log_ratio.mean(axis=0) - np.asarray(kl)), 5 * standard_error)


def test_iwae_chunking_does_not_change_the_bound(digits_vae):
  model, variables, x = digits_vae
  whole = apply_jit(model, model.iwae_bound, 12)(variables, x, key(4))
  for chunk_size in (1, 4):
    chunked = apply_jit(model, model.iwae_bound, 12, chunk_size)(variables, x, key(4))
    np.testing.assert_allclose(chunked, whole, rtol=1e-6, atol=1e-4)
  # log_prob_estimate is the IWAE bound, in chunks of the largest divisor of k that is <= 100.
  estimate = apply_jit(model, model.log_prob_estimate, 12)(variables, x, key(4))
  np.testing.assert_allclose(estimate, whole, rtol=1e-6, atol=1e-4)
  assert [largest_divisor_at_most(k, 100) for k in (5000, 12, 1234, 97, 101)] == [100, 12, 2, 97, 1]
  # The IWAE bound is differentiable (IWAE training) through the scan.
  loss = lambda v: jnp.sum(model.apply(v, x, key(4), 6, 2, method=model.iwae_bound))
  grads = jax.jit(jax.grad(loss))(variables)
  assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize("event_shape, likelihood, num_levels, architecture, channels", [
    ((8, 8, 1), "discretized_logistic_mixture", 17, "conv", (32, 64)),
    ((28, 28, 1), "bernoulli", 2, "conv", (32, 64)),
    ((32, 32, 3), "discretized_logistic", 256, "conv", (32, 64, 128)),
    ((28, 28, 1), "discretized_logistic", 256, "mlp", ()),
    ((5,), "gaussian", None, "mlp", ()),
])
def test_vae_shapes_and_dtypes(event_shape, likelihood, num_levels, architecture, channels):
  """Every method's output shape and dtype, by tracing (jax.eval_shape: nothing is compiled)."""
  model = VAE(event_shape=event_shape, latent_dim=3, likelihood=likelihood, num_levels=num_levels,
              architecture=architecture, hidden_sizes=(16,), channels=channels or (32, 64),
              num_res_blocks=1 if event_shape == (32, 32, 3) else 0)
  x = jax.ShapeDtypeStruct((2,) + event_shape, jnp.uint8 if num_levels else jnp.float32)

  def run(rng, x):
    variables = model.init(rng, x, rng)
    apply = lambda method, *args: model.apply(variables, *args, method=method)
    mean, _ = apply(model.encode, x)
    return (apply(model.elbo, x, rng), apply(model.iwae_bound, x, rng, 4, 2), mean,
            apply(model.decode, mean), apply(model.sample, rng, 3), apply(model.sample_mean, rng, 3),
            apply(model.reconstruct, x, rng), apply(model.reconstruct_mean, x))

  terms, iwae, mean, out, samples, sample_means, reconstructions, reconstruction_means = jax.eval_shape(
      run, key(0), x)
  assert {k: v.shape for k, v in terms.items()} == {
      "elbo": (2,), "reconstruction": (2,), "kl": (2,), "kl_per_dim": (2, 3), "posterior_mean": (2, 3)}
  assert iwae.shape == (2,) and mean.shape == (2, 3)
  params_per_dim = model.observation.params_per_dim
  assert out.shape == (2,) + event_shape[:-1] + (event_shape[-1] * params_per_dim,)
  assert samples.shape == (3,) + event_shape and reconstructions.shape == x.shape
  assert samples.dtype == x.dtype and reconstructions.dtype == x.dtype
  assert sample_means.dtype == jnp.float32 and reconstruction_means.shape == x.shape


def test_vae_samples_and_reconstructions_lie_in_data_space(digits_vae):
  model, variables, x = digits_vae

  @jax.jit
  def run(variables, rng):
    apply = lambda method, *args: model.apply(variables, *args, method=method)
    terms = apply(model.elbo, x, rng)
    return (terms, apply(model.sample, rng, 64), apply(model.sample_mean, rng, 64),
            apply(model.reconstruct, x, rng), apply(model.reconstruct_mean, x))

  terms, samples, sample_means, reconstructions, reconstruction_means = run(variables, key(0))
  np.testing.assert_allclose(terms["elbo"], terms["reconstruction"] - terms["kl"], rtol=1e-6)
  for images in (samples, reconstructions):
    assert images.dtype == jnp.uint8 and int(images.max()) <= 16
  for means in (sample_means, reconstruction_means):
    assert means.dtype == jnp.float32 and 0.0 <= float(means.min()) and float(means.max()) <= 16.0


def test_vae_bad_input_errors(digits_vae):
  model, variables, x = digits_vae
  apply = lambda method, *args: model.apply(variables, *args, method=method)
  for k in (0, -3, 2.5, True):
    with pytest.raises(ValueError, match="k \\(importance samples\\) must be a positive integer"):
      apply(model.iwae_bound, x, key(0), k)
  with pytest.raises(ValueError, match="chunk_size must divide k"):
    apply(model.iwae_bound, x, key(0), 10, 3)
  with pytest.raises(ValueError, match="chunk_size must be a positive integer"):
    apply(model.iwae_bound, x, key(0), 10, 0)
  with pytest.raises(ValueError, match=r"x must have shape \('batch', 8, 8, 1\)"):
    apply(model.elbo, x[:, :4], key(0))
  with pytest.raises(ValueError, match="integer levels"):
    apply(model.encode, x.astype(jnp.float32))
  with pytest.raises(ValueError, match="must lie in \\[0, 16\\]"):
    apply(model.encode, x + 20)
  with pytest.raises(ValueError, match=r"z must have shape \('batch', 3\)"):
    apply(model.decode, jnp.zeros((2, 4)))
  with pytest.raises(ValueError, match="num must be a positive integer"):
    apply(model.sample, key(0), 0)
  with pytest.raises(ValueError, match="unknown likelihood 'poisson'"):
    VAE(event_shape=(8, 8, 1), latent_dim=2, likelihood="poisson", num_levels=17)
  with pytest.raises(ValueError, match="images need num_levels"):
    VAE(event_shape=(8, 8, 1), latent_dim=2, likelihood="discretized_logistic")
  with pytest.raises(ValueError, match="num_levels \\(256\\) must equal the model's \\(17\\)"):
    VAE(event_shape=(8, 8, 1), latent_dim=2, likelihood=DiscretizedLogistic(256), num_levels=17)
  with pytest.raises(ValueError, match="use a discrete likelihood"):
    VAE(event_shape=(8, 8, 1), latent_dim=2, likelihood=Gaussian(), num_levels=17)
  with pytest.raises(ValueError, match="H and W must be divisible by 8"):
    VAE(event_shape=(28, 28, 1), latent_dim=2, num_levels=2, architecture="conv", channels=(4, 4, 4))
  with pytest.raises(ValueError, match="conv architecture needs images"):
    VAE(event_shape=(5,), latent_dim=2, likelihood="gaussian", architecture="conv")
  with pytest.raises(ValueError, match="unknown VAE architecture 'rnn'"):
    VAE(event_shape=(5,), latent_dim=2, likelihood="gaussian", architecture="rnn")


def test_non_finite_elbo_is_an_error(digits_vae):
  model, variables, x = digits_vae
  broken = jax.tree.map(lambda a: jnp.full_like(a, jnp.nan), variables)
  with pytest.raises(FloatingPointError, match="ELBO \\(elbo\\) is not finite"):
    model.apply(broken, x, key(0), method=model.elbo)
  with pytest.raises(FloatingPointError, match="IWAE bound is not finite"):
    model.apply(broken, x, key(0), 2, method=model.iwae_bound)
  # Under jit the values come back; the caller checks them (the loop stops on a non-finite loss).
  terms = jax.jit(lambda v: model.apply(v, x, key(0), method=model.elbo))(broken)
  with pytest.raises(FloatingPointError):
    check_finite(terms)


# ---------------------------------------------------------------- latent space

def test_interpolations():
  rng = np.random.default_rng(0)
  z0, z1 = rng.normal(size=(2, 4, 8)).astype(np.float32)
  for interpolate in (linear_interpolation, spherical_interpolation):
    path = np.asarray(interpolate(z0, z1, 5))
    assert path.shape == (5, 4, 8)
    np.testing.assert_allclose(path[0], z0, atol=1e-5)
    np.testing.assert_allclose(path[-1], z1, atol=1e-5)
  np.testing.assert_allclose(linear_interpolation(z0, z1, 3)[1], (z0 + z1) / 2, rtol=1e-6)
  # slerp between unit vectors moves along the great circle: unit norm, angle to z0 = t * omega.
  u0, u1 = z0 / np.linalg.norm(z0, axis=-1, keepdims=True), z1 / np.linalg.norm(z1, axis=-1, keepdims=True)
  path = np.asarray(spherical_interpolation(u0, u1, 5), np.float64)
  np.testing.assert_allclose(np.linalg.norm(path, axis=-1), 1.0, atol=1e-5)
  omega = np.arccos(np.sum(u0 * u1, -1))
  angles = np.arccos(np.clip(np.sum(path * u0, -1), -1, 1))
  np.testing.assert_allclose(angles, np.linspace(0, 1, 5)[:, None] * omega, atol=1e-3)
  # Parallel endpoints: the limit (the straight line), not NaN.
  np.testing.assert_allclose(spherical_interpolation(z0[0], 2 * z0[0], 3)[1], 1.5 * z0[0], rtol=1e-5)
  with pytest.raises(ValueError, match="z0 and z1 must have one shape"):
    linear_interpolation(z0, z1[:, :3], 3)


def test_latent_traversal_and_grids():
  z = jnp.arange(4, dtype=jnp.float32)
  rows = np.asarray(latent_traversal(z, dims=[1, 3], values=[-2.0, 0.0, 2.0]))
  assert rows.shape == (6, 4)
  expected = np.tile(np.arange(4.0), (6, 1))
  expected[:3, 1] = [-2, 0, 2]
  expected[3:, 3] = [-2, 0, 2]
  np.testing.assert_array_equal(rows, expected)
  with pytest.raises(ValueError, match="dims must be a non-empty list of latent dimensions in \\[0, 3\\]"):
    latent_traversal(z, dims=[4], values=[0.0])
  # Decoded means in [0, L-1] become a uint8 grid: one row per dimension / pair.
  decode_mean = lambda latents: jnp.broadcast_to(jax.nn.sigmoid(latents[:, :1, None, None]) * 16,
                                                 (latents.shape[0], 8, 8, 1))
  grid = traversal_grid(decode_mean, z, [0, 2], [-1.0, 0.0, 1.0], num_levels=17)
  assert grid.shape == (2 * 9 + 1, 3 * 9 + 1, 1) and grid.dtype == np.uint8
  grid = interpolation_grid(decode_mean, np.ones((3, 4)), -np.ones((3, 4)), 5, num_levels=17)
  assert grid.shape == (3 * 9 + 1, 5 * 9 + 1, 1)
  with pytest.raises(ValueError, match="decoded means \\(num_levels=17\\) must lie in \\[0.0, 16\\]"):
    traversal_grid(lambda latents: decode_mean(latents) + 20, z, [0], [0.0], num_levels=17)


def test_posterior_collapse_diagnostics():
  rng = np.random.default_rng(0)
  scales = np.array([1.0, 0.3, 0.05, 0.0])                             # variances 1, 0.09, 0.0025, 0
  means = rng.normal(size=(5000, 4)) * scales
  assert int(active_units(jnp.asarray(means))) == 2
  assert int(active_units(jnp.asarray(means), threshold=1e-3)) == 3
  with pytest.raises(ValueError, match="N >= 2"):
    active_units(jnp.zeros((1, 4)))
  kl = jnp.asarray([[1.0, 0.0], [3.0, 0.0], [100.0, 100.0]])
  np.testing.assert_allclose(mean_kl_per_dim(kl[:2]), [2.0, 0.0])
  np.testing.assert_allclose(mean_kl_per_dim(kl, mask=jnp.asarray([1, 1, 0])), [2.0, 0.0])

