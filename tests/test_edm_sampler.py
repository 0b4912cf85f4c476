"""EDM's Heun sampler (Karras et al. 2022, Algorithm 2) against a closed form and against diffusers.

- Gaussian data (`test_diffusion_gaussian`'s N(mu, Sigma), its optimal denoiser and schedule): without
  churn the sampler converges to the exact probability-flow map (`test_dpm_solver.exact_flow_map`) at
  order 2, and one (Euler) step is DDIM's eta = 0 step; with churn its draws have the marginal q_0's
  mean and covariance;
- diffusers' `HeunDiscreteScheduler` on the same sigma grid, fed the same denoiser, gives the same x_hat
  at every step and the same final z;
- the model's `sample(sampler="edm_heun")` reaches it, and wrong names and arguments are refused.
The runs are float32, as the library runs; tolerances are measured (see each test).
"""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.models.diffusion import edm_sampler, process, samplers
from tests.test_diffusion_gaussian import COV, D, MEAN, SCHEDULE, alpha_sigma_np, lam, model
from tests.test_dpm_solver import exact_flow_map, observed_order


def _denoise_and_log_snr(prediction="eps"):
  m = model(prediction=prediction)
  variables = m.init(jax.random.key(0), jnp.zeros((1, D)), jax.random.key(1))
  return (lambda z, t: m.apply(variables, z, t, method=m.denoise)), (lambda t: SCHEDULE.log_snr({}, t))


def test_converges_to_the_probability_flow_map_at_second_order():
  """Errors max |z_0 - exact| over 256 starts, equal steps of the linear log-SNR 10 -> -12, churn 0,
  float32, measured:
      N        10      20      40       80       160
      Heun   0.351   0.0747  0.0173   0.00418  0.00103    order 2.06 over N = 20..160
  (DPM-Solver++(2M) on the same grid: 0.0285 ... 0.00050 at one evaluation a step, where Heun takes
  2N - 1.)"""
  denoise, log_snr = _denoise_and_log_snr()
  z_1 = np.random.default_rng(0).normal(size=(256, D)).astype(np.float32)
  expected = exact_flow_map(z_1)
  steps = np.array([20, 40, 80, 160])
  errors = []
  for n in steps:
    z_0 = edm_sampler.run_edm_heun(denoise, log_snr, jnp.asarray(z_1), samplers.sampling_grid(int(n)),
                                   jax.random.key(0))
    errors.append(np.abs(np.asarray(z_0, np.float64) - expected).max())
  order = observed_order(steps, errors)
  assert 1.7 < order < 2.3, (order, errors)
  assert errors[-1] < 2e-3, errors


def test_one_euler_step_is_ddim_and_without_churn_the_key_is_unused():
  """A single step is Euler's, which in EDM's x = z / alpha, sigma = exp(-lambda / 2) is DDIM's eta = 0
  step exactly (x_s = x_hat + (sigma_s / sigma_t) (x_t - x_hat))."""
  denoise, log_snr = _denoise_and_log_snr()
  z_t = jnp.asarray(np.random.default_rng(2).normal(size=(64, D)), jnp.float32)
  times = np.array([0.6, 0.3], np.float32)
  euler = edm_sampler.run_edm_heun(denoise, log_snr, z_t, times, jax.random.key(0))
  ddim = samplers.run_sampler(denoise, log_snr, z_t, times, jax.random.key(0), eta=0.0)
  np.testing.assert_allclose(euler, ddim, atol=2e-6, rtol=0)
  times = samplers.sampling_grid(8)
  first = edm_sampler.run_edm_heun(denoise, log_snr, z_t, times, jax.random.key(0))
  second = edm_sampler.run_edm_heun(denoise, log_snr, z_t, times, jax.random.key(1))
  np.testing.assert_array_equal(first, second)


def test_churned_samples_draw_the_marginal_and_depend_on_the_key():
  """S_churn = 40 over N = 160 steps (gamma = 0.25 at every sigma; capped at sigma(t = 1) on the first
  step, which so adds no noise): 20000 draws from z_1 ~ N(0, I) have q_0's mean and covariance
  (alpha_0 mu, alpha_0^2 Sigma + sigma_0^2 I) within 4 standard errors (measured over 4 keys: at most
  3.4). S_churn = 10 over N = 40 (the same gamma, log-SNR steps of 0.55) leaves the variances 4-6%
  high, 4 to 6.5 standard errors over 4 keys: churned Heun's discretization bias at that step size
  (deterministic Heun at N = 40: up to 4.5), which shrinks with N (N = 80, S_churn = 20: 3.7)."""
  denoise, log_snr = _denoise_and_log_snr()
  n = 20_000
  times = samplers.sampling_grid(160)
  z_1 = jax.random.normal(jax.random.key(3), (n, D))
  run = jax.jit(lambda key: edm_sampler.run_edm_heun(denoise, log_snr, z_1, times, key, churn=40.0))
  z_0 = np.asarray(run(jax.random.key(4)), np.float64)
  (alpha_0,), (sigma_0,) = alpha_sigma_np(np.array([lam(0.0)]))
  mean, cov = alpha_0 * MEAN, alpha_0 ** 2 * COV + sigma_0 ** 2 * np.eye(D)
  se_cov = np.sqrt((cov ** 2 + np.outer(np.diag(cov), np.diag(cov))) / n)
  assert np.all(np.abs(z_0.mean(0) - mean) < 4 * np.sqrt(np.diag(cov) / n)), z_0.mean(0) - mean
  assert np.abs((np.cov(z_0.T) - cov) / se_cov).max() < 4, (np.cov(z_0.T) - cov) / se_cov
  other = np.asarray(run(jax.random.key(5)), np.float64)
  assert np.abs(other - z_0).max() > 1e-2  # churn draws noise from the key


def test_samples_through_the_model_draw_the_data_distribution():
  """`sample(sampler="edm_heun")` (churn 0) with 80 steps: 20000 draws have the Gaussian's mean and
  covariance within 4 standard errors."""
  m = model(prediction="eps")
  variables = m.init(jax.random.key(0), jnp.zeros((1, D)), jax.random.key(1))
  n = 20_000
  samples = np.asarray(jax.jit(lambda k: m.apply(variables, k, n, 80, sampler="edm_heun", method=m.sample))(
      jax.random.key(5)), np.float64)
  se_cov = np.sqrt((COV ** 2 + np.outer(np.diag(COV), np.diag(COV))) / n)
  assert np.all(np.abs(samples.mean(0) - MEAN) < 4 * np.sqrt(np.diag(COV) / n))
  assert np.abs((np.cov(samples.T) - COV) / se_cov).max() < 4, (np.cov(samples.T) - COV) / se_cov


# -- parity with diffusers --------------------------------------------------------------------------

@pytest.mark.parametrize("num_steps", [5, 20])
def test_steps_equal_diffusers_heun_discrete(num_steps):
  """diffusers 0.42's `HeunDiscreteScheduler.set_timesteps` takes `timesteps`, not sigmas: its sigmas
  are sqrt((1 - abar) / abar) of `alphas_cumprod` at those timesteps. It is given a table of N + 1
  entries, abar_j = sigmoid(lambda(t_{N - j})), and timesteps N, ..., 0, so its sigmas are exactly our
  exp(-lambda(t_i) / 2); prediction_type "sample" takes our x_hat as the model output. It then appends
  sigma = 0 and ends with an Euler step there, one step past our grid (we stop at t = 0's sigma and
  leave z_0 to the decoder): our last, Euler, step is its first-order predictor at sigma_N, the output
  of its call 2N - 1. Compared: x_hat at every step's first evaluation and the final z = alpha_N x_N.
  The x0-predicting denoiser is used: the eps form's x_hat = (z - sigma eps) / alpha at alpha(1) = e^-6
  lifts float32 rounding (of the same z computed in a different fusion) to 5e-5 (1.2e-5 on the final
  z). Measured with x0: 7e-6 (x_hat) and 7e-6 (z) for 5 steps, 4e-7 and 2e-7 for 20."""
  torch = pytest.importorskip("torch")
  diffusers = pytest.importorskip("diffusers")
  denoise, log_snr = _denoise_and_log_snr("x0")
  denoise = jax.jit(denoise)
  times = samplers.sampling_grid(num_steps)
  z_1 = np.random.default_rng(0).normal(size=(16, D)).astype(np.float32)
  ours, x_hats = edm_sampler.run_edm_heun(denoise, log_snr, jnp.asarray(z_1), times, jax.random.key(0),
                                          return_trajectory=True)

  log_snrs = np.asarray(log_snr(jnp.asarray(times)), np.float64)
  scheduler = diffusers.HeunDiscreteScheduler(num_train_timesteps=num_steps + 1, prediction_type="sample")
  scheduler.alphas_cumprod = torch.from_numpy(1 / (1 + np.exp(-log_snrs[::-1].copy())))
  scheduler.set_timesteps(timesteps=list(range(num_steps, -1, -1)))
  np.testing.assert_allclose(scheduler.sigmas.numpy()[:-1:2], np.exp(-log_snrs / 2), rtol=1e-6)
  alpha = lambda t: process.alpha_sigma(log_snr(jnp.float32(t)))[0]
  sample, outputs, theirs_x_hats = torch.from_numpy(np.array(jnp.asarray(z_1) / alpha(times[0]))), [], []
  for timestep in scheduler.timesteps:
    t = times[num_steps - int(timestep)]
    x_hat, _ = denoise(jnp.asarray(sample.numpy()) * alpha(t), jnp.full((len(z_1),), t))
    sample = scheduler.step(torch.from_numpy(np.array(x_hat)), timestep, sample).prev_sample
    outputs.append(sample.numpy().copy())
    theirs_x_hats.append(np.array(x_hat))
  np.testing.assert_allclose(x_hats, np.stack(theirs_x_hats[0:2 * num_steps:2]), atol=1e-5, rtol=0)
  theirs = np.asarray(alpha(times[-1])) * outputs[2 * num_steps - 2]
  np.testing.assert_allclose(ours, theirs, atol=1e-5, rtol=0)


# -- refusals ---------------------------------------------------------------------------------------

def test_unknown_sampler_eta_and_bad_arguments_are_refused():
  m = model(prediction="eps")
  variables = m.init(jax.random.key(0), jnp.zeros((1, D)), jax.random.key(1))
  with pytest.raises(ValueError, match=r"sampler must be one of \('ddim', 'dpm_solver_2m', 'edm_heun'\), "
                                       r"got 'heun'"):
    m.apply(variables, jax.random.key(0), 2, 4, sampler="heun", method=m.sample)
  with pytest.raises(ValueError, match="eta=1.0 is DDIM's.*'edm_heun' is deterministic.*None or 0"):
    m.apply(variables, jax.random.key(0), 2, 4, 1.0, sampler="edm_heun", method=m.sample)
  denoise, log_snr = _denoise_and_log_snr()
  with pytest.raises(ValueError, match="times must be a vector of >= 2"):
    edm_sampler.run_edm_heun(denoise, log_snr, jnp.zeros((1, D)), np.zeros(1, np.float32), jax.random.key(0))
  with pytest.raises(ValueError, match="churn and noise_scale must be >= 0"):
    edm_sampler.run_edm_heun(denoise, log_snr, jnp.zeros((1, D)), samplers.sampling_grid(2), jax.random.key(0),
                             churn=-1.0)
