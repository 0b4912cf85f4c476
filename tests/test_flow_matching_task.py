"""The flow-matching family on the training skeleton: configs, tiny runs end to end (unconditional,
class-conditional with minibatch OT, toy 2-D), the change-of-variables likelihood from a saved run."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gen_jax
from experiments.configs import flow_matching_digits, flow_matching_mnist, flow_matching_toy2d
from gen_jax.data import load_dataset
from gen_jax.drivers import loop, scoring
from tests.run_contract import check_run_contract
from tests.test_diffusion_task import read_metrics, tiny


def test_configs_build_and_know_their_variants():
  for module in (flow_matching_digits, flow_matching_mnist):
    full, cpu = module.get_config(), module.get_config("cpu")
    assert cpu.train.num_steps < full.train.num_steps and cpu.model.channels < full.model.channels
    both = module.get_config("cpu,metrics,ot,conditional")
    assert both.eval.sample_metrics and both.flow_matching.coupling == "minibatch_ot"
    assert both.model.num_classes == 10 and both.flow_matching.guidance_scale == 2.0
  assert flow_matching_toy2d.get_config("checkerboard,cpu,ot").flow_matching.coupling == "minibatch_ot"
  with pytest.raises(ValueError, match="unknown config variant"):
    flow_matching_digits.get_config("cpu,otc")


def tiny_unet(config):
  config.model.update(channels=8, num_groups=4, channel_multipliers=(1,), attention_resolutions=())
  config.flow_matching.sample_steps = 2
  return config


def test_a_tiny_digits_run_trains_samples_and_scores(tmp_path):
  config = tiny_unet(tiny(flow_matching_digits.get_config("cpu")))
  loop.train_and_evaluate(config, str(tmp_path))
  last = [m for m in read_metrics(str(tmp_path)) if "eval/fm_loss" in m][-1]
  assert np.isfinite(last["eval/fm_loss"])
  run = gen_jax.load_run(str(tmp_path))
  check_run_contract(run, load_dataset("digits", "test").data[:4],
                     estimator_options={"method": "midpoint", "num_steps": 2})
  report = scoring.run_likelihood(run, "change_of_variables", num_examples=8, batch_size=8, method="midpoint",
                                  num_steps=2)
  assert report.estimator == "change_of_variables" and report.bits_per_dim > 0


def test_a_conditional_minibatch_ot_run_samples_each_class(tmp_path):
  config = tiny_unet(tiny(flow_matching_digits.get_config("cpu,ot,conditional")))
  loop.train_and_evaluate(config, str(tmp_path))
  run = gen_jax.load_run(str(tmp_path))
  assert run.task.uses_labels
  samples = run.task.sample(run.all_params, jax.random.key(0), 12)
  assert samples.shape == (12, 8, 8, 1) and samples.dtype == jnp.uint8
  # Data alone is scored by the unconditional model of the null label, data with labels conditionally.
  x = load_dataset("digits", "test").data[:4]
  options = {"method": "midpoint", "num_steps": 2, "divergence": "exact"}
  marginal = np.asarray(run.log_likelihood(x, **options))
  conditional = np.asarray(run.task.log_likelihoods["change_of_variables"](
      run.all_params, {"data": x, "label": np.array([0, 1, 2, 3], np.int32)}, jax.random.key(0), **options))
  assert np.all(np.isfinite(marginal)) and np.all(np.isfinite(conditional))
  model = run.task.model
  direct = lambda labels: np.asarray(model.apply(
      run.all_params["model"], x, jax.random.key(0),
      method=lambda m, x, r: m.log_prob(x, r, "exact", labels, method="midpoint", num_steps=2)))
  np.testing.assert_allclose(marginal, direct(np.full(4, 10, np.int32)), rtol=1e-6)  # the null label
  np.testing.assert_allclose(conditional, direct(np.array([0, 1, 2, 3], np.int32)), rtol=1e-6)
  with pytest.raises(ValueError, match="needs labels"):
    model.apply(run.all_params["model"], jax.random.key(0), 2, method=model.sample)


def test_toy_run_exact_and_hutchinson_likelihoods_agree(tmp_path):
  config = tiny(flow_matching_toy2d.get_config("two_moons,cpu"), num_steps=20)
  config.model.hidden_sizes = (16, 16)
  config.eval.num_samples = 100
  loop.train_and_evaluate(config, str(tmp_path))
  run = gen_jax.load_run(str(tmp_path))
  exact = scoring.run_likelihood(run, "change_of_variables", num_examples=200, divergence="exact")
  hutchinson = scoring.run_likelihood(run, "change_of_variables", num_examples=200, divergence="hutchinson")
  assert exact.bits_per_dim is None and np.isfinite(exact.nll_nats)
  assert abs(hutchinson.nll_nats - exact.nll_nats) < 4 * hutchinson.nll_stderr + 0.05
