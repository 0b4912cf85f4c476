"""The flow family's objective: the bound it reports, in the units it names."""
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gen_jax.data import DataSpec, uniform_dequantize
from gen_jax.models.flows import Glow, RealNVP
from gen_jax.models.flows.task import flow_task

SPEC = DataSpec("digits", (8, 8, 1), 17, "image")
ADAM = optax.adam(1e-3)  # the optimizer a task declares (unused by these evaluations)


def _batch(seed=0, n=16):
  return np.random.default_rng(seed).integers(0, 17, (n, 8, 8, 1)).astype(np.uint8)


def test_uniform_bound_is_the_flow_density_minus_d_log_l_in_nats_and_bits():
  model = Glow(event_shape=(8, 8, 1), num_scales=2, num_steps=1, hidden_channels=8)
  task = flow_task(model, SPEC, ADAM)
  x, rng = _batch(), jax.random.key(3)
  params, _ = task.init(jax.random.key(0), x)
  out = task.evaluate(params, x, rng)
  y = uniform_dequantize(rng, x, 17)
  expected_nll = -(model.apply(params["model"], y, method=model.log_prob) - 64 * math.log(17))
  np.testing.assert_allclose(out["nll"], expected_nll, rtol=1e-6)
  np.testing.assert_allclose(out["bpd"], expected_nll / (64 * math.log(2)), rtol=1e-6)


def test_vector_data_reports_exact_nll_without_bits_per_dim():
  spec = DataSpec("toy2d/two_moons", (2,), None, "vector")
  model = RealNVP(event_shape=(2,), num_couplings=2, hidden=8)
  task = flow_task(model, spec, ADAM)
  x = np.random.default_rng(0).normal(size=(32, 2)).astype(np.float32)
  params, _ = task.init(jax.random.key(0), x)
  out = task.evaluate(params, x, jax.random.key(1))
  assert set(out) == {"nll"}
  np.testing.assert_allclose(out["nll"], -model.apply(params["model"], x, method=model.log_prob), rtol=1e-6)


def test_variational_dequantization_trains_the_noise_model_and_tightens_the_bound():
  model = Glow(event_shape=(8, 8, 1), num_scales=1, num_steps=1, hidden_channels=8)
  task = flow_task(model, SPEC, ADAM, dequantization="variational")
  x = _batch(n=64)
  params, _ = task.init(jax.random.key(0), x)
  assert set(params) == {"model", "dequantizer"}
  optimizer = optax.adam(3e-3)

  @jax.jit
  def step(carry, key):
    params, opt_state = carry
    (loss, _), grads = jax.value_and_grad(task.loss, has_aux=True)(params, {}, x, key, 0)
    updates, opt_state = optimizer.update(grads, opt_state)
    return (optax.apply_updates(params, updates), opt_state), (loss, optax.tree.norm(grads["dequantizer"]))

  (params, _), (losses, deq_grad_norms) = jax.lax.scan(step, (params, optimizer.init(params)),
                                                       jax.random.split(jax.random.key(1), 200))
  assert float(deq_grad_norms[0]) > 0  # the bound's gradient reaches q(u|x)
  assert float(losses[-20:].mean()) < float(losses[:20].mean()) - 0.1
  bpd = task.evaluate(params, x, jax.random.key(2))["bpd"]
  assert np.all(np.isfinite(bpd))


def test_samples_are_discrete_levels():
  model = Glow(event_shape=(8, 8, 1), num_scales=2, num_steps=1, hidden_channels=8)
  task = flow_task(model, SPEC, ADAM)
  params, _ = task.init(jax.random.key(0), _batch())
  samples = task.sample(params, jax.random.key(1), 10)
  assert samples.shape == (10, 8, 8, 1) and samples.dtype == jnp.uint8 and int(samples.max()) <= 16


def test_unknown_dequantization_is_an_error():
  model = Glow(event_shape=(8, 8, 1), num_scales=1, num_steps=1, hidden_channels=8)
  with pytest.raises(ValueError, match="flow.dequantization must be 'uniform' or 'variational'"):
    flow_task(model, SPEC, ADAM, dequantization="gaussian")
