"""The autoregressive family's objective: the exact negative log-likelihood.

For discrete images (PixelCNN) log P(x) = sum_i log P(x_i | x_<i) is a probability of the data as
stored, with no dequantization: bits/dim = -log P(x) / (D ln 2) is exact, not a bound. For
continuous vectors (MADE density) it is the exact log-density in nats. The loss is the mean
bits/dim for images (its scale independent of resolution) and the mean nats for vectors; the
estimator "exact" of `gen_jax.eval.likelihood` evaluates the same quantity.
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax.numpy as jnp
import ml_collections
import optax

from gen_jax.data import levels
from gen_jax.data.spec import DataSpec
from gen_jax.train.optimizer import make_optimizer
from gen_jax.train.task import Task, gradient_update


def autoregressive_task(model: nn.Module, spec: DataSpec, optimizer: optax.GradientTransformation) -> Task:
  """The `Task` of a model with `log_prob(x) -> [B]` nats and `sample(rng, num)` in data space."""
  discrete = spec.num_levels is not None
  if getattr(model, "num_levels", None) != spec.num_levels:
    raise ValueError(f"model.num_levels={getattr(model, 'num_levels', None)} must equal the data's "
                     f"num_levels={spec.num_levels} (set config.model.num_levels)")
  num_dims = math.prod(spec.event_shape)

  def log_likelihood(params, batch, rng):
    """Exact log-likelihood in nats per example, [batch] (rng unused: nothing is random)."""
    del rng
    return model.apply(params["model"], batch, method=model.log_prob)

  def init(rng, batch):
    return {"model": model.init(rng, batch, method=model.log_prob)}, {}

  def evaluate(params, batch, rng):
    nll = -log_likelihood(params, batch, rng)
    return {"nll": nll, "bpd": levels.bits_per_dim(nll, num_dims)} if discrete else {"nll": nll}

  def loss(params, state, batch, rng, step):
    del step
    metrics = {k: jnp.mean(v) for k, v in evaluate(params, batch, rng).items()}
    return (metrics["bpd"] if discrete else metrics["nll"]), (metrics, state)

  def sample(params, rng, num):
    return model.apply(params["model"], rng, num, method=model.sample)

  def pixel_conditionals(params, x, i):
    return model.apply(params["model"], x, i, method=model.pixel_log_probs)

  return Task(model=model, init=init, optimizer=optimizer, update=gradient_update(loss, optimizer), loss=loss,
              evaluate=evaluate, sample=sample, log_likelihoods={"exact": log_likelihood},
              pixel_conditionals=pixel_conditionals if hasattr(model, "pixel_log_probs") else None)


def build_autoregressive_task(config: ml_collections.ConfigDict, model: nn.Module, spec: DataSpec) -> Task:
  return autoregressive_task(model, spec, make_optimizer(config.optim, config.train.num_steps))
