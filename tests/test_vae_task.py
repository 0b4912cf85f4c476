"""The VAE family on the training skeleton: objective, warm-up, figures, estimators, load_run."""
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gen_jax
from experiments.configs import vae_digits, vae_mnist
from gen_jax.data import load_dataset
from gen_jax.drivers import scoring
from gen_jax.models.vae.task import binarize, vae_task
from gen_jax.models.vae.vae import VAE
from gen_jax.drivers import loop
from tests.run_contract import check_run_contract


def read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


def tiny_digits_config(num_steps=20):
  config = vae_digits.get_config("cpu")
  config.model.latent_dim, config.model.channels = 4, (8, 8)
  config.vae.kl_warmup_steps = 10
  config.train.num_steps = num_steps
  for name in ("log_every", "eval_every", "sample_every", "save_every"):
    config.train[name] = 10
  config.train.log_every = 1
  return config


def test_configs_build_and_know_their_variants():
  for module in (vae_digits, vae_mnist):
    assert module.get_config("cpu").train.num_steps < module.get_config().train.num_steps
    assert module.get_config("cpu,metrics").eval.sample_metrics


def test_a_digits_run_trains_warms_up_the_kl_and_writes_its_figures(tmp_path):
  config = tiny_digits_config()
  loop.train_and_evaluate(config, str(tmp_path))
  metrics = read_metrics(str(tmp_path))
  weights = {m["step"]: m["train/kl_weight"] for m in metrics if "train/kl_weight" in m}
  # The warm-up is linear in the optimizer step t (the step before the update): w = t / 10, then 1.
  assert weights[1] == pytest.approx(0.0) and weights[6] == pytest.approx(0.5) and weights[20] == 1.0
  evals = [m for m in metrics if "eval/bpd" in m]
  assert [m["step"] for m in evals] == [10, 20]
  last = evals[-1]
  # Reported numbers are the unweighted ELBO: nll = kl - reconstruction, bpd = nll / (D ln 2).
  assert last["eval/nll"] == pytest.approx(last["eval/kl"] - last["eval/reconstruction"], rel=1e-5)
  assert last["eval/bpd"] == pytest.approx(last["eval/nll"] / (64 * math.log(2)), rel=1e-6)
  assert sum(last[f"eval/kl_dim_{i:02d}"] for i in range(4)) == pytest.approx(last["eval/kl"], rel=1e-5)
  assert 0 <= [m for m in metrics if "train/active_units" in m][-1]["train/active_units"] <= 4
  for name in ("step_20.png", "reconstructions_step_20.png", "interpolations_step_20.png"):
    assert os.path.exists(tmp_path / "samples" / name), name

  run = gen_jax.load_run(str(tmp_path))
  elbo = scoring.run_likelihood(run, "elbo")
  assert elbo.num_examples == 297 and elbo.bits_per_dim == pytest.approx(last["eval/bpd"], rel=2e-2)
  iwae = scoring.run_likelihood(run, "iwae", k=64, chunk_size=16)
  assert iwae.nll_nats < elbo.nll_nats  # the k=64 bound is tighter on average over 297 examples
  samples = run.task.sample(run.all_params, jax.random.key(0), 5)
  assert samples.shape == (5, 8, 8, 1) and samples.dtype == jnp.uint8 and int(samples.max()) <= 16
  check_run_contract(run, load_dataset("digits", "test").data[:8])


def test_beta_weights_only_the_training_objective():
  spec = load_dataset("digits", "test").spec
  model = VAE(event_shape=(8, 8, 1), latent_dim=4, likelihood="discretized_logistic", num_levels=17,
              hidden_sizes=(16,))
  x = load_dataset("digits", "test").data[:8]
  rng = jax.random.key(0)
  tasks = {beta: vae_task(model, spec, optax.adam(1e-3), beta=beta) for beta in (0.0, 1.0, 4.0)}
  params, _ = tasks[1.0].init(rng, x)
  losses = {beta: task.loss(params, {}, x, rng, jnp.asarray(100))[0] for beta, task in tasks.items()}
  parts = model.apply(params["model"], x, jax.random.split(rng)[1], method=model.elbo)
  scale = 64 * math.log(2)
  for beta, value in losses.items():
    expected = -(jnp.mean(parts["reconstruction"]) - beta * jnp.mean(parts["kl"])) / scale
    assert float(value) == pytest.approx(float(expected), rel=1e-5)
  evaluations = [task.evaluate(params, x, rng)["nll"] for task in tasks.values()]
  np.testing.assert_allclose(evaluations[0], evaluations[2])  # evaluation ignores beta
  with pytest.raises(ValueError, match="beta must be >= 0"):
    vae_task(model, spec, optax.adam(1e-3), beta=-1.0)


def test_bernoulli_binarizes_with_the_pixel_intensity():
  x = jnp.full((20000,), 12, jnp.uint8)
  assert float(jnp.mean(binarize(jax.random.key(0), x, 17))) == pytest.approx(12 / 16, abs=0.01)
  assert set(np.unique(np.asarray(binarize(jax.random.key(1), jnp.arange(17, dtype=jnp.uint8), 17)))) <= {0, 1}


def test_the_hierarchical_vae_trains_through_the_same_task(tmp_path):
  from experiments.configs import hvae_digits
  config = hvae_digits.get_config("cpu")
  config.model.hidden_channels, config.model.latent_channels = 8, 2
  config.train.num_steps = 10
  for name in ("log_every", "eval_every", "sample_every", "save_every"):
    config.train[name] = 10
  loop.train_and_evaluate(config, str(tmp_path))
  last = [m for m in read_metrics(str(tmp_path)) if "eval/bpd" in m][-1]
  assert last["eval/kl_layer_00"] + last["eval/kl_layer_01"] == pytest.approx(last["eval/kl"], rel=1e-5)
  run = gen_jax.load_run(str(tmp_path))
  iwae = scoring.run_likelihood(run, "iwae", k=8, num_examples=40)
  assert iwae.num_examples == 40 and np.isfinite(iwae.bits_per_dim)
