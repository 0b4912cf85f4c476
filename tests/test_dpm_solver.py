"""DPM-Solver++(2M) (Lu et al. 2022, Algorithm 2) against a closed form and against diffusers.

- Gaussian data (`test_diffusion_gaussian`'s N(mu, Sigma), its optimal denoiser and schedule): the
  probability-flow ODE maps z_1 to z_0 in closed form (each eigen-coordinate keeps its z-score), and
  DPM-Solver++(2M) converges to that map at order 2 where DDIM (eta = 0) converges at order 1;
- diffusers' `DPMSolverMultistepScheduler` (algorithm_type "dpmsolver++", solver_order 2) on DDPM's
  linear betas, the same timesteps, model and starting noise, follows the same trajectory;
- the model's `sample` and the task's `diffusion.sampler` option reach it, and wrong names are refused.
The runs are float32, as the library runs; tolerances are measured (see each test).
"""
import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax
import pytest

from gen_jax import models
from gen_jax.data.spec import DataSpec
from gen_jax.models.diffusion import process, samplers, schedules
from gen_jax.models.diffusion.task import diffusion_task
from experiments.configs import diffusion_toy2d
from tests.test_diffusion_gaussian import (COV, D, EIGENVALUES, EIGENVECTORS, MEAN, SCHEDULE, alpha_sigma_np, lam,
                                           model)


def exact_flow_map(z_1):
  """z_0 of the probability-flow ODE from z_1 at t = 1 (float64): in Sigma's eigenbasis each coordinate
  keeps its z-score, z_0 - alpha_0 mu = V diag(s_0 / s_1) V^T (z_1 - alpha_1 mu), s_t^2 = alpha_t^2 w + sigma_t^2
  (the map `test_ddim_latent_is_the_probability_flow_map_and_decoding_inverts_it` checks, read backwards)."""
  (a0, a1), (s0, s1) = alpha_sigma_np(np.array([lam(0.0), lam(1.0)]))
  scale = np.sqrt(a0 ** 2 * EIGENVALUES + s0 ** 2) / np.sqrt(a1 ** 2 * EIGENVALUES + s1 ** 2)
  return a0 * MEAN + ((np.asarray(z_1, np.float64) - a1 * MEAN) @ EIGENVECTORS * scale) @ EIGENVECTORS.T


def observed_order(steps, errors):
  """The slope of -log(error) against log(steps), least squares."""
  return -np.polyfit(np.log(steps), np.log(errors), 1)[0]


def test_first_order_step_is_ddim_and_the_orders_follow_lower_order_final():
  rng = np.random.default_rng(1)
  z_t, x_hat, x_prev = (jnp.asarray(rng.normal(size=(5, D)), jnp.float32) for _ in range(3))
  log_snr_s, log_snr_t, log_snr_prev = jnp.float32(1.3), jnp.float32(0.4), jnp.float32(-0.5)
  alpha_t, sigma_t = process.alpha_sigma(log_snr_t)
  eps_hat = (z_t - alpha_t * x_hat) / sigma_t
  ddim = samplers.generalized_step(z_t, x_hat, eps_hat, log_snr_s, log_snr_t, 0.0, jnp.zeros_like(z_t))
  first = samplers.dpm_solver_2m_step(z_t, x_hat, x_prev, log_snr_s, log_snr_t, log_snr_prev, False)
  np.testing.assert_allclose(first, ddim, atol=1e-6)
  # Second order: the step with D = (1 + 1/(2r)) x_hat - 1/(2r) x_prev, r = h_prev / h in half-log-SNR.
  h, h_prev = (1.3 - 0.4) / 2, (0.4 + 0.5) / 2
  d = (1 + h / (2 * h_prev)) * x_hat - h / (2 * h_prev) * x_prev
  alpha_s, sigma_s = process.alpha_sigma(log_snr_s)
  second = samplers.dpm_solver_2m_step(z_t, x_hat, x_prev, log_snr_s, log_snr_t, log_snr_prev, True)
  np.testing.assert_allclose(second, sigma_s / sigma_t * z_t + alpha_s * (1 - np.exp(-h)) * d, atol=1e-6)
  assert samplers.dpm_solver_2m_orders(1).tolist() == [False]
  assert samplers.dpm_solver_2m_orders(4).tolist() == [False, True, True, False]
  assert samplers.dpm_solver_2m_orders(4, lower_order_final=False).tolist() == [False, True, True, True]
  assert samplers.dpm_solver_2m_orders(15).tolist() == [False] + [True] * 14  # diffusers: only below 15


def test_converges_to_the_probability_flow_map_at_second_order_where_ddim_is_first_order():
  """Errors max |z_0 - exact| over 256 starts, equal steps of the linear log-SNR 10 -> -12 (half-log-SNR
  steps h = 11 / N), float32 (float64 changes them below 1e-6), measured:
      N           10       20       40       80       160
      DPM-2M   0.0439   0.0285   0.0079   0.0020   0.00050    order 1.95 over N = 20..160
      DDIM     0.410    0.220    0.114    0.058    0.029      order 0.98
  (DPM-2M at N = 10 with lower_order_final=False, a second-order final step: 0.0633.)
  At N = 10 (h = 1.1) DPM-Solver is not yet in its asymptotic range on this 22-unit log-SNR span
  (x_hat's sigmoid in lambda is about one unit wide): the slope over N = 10..80 is 1.68, hence the
  grid from 20."""
  m = model(prediction="eps")
  variables = m.init(jax.random.key(0), jnp.zeros((1, D)), jax.random.key(1))
  denoise = lambda z, t: m.apply(variables, z, t, method=m.denoise)
  log_snr = lambda t: SCHEDULE.log_snr({}, t)
  z_1 = np.random.default_rng(0).normal(size=(256, D)).astype(np.float32)
  expected = exact_flow_map(z_1)
  steps = np.array([20, 40, 80, 160])
  errors = {"dpm": [], "ddim": []}
  for n in steps:
    times = samplers.sampling_grid(int(n))
    dpm = samplers.run_dpm_solver(denoise, log_snr, jnp.asarray(z_1), times)
    ddim = samplers.run_sampler(denoise, log_snr, jnp.asarray(z_1), times, jax.random.key(0), eta=0.0)
    errors["dpm"].append(np.abs(np.asarray(dpm, np.float64) - expected).max())
    errors["ddim"].append(np.abs(np.asarray(ddim, np.float64) - expected).max())
  dpm_order, ddim_order = observed_order(steps, errors["dpm"]), observed_order(steps, errors["ddim"])
  assert 1.7 < dpm_order < 2.3 and 0.8 < ddim_order < 1.2, (dpm_order, ddim_order, errors)
  assert errors["dpm"][-1] < 1e-3 and errors["dpm"][-1] < errors["ddim"][-1] / 30, errors


def test_samples_through_the_model_draw_the_data_distribution_in_few_steps():
  """`sample(sampler="dpm_solver_2m")`: 50 steps (20000 draws) give the Gaussian's mean and covariance within
  the sampling error (max covariance error 0.0012, measured), where DDIM's 50 steps leave the variances
  ~11% low (0.037)."""
  m = model(prediction="eps")
  variables = m.init(jax.random.key(0), jnp.zeros((1, D)), jax.random.key(1))
  n = 20_000
  se_cov = np.sqrt((COV ** 2 + np.outer(np.diag(COV), np.diag(COV))) / n)
  covariance_errors = {}
  for sampler, eta in (("dpm_solver_2m", None), ("ddim", 0.0)):
    samples = np.asarray(jax.jit(lambda k: m.apply(variables, k, n, 50, eta, sampler=sampler, method=m.sample))(
        jax.random.key(5)), np.float64)
    assert np.all(np.abs(samples.mean(0) - MEAN) < 4 * np.sqrt(np.diag(COV) / n)), sampler
    covariance_errors[sampler] = np.abs(np.cov(samples.T) - COV) / se_cov
  assert covariance_errors["dpm_solver_2m"].max() < 4, covariance_errors
  assert covariance_errors["ddim"].max() > 8, covariance_errors  # the check tells the two apart


# -- parity with diffusers --------------------------------------------------------------------------

T = 1000
DDPM = schedules.make_schedule("linear_betas", T)
_LOG_SNRS = jnp.asarray(DDPM.log_snrs, jnp.float32)


@jax.jit
def gaussian_eps(z, index):
  """The model both loops call: E[eps | z_t] for the Gaussian at DDPM state `index` [B] (0..T-1)."""
  alpha, sigma = process.alpha_sigma(_LOG_SNRS[index])
  marginal_cov = alpha[:, None, None] ** 2 * jnp.asarray(COV, jnp.float32) + sigma[:, None, None] ** 2 * jnp.eye(D)
  residual = z - alpha[:, None] * jnp.asarray(MEAN, jnp.float32)
  return sigma[:, None] * jnp.linalg.solve(marginal_cov, residual[..., None])[..., 0]


def our_denoise(z, t):
  index = jnp.round(t * (T - 1)).astype(jnp.int32)  # t_i = i / (T - 1): diffusers' timestep i
  return process.predictions(gaussian_eps(z, index), z, DDPM.log_snr({}, t), "eps")


def diffusers_trajectory(z_1, timesteps, lower_order_final, alphas_cumprod=None):
  """diffusers' z after each step, from z_1 at timesteps[0], ending at timestep 0's sigma."""
  torch = pytest.importorskip("torch")
  diffusers = pytest.importorskip("diffusers")
  scheduler = diffusers.DPMSolverMultistepScheduler(
      num_train_timesteps=T, beta_start=1e-4, beta_end=0.02, beta_schedule="linear",
      algorithm_type="dpmsolver++", solver_order=2, solver_type="midpoint", prediction_type="epsilon",
      final_sigmas_type="sigma_min", lower_order_final=lower_order_final)
  if alphas_cumprod is not None:  # set_timesteps derives its sigmas from this table
    scheduler.alphas_cumprod = torch.from_numpy(alphas_cumprod)
  scheduler.set_timesteps(timesteps=[int(i) for i in timesteps])
  sample, trajectory = torch.from_numpy(np.array(z_1)), []
  for timestep in scheduler.timesteps:
    eps = gaussian_eps(jnp.asarray(sample.numpy()), jnp.full((len(z_1),), int(timestep)))
    sample = scheduler.step(torch.from_numpy(np.array(eps)), timestep, sample).prev_sample
    trajectory.append(sample.numpy().copy())
  return np.stack(trajectory)


@jax.jit
def _our_step(z, x_prev, t, s, t_prev, second_order):
  x_hat, _ = our_denoise(z, jnp.full((z.shape[0],), t))
  log_snr = lambda u: DDPM.log_snr({}, u)
  return samplers.dpm_solver_2m_step(z, x_hat, x_prev, log_snr(s), log_snr(t), log_snr(t_prev), second_order), x_hat


def our_trajectory(z_1, times, lower_order_final):
  """z after each step, by a Python loop over `dpm_solver_2m_step`, and `run_dpm_solver`'s final z."""
  z, x_prev, trajectory = jnp.asarray(z_1), jnp.zeros_like(z_1), []
  orders = samplers.dpm_solver_2m_orders(len(times) - 1, lower_order_final)
  for i, second_order in enumerate(orders):
    z, x_prev = _our_step(z, x_prev, times[i], times[i + 1], times[max(i - 1, 0)], second_order)
    trajectory.append(np.asarray(z))
  scanned = samplers.run_dpm_solver(our_denoise, lambda t: DDPM.log_snr({}, t), jnp.asarray(z_1), times,
                                    lower_order_final)
  return np.stack(trajectory), np.asarray(scanned)


def test_our_alphas_cumprod_are_diffusers_to_float32_precision():
  """The same betas give the same abar (to 4e-7), but diffusers' float32 cumprod leaves 1 - abar at
  t = 0 (1e-4) 1.7e-4 off: its sigma there differs by 8e-5, which alone moves z_0 by ~1e-5."""
  diffusers = pytest.importorskip("diffusers")
  ours = 1 / (1 + np.exp(-np.asarray(DDPM.log_snrs, np.float64)))
  theirs = diffusers.DPMSolverMultistepScheduler(num_train_timesteps=T, beta_schedule="linear").alphas_cumprod
  theirs = np.asarray(theirs.numpy(), np.float64)
  np.testing.assert_allclose(theirs, ours, rtol=1e-6)
  np.testing.assert_allclose(1 - theirs, 1 - ours, rtol=3e-4)
  assert np.abs((1 - theirs) / (1 - ours) - 1).max() > 1e-5  # float32's, not a different schedule


@pytest.mark.parametrize("num_steps,lower_order_final", [(10, True), (10, False), (20, True), (999, True)])
def test_trajectories_equal_diffusers_dpm_solver_multistep(num_steps, lower_order_final):
  """diffusers' settings: timesteps = our grid's state indices (t_i = i / (T - 1) is timestep i, so
  `set_timesteps(timesteps=...)` and no timestep_spacing; use_lu_lambdas / karras off, which custom
  timesteps need), final_sigmas_type="sigma_min" (its last step ends at timestep 0's sigma, our t = 0; the
  default "zero" would end at the clean x0, which our sampler leaves to the decoder, and would force a
  first-order final step), lower_order_final with its own meaning (first-order final step below 15 steps),
  solver_type="midpoint" (Algorithm 2's D). diffusers is fed our float64 alphas_cumprod, so both run the
  same schedule in float32: every step's z agrees to 1e-5 times max(1, |z|) (measured: 1e-6 absolute for
  10 and 20 steps; along the 999-step chain float32's rounding walks to 1.2e-5 at |z| = 2.2, 6.2e-6
  relative). With its own float32 table (see above) the final z differs by up to 1.3e-5 (10 steps,
  second-order final step), 1e-6 to 8e-6 otherwise."""
  times = samplers.sampling_grid(num_steps, DDPM.grid())
  indices = np.round(times * (T - 1)).astype(np.int64)
  assert indices[-1] == 0 and len(np.unique(indices)) == num_steps + 1
  z_1 = np.random.default_rng(0).normal(size=(16, D)).astype(np.float32)
  abar = 1 / (1 + np.exp(-np.asarray(DDPM.log_snrs, np.float64)))
  theirs = diffusers_trajectory(z_1, indices[:-1], lower_order_final, alphas_cumprod=abar)
  ours, scanned = our_trajectory(z_1, times, lower_order_final)
  error = np.abs(ours - theirs) / np.maximum(1.0, np.abs(theirs))
  # 999 float32 steps: the rounding walk differs between machines and installs (6.2e-6 when first
  # measured, 1.15e-5 on 2026-12-06 at step 812 of the same chain); the short chains stay near 1e-6.
  tolerance = 1e-5 if num_steps <= 20 else 3e-5
  assert error.max() < tolerance, (error.max(), np.unravel_index(error.argmax(), error.shape))
  np.testing.assert_allclose(scanned, ours[-1], atol=2e-6, rtol=0)  # the scan is the same loop
  if num_steps == 10:  # diffusers' own float32 table: 1.3e-5 with a second-order final step
    own = diffusers_trajectory(z_1, indices[:-1], lower_order_final)
    np.testing.assert_allclose(ours[-1], own[-1], atol=5e-5, rtol=0)


# -- the sampler choice -----------------------------------------------------------------------------

def test_unknown_sampler_and_ddim_eta_are_refused_naming_the_choices():
  m = model(prediction="eps")
  variables = m.init(jax.random.key(0), jnp.zeros((1, D)), jax.random.key(1))
  with pytest.raises(ValueError, match=r"sampler must be one of \('ddim', 'dpm_solver_2m', 'edm_heun'\), got 'dpm'"):
    m.apply(variables, jax.random.key(0), 2, 4, sampler="dpm", method=m.sample)
  with pytest.raises(ValueError, match="eta=1.0 is DDIM's.*None or 0"):
    m.apply(variables, jax.random.key(0), 2, 4, 1.0, sampler="dpm_solver_2m", method=m.sample)
  spec = DataSpec(name="gaussian", event_shape=(D,), num_levels=None, kind="vector")
  with pytest.raises(ValueError, match=r"diffusion.sampler must be one of \('ddim', 'dpm_solver_2m', 'edm_heun'\)"):
    diffusion_task(m, spec, optax.adam(1e-3), sampler="heun")
  with pytest.raises(ValueError, match="diffusion.sample_eta=1.0.*deterministic"):
    diffusion_task(m, spec, optax.adam(1e-3), sampler="dpm_solver_2m", sample_eta=1.0)
  with pytest.raises(ValueError, match="times must be a vector of >= 2"):
    samplers.run_dpm_solver(lambda z, t: (z, z), lambda t: t, jnp.zeros((1, D)), np.zeros(1, np.float32))


def test_config_diffusion_sampler_reaches_the_task_sample():
  config = diffusion_toy2d.get_config("two_moons,cpu")
  config.model.hidden_sizes = (16,)
  config.diffusion = ml_collections.ConfigDict({"objective": "simple", "sample_steps": 8, "sample_eta": 0.0,
                                                "sampler": "dpm_solver_2m"})
  spec = DataSpec(name="toy2d/two_moons", event_shape=(2,), num_levels=None, kind="vector")
  task = models.build_task(config, spec)
  params, _ = task.init(jax.random.key(0), jnp.zeros((4, 2)))
  samples = task.sample(params, jax.random.key(1), 5)
  m = task.model
  expected = m.apply(params["model"], jax.random.key(1), 5, 8, sampler="dpm_solver_2m", method=m.sample)
  ddim = m.apply(params["model"], jax.random.key(1), 5, 8, 0.0, method=m.sample)
  assert samples.shape == (5, 2) and np.all(np.isfinite(samples))
  np.testing.assert_array_equal(samples, expected)
  assert np.abs(np.asarray(samples) - np.asarray(ddim)).max() > 1e-4  # not DDIM's eta = 0
  config.diffusion.sampler = "euler"
  with pytest.raises(ValueError, match="diffusion.sampler must be one of"):
    models.build_task(config, spec)
