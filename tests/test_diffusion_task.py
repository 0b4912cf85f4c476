"""The diffusion family on the training skeleton: configs, a tiny run end to end, the likelihood
estimators from a saved run, and VDM's variance-minimising gradient for a learned schedule."""
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gen_jax
from experiments.configs import ddpm_digits, ddpm_mnist, diffusion_toy2d, vdm_digits, vdm_mnist
from gen_jax.cli import likelihood as likelihood_cli
from gen_jax.drivers import scoring
from gen_jax.models.diffusion import schedules
from gen_jax.models.diffusion.diffusion import GaussianDiffusion
from gen_jax.nn import TimeConditionedMLP
from gen_jax.drivers import loop
from gen_jax.data import load_dataset
from tests.run_contract import check_run_contract


def read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def tiny(config, num_steps=4):
  config.train.num_steps = num_steps
  config.train.steps_per_call = 1
  for name in ("log_every", "eval_every", "sample_every", "save_every"):
    config.train[name] = num_steps
  return config


def test_configs_build_and_know_their_variants():
  for module in (ddpm_digits, ddpm_mnist, vdm_digits, vdm_mnist):
    full, cpu = module.get_config(), module.get_config("cpu")
    assert cpu.train.num_steps < full.train.num_steps and cpu.model.channels < full.model.channels
    assert module.get_config("cpu,metrics").eval.sample_metrics
  assert vdm_digits.get_config().model.schedule == "learned_log_snr"
  assert vdm_digits.get_config().diffusion.objective == "elbo"
  assert diffusion_toy2d.get_config("checkerboard,cpu").data.name == "toy2d/checkerboard"


def test_a_tiny_digits_run_trains_writes_figures_and_reports_likelihoods(tmp_path, quick_compile):
  config = tiny(vdm_digits.get_config("cpu"))
  # The smallest U-Net (one level): the run compiles it in six programs (train, eval, sampler,
  # figures, two estimators), which dominates this test's time on CPU.
  config.model.update(channels=8, num_groups=4, channel_multipliers=(1,), attention_resolutions=())
  config.diffusion.sample_steps = 3
  loop.train_and_evaluate(config, str(tmp_path))
  last = [m for m in read_metrics(str(tmp_path)) if "eval/bpd" in m][-1]
  # Reported: the unweighted bound, nll = prior + diffusion - reconstruction, bpd = nll / (D ln 2).
  assert last["eval/nll"] == pytest.approx(last["eval/prior"] + last["eval/diffusion"]
                                           - last["eval/reconstruction"], rel=1e-5)
  assert last["eval/bpd"] == pytest.approx(last["eval/nll"] / (64 * math.log(2)), rel=1e-5)
  for name in ("step_4.png", "denoising_step_4.png", "inpainting_step_4.png"):
    assert os.path.exists(tmp_path / "samples" / name), name

  run = gen_jax.load_run(str(tmp_path))
  samples = run.task.sample(run.all_params, jax.random.key(0), 3)
  assert samples.shape == (3, 8, 8, 1) and samples.dtype == jnp.uint8 and int(samples.max()) <= 16
  check_run_contract(run, load_dataset("digits", "test").data[:8])
  # DDIM samples from the same checkpoint: the sampler is a config override of the loaded run.
  ddim = gen_jax.load_run(str(tmp_path), overrides={"diffusion.sample_steps": 2, "diffusion.sample_eta": 0.0})
  assert ddim.task.sample(ddim.all_params, jax.random.key(0), 3).shape == (3, 8, 8, 1)
  with pytest.raises(KeyError, match="no field"):
    gen_jax.load_run(str(tmp_path), overrides={"diffusion.sample_stepz": 2})
  # The stratified bound over 20 times per example estimates the same ELBO as the logged one-draw
  # estimate: equal within a few standard errors over the 297 test digits.
  elbo = scoring.run_likelihood(run, "elbo", num_step_samples=20)
  assert elbo.num_examples == 297
  assert abs(elbo.bits_per_dim - last["eval/bpd"]) < 0.1 * last["eval/bpd"]
  flow = scoring.run_likelihood(run, "probability_flow", num_examples=8, batch_size=8, method="rk4",
                                   num_steps=2)
  assert np.isfinite(flow.nll_nats) and flow.bits_per_dim > 0


def test_probability_flow_on_vectors_uses_the_exact_divergence(tmp_path):
  config = tiny(diffusion_toy2d.get_config("two_moons,cpu"), num_steps=20)
  config.model.hidden_sizes = (16, 16)
  config.diffusion.sample_steps = 10
  config.eval.num_samples = 100
  loop.train_and_evaluate(config, str(tmp_path))
  run = gen_jax.load_run(str(tmp_path))
  exact = scoring.run_likelihood(run, "probability_flow", num_examples=200, divergence="exact")
  hutchinson = scoring.run_likelihood(run, "probability_flow", num_examples=200, divergence="hutchinson")
  assert exact.bits_per_dim is None and np.isfinite(exact.nll_nats)
  # Hutchinson's estimate is unbiased: its mean over 200 examples is within a few s.e. of the exact one.
  assert abs(hutchinson.nll_nats - exact.nll_nats) < 4 * hutchinson.nll_stderr + 0.05


def test_likelihood_cli_passes_estimator_options():
  assert likelihood_cli.parse_options(["divergence=exact", "rtol=1e-5", "num_step_samples=100"]) == {
      "divergence": "exact", "rtol": 1e-5, "num_step_samples": 100}
  assert likelihood_cli.parse_options(["diffusion.sample_eta=0.0"]) == {"diffusion.sample_eta": 0.0}
  with pytest.raises(ValueError, match="NAME=VALUE"):
    likelihood_cli.parse_options(["rtol"])


def test_learned_schedule_shape_follows_the_variance_and_the_rest_the_bound():
  model = GaussianDiffusion(event_shape=(2,), denoiser=TimeConditionedMLP((16,)),
                            schedule=schedules.LearnedLogSNR(num_features=8), num_timesteps=0)
  x = jax.random.normal(jax.random.key(0), (32, 2))
  variables = model.init(jax.random.key(1), x, jax.random.key(2))
  t = jax.random.uniform(jax.random.key(3), (32,))

  def term(v, train):
    return model.apply(v, x, jax.random.key(4), t=t, train=train, method=model.diffusion_term)

  np.testing.assert_allclose(term(variables, True), term(variables, False), rtol=1e-6)
  training = jax.grad(lambda v: jnp.mean(term(v, True)))(variables)["params"]
  of_mean = jax.grad(lambda v: jnp.mean(term(v, False)))(variables)["params"]
  of_square = jax.grad(lambda v: jnp.mean(term(v, False) ** 2))(variables)["params"]
  for name in ("a", "b", "v"):  # the shape s(t): d E[L^2] (float32: ~1e-5 of the largest entry)
    expected = of_square["schedule"][name]
    np.testing.assert_allclose(training["schedule"][name], expected, rtol=1e-3,
                               atol=2e-5 * float(jnp.abs(expected).max()))
  for name in ("log_snr_max", "gap"):  # the endpoints: d E[L]
    np.testing.assert_allclose(training["schedule"][name], of_mean["schedule"][name], rtol=1e-5)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7),
               training["denoiser"], of_mean["denoiser"])
  assert not np.allclose(of_square["schedule"]["v"], of_mean["schedule"]["v"])  # the two really differ
