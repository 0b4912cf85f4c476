"""EDM (Karras et al. 2022) against closed forms: Gaussian data has a linear optimal denoiser.

For x ~ N(mu, s_x^2 I) and y = x + sigma n, D*(y; sigma) = mu + s_x^2 / (s_x^2 + sigma^2) (y - mu); for
mu = 0 and s_x = sigma_d it is c_skip y, so F* = 0 and the effective target (x - c_skip y) / c_out has
unit variance (App. B.6), and lambda(sigma) E||D* - x||^2 / D = lambda sigma^2 sigma_d^2 / (sigma^2 +
sigma_d^2) = 1 at every sigma. A network hard-wired to F* for s_x != sigma_d (so F* != 0, reading sigma
back from c_noise and y from c_in y) makes an "edm" GaussianDiffusion whose samplers draw N(mu, s_x^2 I)
and whose probability-flow likelihood is the exact marginal.
Deliberate mistakes tried (each then failed the tests named): c_out without sigma_d (sigma / sqrt(sigma^2 +
sigma_d^2)): the unit-variance target measured 4.0 = 1 / sigma_d^2 and the closed-form loss 0.25 instead of 1
(test_optimal..., test_loss...); c_noise = ln(sigma) (no / 4): the hard-wired F* read sigma^4 and the
samplers' variances came out wrong (test_samplers...); P_std used as a variance: log sigma's std 1.44.
"""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import ddpm_digits, edm_digits, edm_mnist
from gen_jax.data.spec import DataSpec
from gen_jax.drivers import loop
from gen_jax.models.diffusion import edm, process, schedules
from gen_jax.models.diffusion.diffusion import GaussianDiffusion
from gen_jax.models.diffusion.task import diffusion_task
from tests.test_diffusion_task import read_metrics, tiny

SIGMA_D = edm.SIGMA_DATA
SIGMAS = np.array([0.002, 0.05, 0.5, 2.0, 80.0])
SCHEDULE = schedules.EDMLogSNR(log_snr_max=-2 * math.log(0.002), log_snr_min=-2 * math.log(80.0))
MEAN, STD = np.array([0.3, -0.2]), 0.8  # the sampler test's data N(MEAN, STD^2 I), STD != sigma_d


def test_optimal_denoiser_of_sigma_data_gaussian_has_a_unit_variance_target():
  """F* = 0 (D* = c_skip y) and the target (x - c_skip y) / c_out over 200000 draws per sigma has
  variance 1 within 4 standard errors (sqrt(2 / n) = 0.0032); measured |var - 1| <= 0.006."""
  n = 200_000
  for i, sigma in enumerate(SIGMAS):
    x = SIGMA_D * jax.random.normal(jax.random.key(i), (n, 1))
    eps = jax.random.normal(jax.random.key(100 + i), (n, 1))
    log_snr = jnp.full((n,), -2 * np.log(sigma), jnp.float32)
    c_skip, c_out, c_in, c_noise = (float(c) for c in edm.preconditioning(sigma))
    assert c_skip == pytest.approx(SIGMA_D ** 2 / (sigma ** 2 + SIGMA_D ** 2), rel=1e-6)
    assert c_noise == pytest.approx(np.log(sigma) / 4, rel=1e-6)
    # D* through the "edm" prediction with F = 0 is sigma_d^2 / (sigma^2 + sigma_d^2) y:
    z = process.diffuse(x, log_snr, eps)
    x_hat, eps_hat = process.predictions(jnp.zeros_like(z), z, log_snr, "edm")
    y = np.asarray(x + sigma * eps, np.float64)
    np.testing.assert_allclose(x_hat, SIGMA_D ** 2 / (sigma ** 2 + SIGMA_D ** 2) * y, rtol=2e-4, atol=1e-6)
    np.testing.assert_allclose(eps_hat, (y - np.asarray(x_hat)) / sigma, rtol=2e-3, atol=2e-3)
    target = np.asarray(edm.prediction_target(x, eps, log_snr), np.float64)
    assert abs(target.var() - 1.0) < 4 * np.sqrt(2.0 / n), (sigma, target.var())


def _expected_loss(a: np.ndarray, sigma: np.ndarray) -> np.ndarray:
  """lambda(sigma) E(a y - x)^2 for x ~ N(0, sigma_d^2), y = x + sigma n: a^2 (sd^2 + s^2) - 2 a sd^2 + sd^2."""
  weight = (sigma ** 2 + SIGMA_D ** 2) / (sigma * SIGMA_D) ** 2
  return weight * (a ** 2 * (SIGMA_D ** 2 + sigma ** 2) - 2 * a * SIGMA_D ** 2 + SIGMA_D ** 2)


class ScaledInput(nn.Module):
  """F = gain * (c_in y): D = (c_skip + gain c_out c_in) y, the optimal denoiser at gain 0."""
  gain: float = 0.0

  @nn.compact
  def __call__(self, u, c_noise, train=False):
    return self.gain * u


def test_loss_is_one_at_the_optimal_denoiser_and_higher_for_perturbed_ones():
  """The closed form lambda sigma^2 sigma_d^2 / (sigma^2 + sigma_d^2) = 1 per dimension at every sigma for
  D*, above it for D = (c_skip + g c_out c_in) y; the module's edm_loss (ln sigma ~ N(-1.2, 1.2^2),
  8 x 20000 draws) matches the closed form's expectation over sigma (Gauss-Hermite, 80 nodes) within
  4 standard errors: measured 1.000 (D*), 1.0+ for g = +-0.3."""
  sigma = np.geomspace(0.002, 80, 50)
  c_skip = SIGMA_D ** 2 / (sigma ** 2 + SIGMA_D ** 2)
  np.testing.assert_allclose(_expected_loss(c_skip, sigma), 1.0, rtol=1e-9)
  nodes, weights = np.polynomial.hermite_e.hermegauss(80)
  quad_sigma = np.exp(edm.LOG_SIGMA_MEAN + edm.LOG_SIGMA_STD * nodes)
  total = SIGMA_D ** 2 + quad_sigma ** 2
  n = 20_000
  x = SIGMA_D * jax.random.normal(jax.random.key(0), (n, 8))
  for gain in (0.0, -0.3, 0.3):
    a = SIGMA_D ** 2 / total + gain * quad_sigma * SIGMA_D / total  # c_skip + g c_out c_in
    expected = float(np.sum(weights * _expected_loss(a, quad_sigma)) / np.sqrt(2 * np.pi))
    model = GaussianDiffusion(event_shape=(8,), denoiser=ScaledInput(gain), schedule=SCHEDULE, prediction="edm",
                              num_timesteps=0)
    losses = np.asarray(model.apply({"params": {"schedule": {}}}, x, jax.random.key(1), method=model.edm_loss))
    assert abs(losses.mean() - expected) < 4 * losses.std() / np.sqrt(n), (gain, losses.mean(), expected)
    if gain == 0.0:
      assert expected == pytest.approx(1.0, rel=1e-6)
    else:
      assert expected > 1.05, (gain, expected)


def test_log_sigma_draws_have_the_stated_mean_and_std():
  """ln sigma = -lambda / 2 over 100000 draws: mean -1.2 and std 1.2 within 4 standard errors."""
  n = 100_000
  log_sigma = -0.5 * np.asarray(edm.sample_log_snr(jax.random.key(0), n), np.float64)
  assert abs(log_sigma.mean() - edm.LOG_SIGMA_MEAN) < 4 * edm.LOG_SIGMA_STD / np.sqrt(n)
  assert abs(log_sigma.std() - edm.LOG_SIGMA_STD) < 4 * edm.LOG_SIGMA_STD / np.sqrt(2 * n)
  other = -0.5 * np.asarray(edm.sample_log_snr(jax.random.key(0), n, 0.5, 0.3), np.float64)
  assert abs(other.mean() - 0.5) < 0.01 and abs(other.std() - 0.3) < 0.01
  with pytest.raises(ValueError, match="log_sigma_std .* must be > 0"):
    edm.sample_log_snr(jax.random.key(0), 4, -1.2, 0.0)


class OptimalF(nn.Module):
  """EDM's F* for x ~ N(MEAN, STD^2 I), from F's own inputs: sigma = exp(4 c_noise), y = u / c_in."""

  @nn.compact
  def __call__(self, u, c_noise, train=False):
    sigma = jnp.exp(4.0 * c_noise)[:, None]
    c_skip, c_out, c_in, _ = edm.preconditioning(sigma)
    y = u / c_in
    mean = jnp.asarray(MEAN, jnp.float32)
    optimal = mean + STD ** 2 / (STD ** 2 + sigma ** 2) * (y - mean)
    return (optimal - c_skip * y) / c_out


def _optimal_model():
  return GaussianDiffusion(event_shape=(2,), denoiser=OptimalF(), schedule=SCHEDULE, prediction="edm",
                           num_timesteps=0)


def _exact_flow_map(z_1):
  """x_0 of the exact probability-flow ODE from z_1 for Gaussian data: in EDM's y = z / alpha,
  y(sigma) - MEAN = (y(sigma_max) - MEAN) sqrt((STD^2 + sigma^2) / (STD^2 + sigma_max^2))."""
  alpha_1 = np.sqrt(1 / (1 + np.exp(-SCHEDULE.log_snr_min)))
  sigma_0, sigma_1 = np.exp(-SCHEDULE.log_snr_max / 2), np.exp(-SCHEDULE.log_snr_min / 2)
  return MEAN + (z_1 / alpha_1 - MEAN) * np.sqrt((STD ** 2 + sigma_0 ** 2) / (STD ** 2 + sigma_1 ** 2))


@pytest.mark.parametrize("sampler", ["edm_heun", "dpm_solver_2m"])
def test_samplers_draw_the_gaussian_with_the_optimal_preconditioned_network(sampler):
  """`sample` on EDM's rho = 7 grid, 20000 draws. Against the exact flow map of the same z_1, mean
  |x - exact| (decoder noise, std 0.002, included), measured:
      steps           20      40      80
      edm_heun      0.0220  0.0055  0.0020
      dpm_solver_2m 0.0248  0.0058  0.0021
  and at 80 steps the draws have N(MEAN, 0.64 I)'s mean and variance within 4 standard errors (key 0:
  within 1.5)."""
  m = _optimal_model()
  variables = {"params": {"schedule": {}}}
  n = 20_000
  run = jax.jit(lambda k, steps: m.apply(variables, k, n, steps, sampler=sampler, method=m.sample), static_argnums=1)
  key = jax.random.key(0)
  z_1 = np.asarray(jax.random.normal(jax.random.split(key, 3)[0], (n, 2)), np.float64)
  errors = [np.abs(np.asarray(run(key, steps), np.float64) - _exact_flow_map(z_1)).mean() for steps in (40, 80)]
  assert errors[1] < 0.003 and errors[0] > 2 * errors[1], errors
  samples = np.asarray(run(key, 80), np.float64)
  assert np.all(np.abs(samples.mean(0) - MEAN) < 4 * STD / np.sqrt(n)), samples.mean(0)
  assert np.all(np.abs(samples.var(0) - STD ** 2) < 4 * STD ** 2 * np.sqrt(2 / n)), samples.var(0)


def test_probability_flow_likelihood_of_the_preconditioned_model_is_the_exact_marginal():
  """log_prob (exact divergence, dopri5) at 16 points equals log N(x; alpha_0 MEAN, (alpha_0^2 STD^2 +
  sigma_0^2) I) within 1e-2 nats (measured: at most 0.0083, dopri5 at rtol 1e-5 in float32 on the steep
  rho = 7 schedule near sigma_min; the prior's mismatch at sigma_max = 80 is ~1e-4)."""
  m = _optimal_model()
  x = np.asarray(MEAN + STD * np.random.default_rng(0).normal(size=(16, 2)), np.float32)
  log_p = np.asarray(m.apply({"params": {"schedule": {}}}, jnp.asarray(x), jax.random.key(0), "exact",
                             method=m.log_prob))
  lam0 = SCHEDULE.log_snr_max
  alpha0_sq, sigma0_sq = 1 / (1 + np.exp(-lam0)), 1 / (1 + np.exp(lam0))
  var = alpha0_sq * STD ** 2 + sigma0_sq
  expected = -0.5 * np.sum((x - np.sqrt(alpha0_sq) * MEAN) ** 2 / var + np.log(2 * np.pi * var), -1)
  np.testing.assert_allclose(log_p, expected, atol=1e-2)


def test_configs_and_refusals():
  for module in (edm_digits, edm_mnist):
    full, cpu = module.get_config(), module.get_config("cpu")
    assert cpu.model.channels < full.model.channels and cpu.train.num_steps < full.train.num_steps
    assert full.model.prediction == "edm" and full.diffusion.objective == "edm"
    assert full.diffusion.sampler == "edm_heun"
    assert module.get_config("cpu,conditional").model.num_classes == 10
  ddpm = ddpm_digits.get_config("cpu")
  with pytest.raises(ValueError, match="unknown config variant.*'conditional'"):
    edm_digits.get_config("cpu,conditionl")
  spec = DataSpec(name="vectors", event_shape=(2,), num_levels=None, kind="vector")
  discrete_eps = GaussianDiffusion(event_shape=(2,), denoiser=OptimalF(),
                                   schedule=schedules.make_schedule("linear_betas", 10), prediction="eps")
  with pytest.raises(ValueError, match="objective 'edm' .* needs model.prediction 'edm' or a continuous"):
    diffusion_task(discrete_eps, spec, None, objective="edm")
  with pytest.raises(ValueError, match="sigma_data must be > 0"):
    GaussianDiffusion(event_shape=(2,), denoiser=OptimalF(), schedule=SCHEDULE, prediction="edm",
                      num_timesteps=0, sigma_data=0.0)
  assert ddpm.model.prediction == "eps"


def test_a_tiny_edm_digits_run_trains_and_samples(tmp_path, quick_compile):
  config = tiny(edm_digits.get_config("cpu"), num_steps=3)
  config.model.update(channels=8, num_groups=4, channel_multipliers=(1,), attention_resolutions=())
  config.diffusion.sample_steps = 3
  config.eval.num_samples = 8
  loop.train_and_evaluate(config, str(tmp_path))
  metrics = read_metrics(str(tmp_path))
  losses = [m["train/edm_loss"] for m in metrics if "train/edm_loss" in m]
  assert losses and all(np.isfinite(losses)), metrics
  last = [m for m in metrics if "eval/bpd" in m][-1]
  assert np.isfinite(last["eval/bpd"]) and last["eval/bpd"] > 0
  assert (tmp_path / "samples" / "step_3.png").exists()
