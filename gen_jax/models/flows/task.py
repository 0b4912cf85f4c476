"""The flow family's objective: exact negative log-likelihood of (dequantized) data.

For discrete images with L levels the model density p lives on [0, 1]^D and
  log P(x) >= E_u[log p((x + u) / L)] - D log L                         (uniform dequantization)
  log P(x) >= E_q[log p((x + u) / L) - log q(u | x)] - D log L          (variational, Flow++)
(Theis et al. 2016; Ho et al. 2019), reported in nats per example and bits per dimension of the
discrete data. For continuous vectors (2-D toy data) the NLL is exact.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections
import optax

from gen_jax.data import dequantize
from gen_jax.data import levels
from gen_jax.data.spec import DataSpec
from gen_jax.train.config_section import refuse_moved, section_options
from gen_jax.train.optimizer import make_optimizer
from gen_jax.train.task import LatentSpace, Task, gradient_update


def flow_task(model: nn.Module, spec: DataSpec, optimizer: optax.GradientTransformation,
              dequantization: str = "uniform") -> Task:
  num_dims = math.prod(spec.event_shape)
  discrete = spec.num_levels is not None
  if dequantization not in ("uniform", "variational"):
    raise ValueError(f"flow.dequantization must be 'uniform' or 'variational', got {dequantization!r}")
  variational = discrete and dequantization == "variational"
  dequantizer = dequantize.VariationalDequantizer(num_levels=spec.num_levels) if variational else None

  def log_likelihood(params, batch, rng):
    """Log-likelihood (bound) in nats per example: [batch]."""
    if not discrete:
      return model.apply(params["model"], batch, method=model.log_prob)
    if variational:
      y, log_q = dequantizer.apply(params["dequantizer"], batch, rng)
      log_p = model.apply(params["model"], y, method=model.log_prob)
      return dequantize.variational_discrete_log_likelihood(log_p, log_q, num_dims, spec.num_levels)
    y = dequantize.uniform_dequantize(rng, batch, spec.num_levels)
    log_p = model.apply(params["model"], y, method=model.log_prob)
    return dequantize.discrete_log_likelihood(log_p, num_dims, spec.num_levels)

  def init(rng, batch):
    model_rng, deq_rng, noise_rng = jax.random.split(rng, 3)
    y = dequantize.uniform_dequantize(noise_rng, batch, spec.num_levels) if discrete else batch
    params = {"model": model.init(model_rng, y, method=model.log_prob)}
    if variational:
      params["dequantizer"] = dequantizer.init(deq_rng, batch, noise_rng)
    return params, {}

  def evaluate(params, batch, rng):
    nll = -log_likelihood(params, batch, rng)
    if not discrete:  # bits/dim is reported on discrete data only (see gen_jax.data.dequantize)
      return {"nll": nll}
    return {"nll": nll, "bpd": levels.bits_per_dim(nll, num_dims)}

  def loss(params, state, batch, rng, step):
    del step
    metrics = {k: jnp.mean(v) for k, v in evaluate(params, batch, rng).items()}
    # Bits/dim for images keeps the loss scale independent of resolution; nats for vectors.
    return (metrics["bpd"] if discrete else metrics["nll"]), (metrics, state)

  def sample(params, rng, num):
    y = model.apply(params["model"], rng, num, method=model.sample)
    if not discrete:
      return y
    # y lies in (0, 1) (the logit preprocessing ends in a sigmoid); floor(y L) is its bin.
    return levels.unit_to_levels(y, spec.num_levels)

  def prior(rng, num):  # the base distribution N(0, I) that `sample` draws from
    return jax.random.normal(rng, (num, *spec.event_shape), jnp.float32)

  def decode(params, z):  # the inverse map; images: y in (0, 1) as levels, y L - 1/2 (not floored)
    y = model.apply(params["model"], z, method=model.decode)
    return levels.unit_to_level_values(y, spec.num_levels) if discrete else y

  def encode(params, x):  # the forward map of x; images: of their bins' centres (x + 1/2) / L
    y = dequantize.dequantize_with_noise(x, jnp.full(x.shape, 0.5), spec.num_levels) if discrete else x
    return model.apply(params["model"], y, method=model.encode)

  return Task(model=model, init=init, optimizer=optimizer, update=gradient_update(loss, optimizer), loss=loss,
              evaluate=evaluate, sample=sample, log_likelihoods={"exact": log_likelihood},
              latent=LatentSpace(prior=prior, decode=decode, encode=encode))


def build_flow_task(config: ml_collections.ConfigDict, model: nn.Module, spec: DataSpec) -> Task:
  """config.flow: the keyword options of `flow_task` (dequantization)."""
  refuse_moved(config, {"data.dequantization": "flow.dequantization"})
  return flow_task(model, spec, make_optimizer(config.optim, config.train.num_steps),
                   **section_options(config, "flow", flow_task))
