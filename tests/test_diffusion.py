"""Unit tests of the diffusion package against independent truths.

- schedules: DDPM's alphas_cumprod (np.cumprod), Nichol & Dhariwal's f(t) / f(0), the cosine identity
  alpha^2 = cos^2(pi u / 2), finite differences and closed-form derivatives;
- process: the round trip through every prediction parameterisation, Ho et al.'s eq. 7 in float64;
- elbo: the discretized Gaussian against mpmath (arbitrary precision) and scipy, the prior KL and the
  diffusion KL against the textbook Gaussian KL in float64;
- GaussianDiffusion: with a denoiser whose x_hat = b (1 + t) ignores z, every term of the bound is
  deterministic and known in closed form (step i adds 1/2 (SNR_{i-1} - SNR_i) ||x - x_hat(t_i)||^2), which
  checks the step indexing of `elbo` and `likelihood.elbo_over_steps` and the times the network sees;
  shapes, dtypes and error messages with a tiny MLP and a tiny U-Net; a short training run on Gaussian data.
(`test_diffusion_gaussian.py` checks the bound, the ODE and the samplers against the Gaussian closed forms.)
"""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import mpmath
import numpy as np
import optax
import pytest
import scipy.optimize
import scipy.special
import scipy.stats

from gen_jax.distributions import discretized_gaussian_log_prob
from gen_jax.models.diffusion import elbo, likelihood, process, schedules
from gen_jax.models.diffusion.diffusion import GaussianDiffusion
from gen_jax.nn import TimeConditionedMLP, UNet

RNG = np.random.default_rng(0)


def sigmoid(x):
  return 1 / (1 + np.exp(-np.asarray(x, np.float64)))


def gaussian_kl(mean_1, std_1, mean_2, std_2):
  """KL(N(mean_1, std_1^2) || N(mean_2, std_2^2)) per dimension, the textbook formula in float64."""
  return np.log(std_2 / std_1) + (std_1 ** 2 + (mean_1 - mean_2) ** 2) / (2 * std_2 ** 2) - 0.5


# -- schedules -------------------------------------------------------------------------------------


def test_linear_betas_log_snrs_are_ddpm_alphas_cumprod_on_the_grid():
  betas = np.linspace(1e-4, 0.02, 1000, dtype=np.float64)  # Ho et al. 2020, T = 1000
  np.testing.assert_array_equal(schedules.linear_betas(1000), betas)
  alphas_cumprod = np.cumprod(1.0 - betas)
  expected = np.log(alphas_cumprod / (1.0 - alphas_cumprod))
  schedule = schedules.make_schedule("linear_betas", 1000)
  assert schedule == schedules.DiscreteSchedule.from_betas(betas) and schedule.num_timesteps == 1000
  np.testing.assert_allclose(schedule.log_snrs, expected, rtol=1e-12, atol=1e-12)
  assert np.all(np.diff(schedule.log_snrs) < 0)
  assert schedule.log_snrs[0] == pytest.approx(math.log((1 - 1e-4) / 1e-4))
  grid = schedule.grid()
  np.testing.assert_allclose(grid, np.arange(1000) / 999, atol=1e-7)
  # lambda(t) at the states is the state's log-SNR (float32), linear in t in between.
  np.testing.assert_allclose(schedule.log_snr({}, jnp.asarray(grid)), expected, rtol=2e-6, atol=2e-6)
  midpoints = (grid[:-1] + grid[1:]) / 2
  np.testing.assert_allclose(schedule.log_snr({}, jnp.asarray(midpoints)), (expected[:-1] + expected[1:]) / 2,
                             rtol=1e-5, atol=1e-5)


def test_cosine_betas_follow_nichol_and_dhariwal():
  num_timesteps, s = 1000, 0.008

  def f(i):  # Improved DDPM, eq. 17
    return np.cos((i / num_timesteps + s) / (1 + s) * np.pi / 2) ** 2

  betas = schedules.cosine_betas(num_timesteps)
  assert betas.shape == (num_timesteps,) and np.all(betas > 0) and betas.max() == 0.999
  alphas_cumprod = np.cumprod(1.0 - betas)
  unclipped = np.cumsum(betas >= 0.999) == 0  # abar_i = f(i) / f(0) until the first clipped beta
  assert unclipped.sum() >= num_timesteps - 2
  i = np.arange(1, num_timesteps + 1)
  np.testing.assert_allclose(alphas_cumprod[unclipped], f(i[unclipped]) / f(0), rtol=1e-9, atol=1e-15)
  log_snrs = np.asarray(schedules.make_schedule("cosine_betas", num_timesteps).log_snrs)
  np.testing.assert_allclose(log_snrs, np.log(alphas_cumprod / (1 - alphas_cumprod)), rtol=1e-9, atol=1e-9)


def test_cosine_log_snr_endpoints_and_the_cosine_identity():
  schedule = schedules.CosineLogSNR(log_snr_max=10.0, log_snr_min=-7.0)
  t = np.linspace(0, 1, 101)
  lam = np.asarray(schedule.log_snr({}, jnp.asarray(t)), np.float64)
  assert lam[0] == pytest.approx(10.0, abs=1e-4) and lam[-1] == pytest.approx(-7.0, abs=1e-4)
  # u(t) linear between the u's where -2 log tan(pi u / 2) hits the endpoints, found by root finding;
  # then alpha^2 = sigmoid(lambda) = cos^2(pi u / 2) (the cosine schedule).
  root = lambda target: scipy.optimize.brentq(lambda u: -2 * np.log(np.tan(np.pi * u / 2)) - target, 1e-12,
                                              1 - 1e-12, xtol=1e-15)
  u = root(10.0) + (root(-7.0) - root(10.0)) * t
  np.testing.assert_allclose(lam, -2 * np.log(np.tan(np.pi * u / 2)), atol=2e-5)
  np.testing.assert_allclose(sigmoid(lam), np.cos(np.pi * u / 2) ** 2, atol=1e-6)


def perturbed(params, seed, scale=2.0):
  leaves, tree = jax.tree.flatten(params)
  keys = jax.random.split(jax.random.key(seed), len(leaves))
  return jax.tree.unflatten(tree, [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys)])


def test_learned_log_snr_is_monotone_and_hits_its_endpoints():
  schedule = schedules.LearnedLogSNR(log_snr_max=13.3, log_snr_min=-5.0)
  t = jnp.linspace(0.0, 1.0, 4001)
  params = schedule.init(jax.random.key(0))
  log_snr = jax.jit(schedule.log_snr)
  lam = np.asarray(log_snr(params, t))
  assert lam[0] == pytest.approx(13.3, abs=1e-5) and lam[-1] == pytest.approx(-5.0, abs=1e-5)
  assert np.all(np.diff(lam) < 0)
  # Initialised close to the linear schedule (measured: 0.013 of an 18.3-unit range).
  assert np.abs(lam - (13.3 - 18.3 * np.asarray(t))).max() < 0.1
  # Any parameters give a decreasing lambda from params' lambda_max to lambda_max - softplus(gap):
  # the weights enter through abs() (here some are negative).
  for seed in range(1, 5):
    q = perturbed(params, seed)
    lam = np.asarray(log_snr(q, t))
    assert np.all(np.diff(lam) < 0), seed
    assert lam[0] == pytest.approx(float(q["log_snr_max"]), abs=1e-5)
    assert lam[-1] == pytest.approx(float(q["log_snr_max"] - jax.nn.softplus(q["gap"])), abs=1e-5)
  assert any(float(perturbed(params, seed)["linear"]) < 0 for seed in range(1, 5))
  # and it is differentiable in its parameters.
  grads = jax.jit(jax.grad(lambda p: jnp.sum(schedule.log_snr(p, t[::100]) ** 2)))(params)
  assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))
  assert float(jnp.abs(grads["a"]).max()) > 0


@pytest.mark.parametrize("schedule", [schedules.LinearLogSNR(8.0, -6.0), schedules.CosineLogSNR(8.0, -6.0),
                                      schedules.LearnedLogSNR(8.0, -6.0, num_features=16),
                                      schedules.make_schedule("cosine_betas", 11)],
                         ids=lambda s: type(s).__name__)
def test_log_snr_derivative_is_the_finite_difference(schedule):
  params = perturbed(schedule.init(jax.random.key(0)), 7, scale=0.5)
  t = jnp.asarray([0.02, 0.13, 0.37, 0.51, 0.74, 0.96])  # inside the discrete schedule's segments
  lam, dlam = schedules.log_snr_and_derivative(schedule, params, t)
  np.testing.assert_allclose(lam, schedule.log_snr(params, t), rtol=1e-6, atol=1e-6)
  h = 1e-3
  finite_difference = (schedule.log_snr(params, t + h) - schedule.log_snr(params, t - h)) / (2 * h)
  np.testing.assert_allclose(dlam, finite_difference, rtol=2e-3, atol=2e-2)
  if isinstance(schedule, schedules.LinearLogSNR):
    np.testing.assert_allclose(dlam, -14.0, rtol=1e-6)
  if isinstance(schedule, schedules.CosineLogSNR):  # d/dt -2 log tan(pi u / 2) = -2 pi u' / sin(pi u)
    u0, u1 = (2 / np.pi * np.arctan(np.exp(-v / 2)) for v in (8.0, -6.0))
    u = u0 + (u1 - u0) * np.asarray(t, np.float64)
    np.testing.assert_allclose(dlam, -2 * np.pi * (u1 - u0) / np.sin(np.pi * u), rtol=1e-5)
  if isinstance(schedule, schedules.DiscreteSchedule):  # the slope of the segment: 10 segments of 0.1
    segment = np.floor(np.asarray(t) * 10).astype(int)
    log_snrs = np.asarray(schedule.log_snrs)
    np.testing.assert_allclose(dlam, (log_snrs[segment + 1] - log_snrs[segment]) * 10, rtol=1e-4)


def test_make_schedule_rejects_unknown_names_and_bad_ranges():
  with pytest.raises(ValueError, match="linear_betas.*cosine_betas.*learned_log_snr.*'cosine'"):
    schedules.make_schedule("cosine")
  with pytest.raises(ValueError, match="log_snr_max must exceed log_snr_min"):
    schedules.LinearLogSNR(-5.0, 13.3)
  with pytest.raises(ValueError, match="num_timesteps"):
    schedules.linear_betas(1)
  with pytest.raises(ValueError, match="betas"):
    schedules.DiscreteSchedule.from_betas(np.array([0.1, 1.0]))


# -- process ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_prediction_target_and_predictions_round_trip(prediction):
  x = jnp.asarray(RNG.uniform(-1, 1, (64, 3)), jnp.float32)
  eps = jnp.asarray(RNG.normal(size=(64, 3)), jnp.float32)
  log_snr = jnp.asarray(RNG.uniform(-8, 8, 64), jnp.float32)
  z = process.diffuse(x, log_snr, eps)
  alpha, sigma = (np.asarray(v, np.float64)[:, None] for v in process.alpha_sigma(log_snr))
  np.testing.assert_allclose(z, alpha * np.asarray(x) + sigma * np.asarray(eps), rtol=1e-5, atol=1e-6)
  target = process.prediction_target(x, eps, log_snr, prediction)
  if prediction == "v":  # Salimans & Ho 2022: v = alpha eps - sigma x
    np.testing.assert_allclose(target, alpha * np.asarray(eps) - sigma * np.asarray(x), atol=1e-6)
  x_hat, eps_hat = process.predictions(target, z, log_snr, prediction)
  # Dividing by alpha (eps) or sigma (x0) amplifies float32 rounding by up to e^2 at |lambda| = 8
  # (measured: 3e-6 for eps and x0, 2e-7 for v).
  atol = {"eps": 2e-5, "x0": 2e-5, "v": 2e-6}[prediction]
  np.testing.assert_allclose(x_hat, x, atol=atol)
  np.testing.assert_allclose(eps_hat, eps, atol=atol)
  with pytest.raises(ValueError, match="'eps', 'x0', 'v'"):
    process.predictions(target, z, log_snr, "score")


def test_alpha_sigma_are_variance_preserving():
  log_snr = jnp.asarray([-30.0, -13.3, -1.0, 0.0, 0.5, 5.0, 13.3, 30.0])
  alpha, sigma = process.alpha_sigma(log_snr)
  np.testing.assert_allclose(alpha ** 2 + sigma ** 2, 1.0, atol=1e-6)
  np.testing.assert_allclose(alpha ** 2, sigmoid(log_snr), rtol=1e-6)
  np.testing.assert_allclose(np.log(alpha ** 2 / sigma ** 2), log_snr, rtol=1e-5, atol=1e-5)


def test_posterior_is_ho_et_al_eq_7_for_random_pairs():
  # Random pairs, and neighbouring states of DDPM's 1000-step schedule (where 1 - e^{lambda_t - lambda_s}
  # is ~1e-4 and the expm1 matters).
  lam = np.asarray(schedules.make_schedule("linear_betas", 1000).log_snrs)
  idx = RNG.integers(1, 1000, 32)
  pairs = np.sort(RNG.uniform(-10, 10, (32, 2)), axis=1)
  lam_s = np.concatenate([pairs[:, 1], lam[idx - 1]])
  lam_t = np.concatenate([pairs[:, 0], lam[idx]])
  z_t = RNG.normal(size=(64, 4))
  x = RNG.uniform(-1, 1, (64, 4))
  mean, std = process.posterior(jnp.asarray(z_t, jnp.float32), jnp.asarray(x, jnp.float32),
                                jnp.asarray(lam_s, jnp.float32), jnp.asarray(lam_t, jnp.float32))
  abar_s, abar_t = sigmoid(lam_s)[:, None], sigmoid(lam_t)[:, None]
  beta = 1 - abar_t / abar_s  # the step's beta; alpha_t (Ho's) = 1 - beta
  ho_mean = np.sqrt(abar_s) * beta / (1 - abar_t) * x + np.sqrt(1 - beta) * (1 - abar_s) / (1 - abar_t) * z_t
  ho_var = (1 - abar_s) / (1 - abar_t) * beta
  np.testing.assert_allclose(mean, ho_mean, rtol=1e-5, atol=5e-6)
  np.testing.assert_allclose(np.asarray(std)[:, 0] ** 2, ho_var[:, 0], rtol=1e-4)


# -- elbo terms ------------------------------------------------------------------------------------

L = 17
CASES = [(0.0, 0.1), (0.3, 0.05), (-0.9, 0.3), (1.0, 1.0), (5.0, 1e-4), (-5.0, 1e-4), (0.33, 1e-4),
         (1.0, 1e-4), (-1.0625, 0.01), (0.0, 10.0), (30.0, 10.0), (-40.0, 2.0)]


def mp_log_mass(k, mean, std, num_levels):
  """log P(level k) under N(mean, std^2) binned (edge bins open) in 60-digit arithmetic."""
  mpmath.mp.dps = 60
  h = mpmath.mpf(1) / (num_levels - 1)
  centre = 2 * k * h - 1
  a = -mpmath.inf if k == 0 else (centre - h - mean) / mpmath.mpf(std)
  b = mpmath.inf if k == num_levels - 1 else (centre + h - mean) / mpmath.mpf(std)
  if a > 0:  # both in the upper tail: the survival functions keep the precision
    mass = mpmath.ncdf(-a) - mpmath.ncdf(-b)
  else:
    mass = mpmath.ncdf(b) - mpmath.ncdf(a)
  return float(mpmath.log(mass))


@jax.jit
def all_levels_log_prob(mean, std):
  """log P(k) for every level k = 0..L-1 at one (mean, std): [L]."""
  levels = jnp.arange(L)[:, None]
  return discretized_gaussian_log_prob(levels, jnp.full((L, 1), mean, jnp.float32), jnp.float32(std), L)[:, 0]


# d log P(k) / d (mean, std) for every level: two [L] vectors.
all_levels_gradients = jax.jit(jax.jacfwd(all_levels_log_prob, argnums=(0, 1)))


def test_discretized_gaussian_masses_sum_to_one_and_match_arbitrary_precision():
  for mean, std in CASES:
    log_p = np.asarray(all_levels_log_prob(mean, std), np.float64)
    assert np.all(np.isfinite(log_p)) and np.all(log_p <= 0), (mean, std)
    assert abs(scipy.special.logsumexp(log_p)) < 2e-7, (mean, std)
    truth = np.array([mp_log_mass(k, mean, std, L) for k in range(L)])
    # float32: relative 1e-5 on log masses down to -1.8e9, absolute 1e-6 on masses near 1.
    np.testing.assert_allclose(log_p, truth, rtol=1e-5, atol=1e-6, err_msg=str((mean, std)))


def test_discretized_gaussian_equals_scipy_cdf_differences_with_gradients():
  half = 1 / (L - 1)
  centres = 2 * np.arange(L) * half - 1
  upper = np.where(np.arange(L) == L - 1, np.inf, centres + half)
  lower = np.where(np.arange(L) == 0, -np.inf, centres - half)
  for mean, std in [(0.0, 0.1), (0.3, 0.05), (-0.9, 0.3), (1.0, 1.0), (0.0, 10.0), (1.2, 0.2)]:
    cdf_u, cdf_l = scipy.stats.norm.cdf(upper, mean, std), scipy.stats.norm.cdf(lower, mean, std)
    mass = cdf_u - cdf_l
    accurate = mass > 1e-6
    log_p = np.asarray(all_levels_log_prob(mean, std), np.float64)
    np.testing.assert_allclose(log_p[accurate], np.log(mass[accurate]), rtol=1e-5, atol=1e-5)
    # d log P / d mean = -(phi(u) - phi(l)) / (std P), d / d std = -(u phi(u) - l phi(l)) / (std P),
    # with u, l standardised edges (phi(+-inf) = 0).
    pdf_u, pdf_l = scipy.stats.norm.pdf(upper, mean, std) * std, scipy.stats.norm.pdf(lower, mean, std) * std
    zu = np.where(np.isinf(upper), 0.0, (upper - mean) / std)
    zl = np.where(np.isinf(lower), 0.0, (lower - mean) / std)
    safe_mass = np.where(accurate, mass, 1.0)
    d_mean = -(pdf_u - pdf_l) / (std * safe_mass)
    d_std = -(zu * pdf_u - zl * pdf_l) / (std * safe_mass)
    jac_mean, jac_std = all_levels_gradients(jnp.float32(mean), jnp.float32(std))
    np.testing.assert_allclose(jac_mean[accurate], d_mean[accurate], rtol=1e-3, atol=1e-3)
    np.testing.assert_allclose(jac_std[accurate], d_std[accurate], rtol=1e-3, atol=1e-3)


def test_discretized_gaussian_gradients_are_finite_at_every_level():
  reverse_mode = jax.jit(jax.jacrev(all_levels_log_prob, argnums=(0, 1)))
  for mean, std in CASES:
    for jacobian in (all_levels_gradients, reverse_mode):
      jac = jacobian(jnp.float32(mean), jnp.float32(std))
      assert all(bool(jnp.all(jnp.isfinite(j))) for j in jac), (mean, std, jac)


def test_prior_kl_is_the_gaussian_kl():
  x = RNG.uniform(-1, 1, (8, 5))
  for log_snr_1 in (-15.0, -12.0, -5.0, 0.0, 3.0):
    alpha, sigma = np.sqrt(sigmoid(log_snr_1)), np.sqrt(sigmoid(-log_snr_1))
    truth = np.sum(gaussian_kl(alpha * x, sigma, 0.0, 1.0), -1)
    kl = elbo.prior_kl(jnp.asarray(x, jnp.float32), jnp.float32(log_snr_1))
    assert kl.shape == (8,)
    # float32 keeps the relative precision where the KL is 1e-6 nats (no 1 - 1 cancellation).
    np.testing.assert_allclose(kl, truth, rtol=1e-5, err_msg=str(log_snr_1))


def test_discrete_diffusion_term_is_the_kl_between_posteriors():
  batch, dim = 16, 6
  x = RNG.uniform(-1, 1, (batch, dim))
  eps, eps_hat = RNG.normal(size=(2, batch, dim))
  lam_t = RNG.uniform(-6, 4, batch)
  lam_s = lam_t + RNG.uniform(0.01, 3, batch)
  term = elbo.discrete_diffusion_term(*(jnp.asarray(v, jnp.float32) for v in (eps, eps_hat, lam_s, lam_t)))
  # Independent route in float64: z_t, x_hat = (z_t - sigma_t eps_hat) / alpha_t, the posteriors
  # q(z_s | z_t, x) and p(z_s | z_t) = q(z_s | z_t, x_hat) from Ho et al.'s eq. 7, and their KL.
  abar_s, abar_t = sigmoid(lam_s)[:, None], sigmoid(lam_t)[:, None]
  z_t = np.sqrt(abar_t) * x + np.sqrt(1 - abar_t) * eps
  x_hat = (z_t - np.sqrt(1 - abar_t) * eps_hat) / np.sqrt(abar_t)
  beta = 1 - abar_t / abar_s
  mean = lambda x0: np.sqrt(abar_s) * beta / (1 - abar_t) * x0 + np.sqrt(1 - beta) * (1 - abar_s) / (1 - abar_t) * z_t
  std = np.sqrt((1 - abar_s) / (1 - abar_t) * beta) * np.ones_like(x)
  np.testing.assert_allclose(term, np.sum(gaussian_kl(mean(x), std, mean(x_hat), std), -1), rtol=1e-5)
  # The same KL from the package's own posterior (float32).
  f32 = lambda v: jnp.asarray(v, jnp.float32)
  mu, sd = process.posterior(f32(z_t), f32(x), f32(lam_s), f32(lam_t))
  mu_hat, _ = process.posterior(f32(z_t), f32(x_hat), f32(lam_s), f32(lam_t))
  np.testing.assert_allclose(term, np.sum((np.asarray(mu) - np.asarray(mu_hat)) ** 2 / (2 * np.asarray(sd) ** 2), -1),
                             rtol=1e-5)


# -- GaussianDiffusion: the bound in closed form ------------------------------------------------------

D = 3
B_CONST = np.array([0.2, -0.4, 0.7])


class TimeOnlyDenoiser(nn.Module):
  """Output b (1 + t) whatever z: with prediction "x0", x_hat depends on t only, so every term of
  the bound is deterministic."""

  @nn.compact
  def __call__(self, z, t, train=False):
    b = self.param("b", lambda rng: jnp.asarray(B_CONST, jnp.float32))
    return jnp.broadcast_to(b * (1 + t[:, None]), z.shape)


def closed_form_bound(x, log_snrs, times):
  """(elbo, prior, diffusion, reconstruction) [N] in float64 for x_hat(t) = b (1 + t), states
  lambda_0 > ... > lambda_T at times 0 = t_0 < ... < t_T = 1."""
  lam0, lam1 = log_snrs[0], log_snrs[-1]
  alpha1_sq = sigmoid(lam1)
  prior = 0.5 * np.sum(alpha1_sq * x ** 2 + (1 - alpha1_sq) - 1 - np.log(1 - alpha1_sq), -1)
  std = np.exp(-lam0 / 2)
  reconstruction = np.sum(scipy.stats.norm.logpdf(x, B_CONST, std), -1)
  snr = np.exp(log_snrs)
  diffusion = sum(0.5 * (snr[i - 1] - snr[i]) * np.sum((x - B_CONST * (1 + times[i])) ** 2, -1)
                  for i in range(1, len(times)))
  return reconstruction - prior - diffusion, prior, diffusion, reconstruction


def constant_model(schedule, num_timesteps=None):
  return GaussianDiffusion(event_shape=(D,), denoiser=TimeOnlyDenoiser(), schedule=schedule, prediction="x0",
                           num_timesteps=num_timesteps)


@pytest.mark.parametrize("schedule,num_timesteps", [(schedules.make_schedule("cosine_betas", 5), None),
                                                    (schedules.LinearLogSNR(3.0, -4.0), 4)],
                         ids=["cosine_betas_T5", "linear_log_snr_T4"])
def test_full_sum_over_steps_and_the_one_sample_elbo_equal_the_closed_form(schedule, num_timesteps):
  m = constant_model(schedule, num_timesteps)
  x = RNG.uniform(-1, 1, (6, D))
  variables = m.init(jax.random.key(0), jnp.asarray(x, jnp.float32), jax.random.key(1))
  times = np.asarray(m.time_grid(), np.float64)
  log_snrs = np.asarray(schedule.log_snr({}, jnp.asarray(times)), np.float64)
  assert len(times) == 5 and m.num_transitions == 4
  truth = dict(zip(("elbo", "prior", "diffusion", "reconstruction"), closed_form_bound(x, log_snrs, times)))
  # K = T: every transition once, whatever the stratification offset u and the noise.
  full_sum = jax.jit(lambda key: likelihood.elbo_over_steps(m, variables, jnp.asarray(x, jnp.float32), key,
                                                            num_step_samples=4))
  for seed in (2, 3):
    full = full_sum(jax.random.key(seed))
    for name, value in truth.items():
      np.testing.assert_allclose(full[name], value, rtol=1e-5, atol=1e-5, err_msg=name)
  # The one-sample estimate draws transition i with antithetic times: a batch of 4 copies of one x
  # sees each transition exactly once, so its mean is the exact sum, its spread that of the steps.
  x_rep = jnp.asarray(np.repeat(x[:1], 4, 0), jnp.float32)
  single = m.apply(variables, x_rep, jax.random.key(4), method=m.elbo)
  np.testing.assert_allclose(single["elbo"], single["reconstruction"] - single["prior"] - single["diffusion"],
                             rtol=1e-6)
  np.testing.assert_allclose(np.mean(single["diffusion"]), truth["diffusion"][0], rtol=1e-5)
  snr = np.exp(log_snrs)
  steps = 4 * 0.5 * (snr[:-1] - snr[1:]) * np.sum((x[0] - B_CONST * (1 + times[1:, None])) ** 2, -1)
  np.testing.assert_allclose(np.sort(single["diffusion"]), np.sort(steps), rtol=1e-5)


def test_continuous_time_bound_is_the_integral():
  schedule = schedules.LinearLogSNR(3.0, -4.0)
  m = constant_model(schedule, 0)
  x = RNG.uniform(-1, 1, (6, D))
  variables = m.init(jax.random.key(0), jnp.asarray(x, jnp.float32), jax.random.key(1))
  integrand = lambda t: 0.5 * 7.0 * np.exp(3.0 - 7.0 * t)[..., None] * np.sum(
      (x - B_CONST * (1 + t[..., None, None])) ** 2, -1)  # -1/2 lambda' e^lambda ||x - x_hat(t)||^2: [..., N]
  nodes, weights = np.polynomial.legendre.leggauss(60)  # exact to float64 for this smooth integrand
  integral = weights / 2 @ integrand((nodes + 1) / 2)
  k = 64
  rng = jax.random.key(2)
  estimate = likelihood.elbo_over_steps(m, variables, jnp.asarray(x, jnp.float32), rng, num_step_samples=k)
  # The estimate is (1/K) sum_k f((u + k) / K) with the example's offset u (drawn from the key as the
  # function draws it) ...
  u = np.asarray(jax.random.uniform(jax.random.split(jax.random.fold_in(rng, 1))[0], (6,)), np.float64)
  shifted_rule = np.mean(integrand((u + np.arange(k)[:, None]) / k), 0).diagonal()  # f_i at u_i
  np.testing.assert_allclose(estimate["diffusion"], shifted_rule, rtol=1e-4)
  # ... so within total variation / K of the integral, whatever u (measured: at most 0.35 of it).
  fine = integrand(np.linspace(0, 1, 100_001))
  variation = np.abs(np.diff(fine, axis=0)).sum(0)
  assert np.all(np.abs(np.asarray(estimate["diffusion"]) - integral) <= variation / k)
  _, prior, _, reconstruction = closed_form_bound(x, np.array([3.0, -4.0]), np.array([0.0, 1.0]))
  np.testing.assert_allclose(estimate["prior"], prior, rtol=1e-5)
  np.testing.assert_allclose(estimate["reconstruction"], reconstruction, rtol=1e-5)


# -- GaussianDiffusion with real networks -------------------------------------------------------------

IMAGE_SHAPE = (8, 8, 1)


def mlp_model(schedule=None, num_timesteps=0, prediction="eps"):
  return GaussianDiffusion(event_shape=(2,), denoiser=TimeConditionedMLP(hidden_sizes=(32, 32), embedding_dim=16),
                           schedule=schedule or schedules.LinearLogSNR(8.0, -8.0), prediction=prediction,
                           num_timesteps=num_timesteps)


def unet_model(**kwargs):
  unet = UNet(channels=8, channel_multipliers=(1, 2), num_res_blocks=1, attention_resolutions=(),
              num_groups=4, dropout=0.0)
  return GaussianDiffusion(event_shape=IMAGE_SHAPE, denoiser=unet, schedule=schedules.make_schedule("cosine_betas", 5),
                           num_levels=17, **kwargs)


@pytest.fixture(scope="module")
def unet():
  """The model, random variables and images. DDPM's U-Net zero-initialises its output conv (eps_hat = 0
  at init, which would hide errors), and jit-compiling its init costs ~20 s here: the weights are
  drawn in NumPy instead (fan-in scaled, GroupNorm scales near 1)."""
  m = unet_model()
  shapes = jax.eval_shape(lambda: m.init(jax.random.key(0), jnp.zeros((1, *IMAGE_SHAPE)), jnp.zeros((1,)),
                                         method=m.denoise))
  rng = np.random.default_rng(1)

  def draw(path, leaf):
    if leaf.ndim >= 2:
      return jnp.asarray(rng.normal(size=leaf.shape) / np.sqrt(np.prod(leaf.shape[:-1])), leaf.dtype)
    offset = 1.0 if "scale" in jax.tree_util.keystr(path) else 0.0
    return jnp.asarray(offset + 0.1 * rng.normal(size=leaf.shape), leaf.dtype)

  variables = jax.tree_util.tree_map_with_path(draw, shapes)
  images = jnp.asarray(RNG.integers(0, 17, (4, *IMAGE_SHAPE)), jnp.uint8)
  return m, variables, images


def test_unet_model_elbo_sample_and_edit(unet):
  m, variables, images = unet
  parts = jax.jit(m.apply)(variables, images, jax.random.key(2))
  assert set(parts) == {"elbo", "prior", "diffusion", "reconstruction"}
  assert all(v.shape == (4,) and bool(jnp.all(jnp.isfinite(v))) for v in parts.values())
  np.testing.assert_allclose(parts["elbo"], parts["reconstruction"] - parts["prior"] - parts["diffusion"], rtol=1e-6)
  assert bool(jnp.all(parts["reconstruction"] <= 0))  # the log-probability of discrete data
  assert bool(jnp.all(parts["prior"] > 0)) and bool(jnp.all(parts["diffusion"] > 0))
  # Samples: levels in [0, 16] after the full chain (T - 1 = 4 steps).
  samples = jax.jit(lambda v, k: m.apply(v, k, 3, method=m.sample))(variables, jax.random.key(3))
  assert samples.shape == (3, *IMAGE_SHAPE) and samples.dtype == jnp.uint8
  assert int(samples.max()) <= 16 and len(np.unique(samples)) > 1
  # Inpainting: the known pixels (mask 1) come back exactly, the others are the model's.
  mask = jnp.zeros(images.shape, jnp.int32).at[:, :4].set(1)
  edited = jax.jit(lambda v, k, x, mask: m.apply(v, k, x, 0.6, mask=mask, method=m.edit))(
      variables, jax.random.key(4), images, mask)
  assert edited.dtype == jnp.uint8 and edited.shape == images.shape and int(edited.max()) <= 16
  np.testing.assert_array_equal(edited[:, :4], images[:, :4])
  assert bool(jnp.any(edited[:, 4:] != images[:, 4:]))


def test_unet_model_rejects_bad_input(unet):
  m, variables, images = unet
  with pytest.raises(ValueError, match=r"shape \('batch', 8, 8, 1\)"):
    m.apply(variables, images[:, :4], jax.random.key(0))
  with pytest.raises(ValueError, match="integer levels"):
    m.apply(variables, images.astype(jnp.float32) / 16, jax.random.key(0))
  with pytest.raises(ValueError, match="num_levels=17"):
    m.apply(variables, images.at[0, 0, 0, 0].set(17), jax.random.key(0))
  for k in (5, 0):
    with pytest.raises(ValueError, match=r"num_step_samples must be an int in \[1, T=4\]"):
      likelihood.elbo_over_steps(m, variables, images, jax.random.key(0), num_step_samples=k)
  with pytest.raises(ValueError, match="num_steps must be an int >= 1"):
    m.apply(variables, jax.random.key(0), 2, num_steps=0, method=m.sample)
  with pytest.raises(ValueError, match="num_steps=5 needs 6 states"):  # the schedule has 5 states
    m.apply(variables, jax.random.key(0), 2, num_steps=5, method=m.sample)
  for t_start in (0.0, 1.5):
    with pytest.raises(ValueError, match=r"t_start must lie in \(0, 1\]"):
      m.apply(variables, jax.random.key(0), images, t_start, num_steps=1, method=m.edit)
  with pytest.raises(ValueError, match="mask must have x's shape"):
    m.apply(variables, jax.random.key(0), images, 0.5, mask=jnp.ones(IMAGE_SHAPE), method=m.edit)
  with pytest.raises(ValueError, match="5 states has 4 transitions"):
    unet_model(num_timesteps=10)
  with pytest.raises(ValueError, match="prediction must be one of"):
    unet_model(prediction="score")
  with pytest.raises(ValueError, match="num_timesteps >= 0"):
    mlp_model(num_timesteps=None)


@pytest.mark.parametrize("prediction", ["eps", "x0", "v"])
def test_simple_loss_is_the_mean_squared_error_to_the_target(prediction):
  m = mlp_model(schedules.make_schedule("linear_betas", 50), num_timesteps=None, prediction=prediction)
  x = jnp.asarray(RNG.normal(size=(8, 2)), jnp.float32)
  variables = m.init(jax.random.key(0), x, jax.random.key(1))
  rng = jax.random.key(5)
  loss = m.apply(variables, x, rng, method=m.simple_loss)
  # By hand, with the keys the loss uses: antithetic t -> a state 1..T of the grid, eps, z.
  time_rng, eps_rng = jax.random.split(rng)
  u = float(jax.random.uniform(time_rng, ()))
  states = np.minimum(np.floor(((u + np.arange(8) / 8) % 1.0) * 49).astype(int) + 1, 49)
  t = jnp.asarray(np.arange(50) / 49, jnp.float32)[states]
  eps = jax.random.normal(eps_rng, x.shape)
  log_snr = jnp.asarray(np.asarray(m.schedule.log_snrs)[states], jnp.float32)
  z = process.diffuse(x, log_snr, eps)
  x_hat, eps_hat = m.apply(variables, z, t, method=m.denoise)
  alpha, sigma = (v[:, None] for v in process.alpha_sigma(log_snr))
  if prediction == "eps":
    expected = jnp.mean((eps - eps_hat) ** 2, -1)
  elif prediction == "x0":
    expected = jnp.mean((x - x_hat) ** 2, -1)
  else:  # v_hat = alpha eps_hat - sigma x_hat for any z (Salimans & Ho 2022)
    expected = jnp.mean((alpha * eps - sigma * x - (alpha * eps_hat - sigma * x_hat)) ** 2, -1)
  assert len(set(states.tolist())) == 8
  np.testing.assert_allclose(loss, expected, rtol=1e-6)


def test_vector_model_elbo_and_sampling():
  x = jnp.asarray(RNG.normal(size=(8, 2)), jnp.float32)
  discrete = mlp_model(schedules.make_schedule("cosine_betas", 5), None)
  continuous = mlp_model(schedules.CosineLogSNR(), 0)
  variables = discrete.init(jax.random.key(0), x, jax.random.key(1))  # fits both: fixed schedules
  for m in (discrete, continuous):
    parts = m.apply(variables, x, jax.random.key(2))
    assert all(v.shape == (8,) and bool(jnp.all(jnp.isfinite(v))) for v in parts.values())
    np.testing.assert_allclose(parts["elbo"], parts["reconstruction"] - parts["prior"] - parts["diffusion"],
                               rtol=1e-6)
  # K = T: the full sum of the four transitions' KLs, each with the noise key the function folds in.
  full = likelihood.elbo_over_steps(discrete, variables, x, jax.random.key(2))
  _, step_rng = jax.random.split(jax.random.fold_in(jax.random.key(2), 1))
  manual = sum(discrete.apply(variables, x, jax.random.fold_in(step_rng, i), step=jnp.full((8,), i + 1),
                              method=discrete.diffusion_term) for i in range(4))
  np.testing.assert_allclose(full["diffusion"], manual, rtol=1e-5)
  # Its endpoint terms are `elbo`'s own draws from the same key (no diffusion term computed for them).
  for name in ("prior", "reconstruction"):
    np.testing.assert_array_equal(full[name], discrete.apply(variables, x, jax.random.key(2))[name])
  # Sampling: float32 vectors, one x_hat per step.
  samples, trajectory = discrete.apply(variables, jax.random.key(3), 5, num_steps=2, return_trajectory=True,
                                       method=discrete.sample)
  assert samples.shape == (5, 2) and samples.dtype == jnp.float32 and trajectory.shape == (2, 5, 2)
  assert bool(jnp.all(jnp.isfinite(samples)))
  mask = jnp.zeros_like(x).at[:, 0].set(1)
  edited = discrete.apply(variables, jax.random.key(4), x, 0.5, mask=mask, method=discrete.edit)
  np.testing.assert_array_equal(edited[:, 0], x[:, 0])
  assert bool(jnp.all(edited[:, 1] != x[:, 1]))
  with pytest.raises(ValueError, match="num_steps is required"):
    continuous.apply(variables, jax.random.key(3), 5, method=continuous.sample)
  with pytest.raises(ValueError, match="float vectors"):
    continuous.apply(variables, x.astype(jnp.int32), jax.random.key(2))
  with pytest.raises(ValueError, match=r"shape \('batch', 2\)"):
    continuous.apply(variables, x[:, None], jax.random.key(2))
  with pytest.raises(ValueError, match="num_steps must be an int >= 1"):
    continuous.apply(variables, jax.random.key(3), 5, num_steps=0, method=continuous.sample)


# -- training -----------------------------------------------------------------------------------------


def test_training_the_simple_loss_improves_the_elbo_up_to_the_entropy():
  """200 Adam steps of L_simple on N(mean, cov): the ELBO rises from -16 nats to within 0.15 nats of
  E log q(x) = -0.62 nats (measured), which it cannot exceed beyond its sampling error."""
  mean = np.array([0.4, -0.2])
  cov = np.array([[0.09, 0.05], [0.05, 0.16]])
  data = lambda n, seed: jnp.asarray(np.random.default_rng(seed).multivariate_normal(mean, cov, n), jnp.float32)
  m = GaussianDiffusion(event_shape=(2,), denoiser=TimeConditionedMLP(hidden_sizes=(32, 32), embedding_dim=16),
                        schedule=schedules.LinearLogSNR(6.0, -8.0), num_timesteps=0)
  test_x = data(512, 1)
  variables = m.init(jax.random.key(0), test_x[:2], jax.random.key(1))
  evaluate = jax.jit(lambda v: likelihood.elbo_over_steps(m, v, test_x, jax.random.key(2), num_step_samples=16)["elbo"])
  before = np.asarray(evaluate(variables))
  optimizer = optax.adam(3e-3)
  train_x = data(100_000, 3)

  @jax.jit
  def step(variables, opt_state, i):
    batch = jax.lax.dynamic_slice_in_dim(train_x, (i * 256) % (100_000 - 256), 256)
    loss_fn = lambda v: jnp.mean(m.apply(v, batch, jax.random.fold_in(jax.random.key(4), i), method=m.simple_loss))
    loss, grads = jax.value_and_grad(loss_fn)(variables)
    updates, opt_state = optimizer.update(grads, opt_state)
    return optax.apply_updates(variables, updates), opt_state, loss

  opt_state = optimizer.init(variables)
  for i in range(200):
    variables, opt_state, _ = step(variables, opt_state, i)
  after = np.asarray(evaluate(variables))
  entropy_bound = -0.5 * np.linalg.slogdet(2 * np.pi * np.e * cov)[1]  # E log q(x)
  se = after.std() / np.sqrt(len(after))
  assert after.mean() > before.mean() + 10.0, (before.mean(), after.mean())
  assert after.mean() < entropy_bound + 4 * se, (after.mean(), entropy_bound, se)
  assert after.mean() > entropy_bound - 0.5, (after.mean(), entropy_bound)


@pytest.mark.parametrize("strata", ["geometric", "uniform"])
@pytest.mark.parametrize("num_transitions,k", [(999, 50), (100, 10), (9, 3), (4, 4), (7, 1)])
def test_transition_strata_cover_every_transition_once(strata, num_transitions, k):
  starts, sizes = likelihood.transition_strata(num_transitions, k, strata)
  assert len(starts) == k and np.all(sizes >= 1) and starts[0] == 1
  np.testing.assert_array_equal(starts[1:], starts[:-1] + sizes[:-1])  # contiguous
  assert starts[-1] + sizes[-1] == num_transitions + 1
  if strata == "geometric" and 1 < k < num_transitions:
    assert sizes[0] == 1 and sizes[-1] == sizes.max()


def test_unknown_strata_are_refused():
  with pytest.raises(ValueError, match="strata must be one of"):
    likelihood.transition_strata(10, 2, "log")
