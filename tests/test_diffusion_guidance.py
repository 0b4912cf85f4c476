"""Class conditioning and classifier-free guidance (Ho & Salimans 2022) of the diffusion family.

A 2-D Gaussian mixture whose classes are its components has closed-form noised densities,
q_t(z | k) = N(alpha mu_k, alpha^2 S_k + sigma^2 I) and q_t(z) = sum_k w_k q_t(z | k), so its analytic
eps-predictors are eps_hat = -sigma grad log q_t (per class, and for the null label the mixture's).
With them as the network, the model's guided score -eps_hat / sigma must be (1 - s) grad log q_t(z) +
s grad log q_t(z | c) (checked against autodiff of the log-densities), guided sampling at s = 1 draws
the class's component with every sampler, and s = 0 the unconditional model. The task drops labels at
the configured rate and a tiny conditional DDPM on digits trains and samples end to end.
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from experiments.configs import ddpm_digits
from gen_jax.data.spec import DataSpec
from gen_jax.drivers import loop
from gen_jax.models.diffusion import process, schedules
from gen_jax.models.diffusion.diffusion import GaussianDiffusion
from gen_jax.models.diffusion.task import diffusion_task
import gen_jax
from tests.test_diffusion_task import read_metrics, tiny

MEANS = np.array([[2.0, 0.0], [-1.0, 1.5], [-1.0, -1.5]], np.float32)
COVS = np.array([[[0.3, 0.1], [0.1, 0.2]], [[0.1, 0.0], [0.0, 0.4]], [[0.25, -0.05], [-0.05, 0.15]]], np.float32)
WEIGHTS = np.array([0.5, 0.3, 0.2], np.float32)
K = 3
SCHEDULE = schedules.LinearLogSNR(log_snr_max=10.0, log_snr_min=-12.0)


def noised_covariances(alpha, sigma):
  """[B, K, 2, 2]: alpha^2 S_k + sigma^2 I."""
  return alpha[:, None, None, None] ** 2 * COVS + sigma[:, None, None, None] ** 2 * jnp.eye(2)


class MixtureEps(nn.Module):
  """The analytic eps-predictor of the noised mixture: -sigma grad log q_t(z | label), the mixture's
  score (responsibility-weighted component scores) for the null label K."""
  num_classes: int = K

  @nn.compact
  def __call__(self, z, t, train=False, labels=None):
    alpha, sigma = process.alpha_sigma(SCHEDULE.log_snr({}, t))                          # [B]
    residual = z[:, None, :] - alpha[:, None, None] * MEANS                               # [B, K, 2]
    covs = noised_covariances(alpha, sigma)
    scores = -jnp.linalg.solve(covs, residual[..., None])[..., 0]                         # [B, K, 2]
    log_density = (-0.5 * jnp.sum(residual * -scores, -1) - 0.5 * jnp.linalg.slogdet(covs)[1]
                   + jnp.log(WEIGHTS))
    responsibilities = jax.nn.softmax(log_density, -1)                                    # [B, K]
    mixture = jnp.sum(responsibilities[..., None] * scores, 1)
    own = jnp.take_along_axis(scores, jnp.minimum(labels, K - 1)[:, None, None], 1)[:, 0]
    score = jnp.where((labels == K)[:, None], mixture, own)
    return -sigma[:, None] * score


def log_density(z, t, label=None):
  """log q_t(z) (label None) or log q_t(z | label) of one point, by the Gaussian densities."""
  alpha, sigma = process.alpha_sigma(SCHEDULE.log_snr({}, t))
  covs = alpha ** 2 * COVS + sigma ** 2 * jnp.eye(2)
  logs = jnp.stack([jax.scipy.stats.multivariate_normal.logpdf(z, alpha * MEANS[k], covs[k]) for k in range(K)])
  return jax.scipy.special.logsumexp(logs + jnp.log(WEIGHTS)) if label is None else logs[label]


def model():
  return GaussianDiffusion(event_shape=(2,), denoiser=MixtureEps(), schedule=SCHEDULE, num_timesteps=0)


VARIABLES = {"params": {"schedule": {}}}


@pytest.mark.parametrize("scale", [0.0, 1.0, 3.0])
def test_guided_score_is_the_analytic_combination(scale):
  """At 64 points and times in [0.2, 0.8] the guided score -eps_hat / sigma equals (1 - s) grad log q_t +
  s grad log q_t(. | c) from autodiff of the densities (float32: measured within 2e-4 relative)."""
  m = model()
  rng = np.random.default_rng(0)
  z = jnp.asarray(rng.normal(size=(64, 2)) * 1.5, jnp.float32)
  t = jnp.asarray(rng.uniform(0.2, 0.8, size=64), jnp.float32)
  labels = jnp.asarray(rng.integers(0, K, size=64), jnp.int32)
  _, eps_hat = m.apply(VARIABLES, z, t, labels=labels, guidance_scale=jnp.float32(scale), method=m.denoise)
  _, sigma = process.alpha_sigma(SCHEDULE.log_snr({}, t))
  guided = -np.asarray(eps_hat) / np.asarray(sigma)[:, None]
  marginal = jax.vmap(jax.grad(log_density))(z, t)
  conditional = jax.vmap(jax.grad(log_density), in_axes=(0, 0, 0))(z, t, labels)
  expected = (1 - scale) * np.asarray(marginal) + scale * np.asarray(conditional)
  np.testing.assert_allclose(guided, expected, rtol=2e-4, atol=2e-4 * np.abs(expected).max())
  assert np.abs(np.asarray(marginal) - np.asarray(conditional)).max() > 0.1  # the two really differ


def test_scale_one_is_the_conditional_model_and_zero_the_unconditional():
  m = model()
  z = jnp.asarray(np.random.default_rng(1).normal(size=(16, 2)), jnp.float32)
  t = jnp.full((16,), 0.5)
  labels = jnp.arange(16, dtype=jnp.int32) % K
  denoise = lambda labels, s: np.asarray(m.apply(VARIABLES, z, t, labels=labels, guidance_scale=s,
                                                 method=m.denoise)[1])
  null = jnp.full((16,), K, jnp.int32)
  # Traced scales take the batched (conditional, null) path; 1.0 as a Python float the conditional one.
  np.testing.assert_allclose(denoise(labels, jnp.float32(1.0)), denoise(labels, 1.0), atol=1e-6)
  np.testing.assert_allclose(denoise(labels, jnp.float32(0.0)), denoise(null, 1.0), atol=1e-6)
  assert np.abs(denoise(labels, 1.0) - denoise(null, 1.0)).max() > 0.1


@pytest.mark.parametrize("sampler", ["ddim", "dpm_solver_2m", "edm_heun"])
def test_every_sampler_follows_the_guidance(sampler):
  """s = 1 with label c draws component c (4000 draws, 100 steps: mean within 4 standard errors plus
  0.02 of discretization); s = 0 with labels is the null-label (unconditional) sampler exactly."""
  m = model()
  n = 4000
  eta = None if sampler != "ddim" else 1.0
  draw = jax.jit(lambda key, labels, s: m.apply(VARIABLES, key, n, 100, eta, sampler=sampler, labels=labels,
                                                guidance_scale=s, method=m.sample))
  key = jax.random.key(7)
  for c in range(K):
    samples = np.asarray(draw(key, jnp.full((n,), c, jnp.int32), 1.0), np.float64)
    se = np.sqrt(np.diag(COVS[c]) / n)
    assert np.all(np.abs(samples.mean(0) - MEANS[c]) < 4 * se + 0.02), (c, samples.mean(0))
  unguided = np.asarray(draw(key, jnp.zeros((n,), jnp.int32), 0.0))
  unconditional = np.asarray(draw(key, jnp.full((n,), K, jnp.int32), 1.0))
  np.testing.assert_allclose(unguided, unconditional, atol=1e-4)


class NullIndicator(nn.Module):
  """Outputs 1000 where the label is the null one: L_simple = 1 + 10^6 * (fraction of null labels)."""
  num_classes: int = K

  @nn.compact
  def __call__(self, z, t, train=False, labels=None):
    return jnp.broadcast_to(1000.0 * (labels == self.num_classes)[:, None], z.shape).astype(jnp.float32)


@pytest.mark.parametrize("rate", [0.0, 0.1, 0.5])
def test_training_drops_labels_at_the_configured_rate(rate):
  """Over 20000 labels the fraction replaced by the null label is `rate` within 4 standard errors."""
  m = GaussianDiffusion(event_shape=(2,), denoiser=NullIndicator(), schedule=SCHEDULE, num_timesteps=0)
  spec = DataSpec(name="vectors", event_shape=(2,), num_levels=None, kind="vector")
  task = diffusion_task(m, spec, None, label_dropout=rate)
  assert task.uses_labels
  n = 20_000
  batch = {"data": jnp.zeros((n, 2)), "label": jnp.arange(n, dtype=jnp.int32) % K}
  value, _ = task.loss({"model": VARIABLES}, {}, batch, jax.random.key(0), 0)
  fraction = (float(value) - 1.0) / 1e6
  assert abs(fraction - rate) < 4 * np.sqrt(rate * (1 - rate) / n) + 1e-4, fraction


def test_unconditional_models_refuse_labels_and_guidance():
  from tests.test_diffusion_gaussian import model as gaussian_model, D
  m = gaussian_model()
  variables = m.init(jax.random.key(0), jnp.zeros((1, D)), jax.random.key(1))
  with pytest.raises(ValueError, match="labels were given to an unconditional model"):
    m.apply(variables, jax.random.key(0), 2, 4, labels=jnp.zeros((2,), jnp.int32), method=m.sample)
  with pytest.raises(ValueError, match="guidance_scale=2.0 needs a class-conditional model"):
    m.apply(variables, jax.random.key(0), 2, 4, guidance_scale=2.0, method=m.sample)
  spec = DataSpec(name="vectors", event_shape=(D,), num_levels=None, kind="vector")
  assert not diffusion_task(m, spec, None).uses_labels
  with pytest.raises(ValueError, match="diffusion.guidance_scale=2.0 needs a class-conditional denoiser"):
    diffusion_task(m, spec, None, guidance_scale=2.0)
  c = model()
  with pytest.raises(ValueError, match=r"labels must lie in \{0, ..., 3\}"):
    c.apply(VARIABLES, jax.random.key(0), 2, 4, labels=jnp.array([0, 4], jnp.int32), method=c.sample)
  with pytest.raises(ValueError, match=r"labels must be integers of shape \[num\] = \(2,\)"):
    c.apply(VARIABLES, jax.random.key(0), 2, 4, labels=jnp.zeros((3,), jnp.int32), method=c.sample)


def test_a_tiny_conditional_digits_ddpm_trains_and_samples(tmp_path):
  config = tiny(ddpm_digits.get_config("cpu,conditional"), num_steps=3)
  assert config.model.num_classes == 10 and config.diffusion.guidance_scale == 2.0
  config.model.update(channels=8, num_groups=4, channel_multipliers=(1,), attention_resolutions=())
  config.diffusion.sample_steps = 3
  config.eval.num_samples = 10
  loop.train_and_evaluate(config, str(tmp_path))
  last = [m for m in read_metrics(str(tmp_path)) if "eval/bpd" in m][-1]
  assert np.isfinite(last["eval/bpd"])
  run = gen_jax.load_run(str(tmp_path))
  assert run.task.uses_labels
  samples = run.task.sample(run.all_params, jax.random.key(0), 4)
  assert samples.shape == (4, 8, 8, 1) and samples.dtype == jnp.uint8
  m = run.task.model
  labels = jnp.array([3, 3, 7, 7], jnp.int32)
  guided = m.apply(run.all_params["model"], jax.random.key(0), 4, 3, labels=labels, guidance_scale=3.0,
                   method=m.sample)
  assert guided.shape == (4, 8, 8, 1)
  x = jnp.asarray(gen_jax.data.load_dataset("digits", "test").data[:4])
  conditional = run.task.log_likelihoods["elbo"](run.all_params, {"data": x, "label": labels}, jax.random.key(1),
                                                 num_step_samples=4)
  marginal = run.task.log_likelihoods["elbo"](run.all_params, x, jax.random.key(1), num_step_samples=4)
  assert np.all(np.isfinite(conditional)) and np.all(np.isfinite(marginal))
  # The labels reach the bound (after 3 steps the label embedding has barely moved: the bounds differ
  # in the last digits only, same key).
  assert np.any(np.asarray(conditional) != np.asarray(marginal))
