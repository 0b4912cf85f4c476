"""The flow-matching family on the training skeleton: model builder, objective, estimators.

config.flow_matching (the keyword options of `flow_matching_task`):
  coupling        "independent" (Lipman et al. 2023) or "minibatch_ot" (OT-CFM, Tong et al. 2023);
  ot_epsilon      the Sinkhorn regularisation relative to the mean cost (minibatch_ot);
  sampler, sample_steps  the ODE solver of `Task.sample`: "euler" / "midpoint" with sample_steps
                  equal steps, or "dopri5" (adaptive, sample_steps None);
  label_dropout, guidance_scale  classifier-free guidance of a class-conditional model
                  (model.num_classes > 0): the probability of the null label in training and the
                  guidance scale s of `Task.sample` (1 = conditional), whose labels cycle 0, 1, ...;
  latent_steps    midpoint steps of `Task.latent`'s decode / encode maps.
Evaluation reports the flow-matching loss; `Task.log_likelihoods["change_of_variables"]` is the
continuous-normalizing-flow log-likelihood (options divergence "hutchinson" / "exact", method, rtol,
atol, num_steps), a dequantization bound for images, in nats of the data as stored; a class-conditional
model gives log p(x | c) for labelled batches and, for data alone, log p(x) of the unconditional model
it learned under the null label.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from gen_jax.data.levels import centres_to_level_values, levels_to_centres
from gen_jax.data.spec import DataSpec
from gen_jax.models.flow_matching import couplings
from gen_jax.models.flow_matching.flow_matching import SAMPLE_METHODS, FlowMatching
from gen_jax.nn import TimeConditionedMLP, UNet
from gen_jax.nn.label_embedding import null_labels
from gen_jax.train.config_section import section_options
from gen_jax.train.optimizer import make_optimizer
from gen_jax.train.task import LatentSpace, Task, gradient_update


def flow_matching_model(event_shape, network: str = "unet", sigma: float = 0.0, num_levels: int | None = None,
                        **network_options) -> FlowMatching:
  """A `FlowMatching` from config fields: network "unet" (`nn.UNet` options) or "mlp"
  (`nn.TimeConditionedMLP` options), num_classes > 0 among them for a class-conditional model."""
  if network == "unet":
    net = UNet(**network_options)
  elif network == "mlp":
    net = TimeConditionedMLP(**network_options)
  else:
    raise ValueError(f"model.network must be 'unet' or 'mlp', got {network!r}")
  return FlowMatching(event_shape=tuple(event_shape), network=net, num_levels=num_levels, sigma=sigma)


def flow_matching_task(model: FlowMatching, spec: DataSpec, optimizer: optax.GradientTransformation,
                       coupling: str = "independent", ot_epsilon: float = 0.01, sampler: str = "midpoint",
                       sample_steps: int | None = 50, label_dropout: float = 0.1, guidance_scale: float = 1.0,
                       latent_steps: int = 50) -> Task:
  if coupling not in couplings.COUPLINGS:
    raise ValueError(f"flow_matching.coupling must be one of {couplings.COUPLINGS}, got {coupling!r}")
  if sampler not in SAMPLE_METHODS:
    raise ValueError(f"flow_matching.sampler must be one of {SAMPLE_METHODS}, got {sampler!r}")
  if (sampler == "dopri5") != (sample_steps is None):
    raise ValueError(f"flow_matching.sample_steps must be None for 'dopri5' and a positive int for 'euler' / "
                     f"'midpoint', got sampler={sampler!r}, sample_steps={sample_steps!r}")
  if not (isinstance(ot_epsilon, (int, float)) and ot_epsilon > 0):
    raise ValueError(f"flow_matching.ot_epsilon must be > 0, got {ot_epsilon!r}")
  if not (isinstance(label_dropout, (int, float)) and 0 <= label_dropout < 1):
    raise ValueError(f"flow_matching.label_dropout must be in [0, 1), got {label_dropout!r}")
  if model.num_levels != spec.num_levels:
    raise ValueError(f"model.num_levels={model.num_levels} must equal the data's num_levels={spec.num_levels}")
  conditional = model.num_classes > 0
  images = spec.num_levels is not None

  def split(batch):
    return (batch["data"], batch["label"]) if conditional else (batch, None)

  def init(rng, batch):
    data, labels = split(batch)
    params_rng, dropout_rng, loss_rng = jax.random.split(rng, 3)
    return {"model": model.init({"params": params_rng, "dropout": dropout_rng}, data, loss_rng, labels=labels,
                                method=model.loss)}, {}

  def loss(params, state, batch, rng, step):
    del step
    data, labels = split(batch)
    dropout_rng, loss_rng = jax.random.split(rng)
    value = jnp.mean(model.apply(params["model"], data, loss_rng, True, labels, coupling, ot_epsilon,
                                 label_dropout, method=model.loss, rngs={"dropout": dropout_rng}))
    return value, ({"fm_loss": value}, state)

  def evaluate(params, batch, rng):
    data, labels = split(batch)  # the independent coupling: an unbiased per-example estimate
    return {"fm_loss": model.apply(params["model"], data, rng, False, labels, method=model.loss)}

  def cycling_labels(num):
    return jnp.arange(num, dtype=jnp.int32) % model.num_classes if conditional else None

  def sample(params, rng, num):
    return model.apply(params["model"], rng, num, sampler, sample_steps, cycling_labels(num), guidance_scale,
                       method=model.sample)

  def log_change_of_variables(params, batch, rng, divergence="hutchinson", **solver_options):
    # A conditional model scores {"data", "label"} batches by log p(x | c), and data alone (as
    # `Run.log_likelihood` passes it) by log p(x) of the unconditional model it learned under the null label.
    if conditional and not isinstance(batch, dict):
      batch = {"data": batch, "label": null_labels(batch.shape[0], model.num_classes)}
    data, labels = split(batch)
    return model.apply(params["model"], data, rng,
                       method=lambda m, x, r: m.log_prob(x, r, divergence, labels, **solver_options))

  to_data = (lambda c: centres_to_level_values(c, spec.num_levels)) if images else (lambda x: x)

  def prior(rng, num):
    return jax.random.normal(rng, (num, *spec.event_shape), jnp.float32)

  def decode(params, z):  # the ODE map t = 0 -> 1, unclipped in model space, then to data scale
    x_1, _ = model.apply(params["model"], z, "midpoint", latent_steps, method=model.generate)
    return to_data(x_1)

  def encode(params, x):  # the same midpoint steps backwards, t = 1 -> 0
    return model.apply(params["model"], x, latent_steps, method=model.encode)

  def denoise(params, y, noise_std):
    # y = x + s n is x_t / t at t = 1 / (1 + s), and E[x_1 | x_t] = x_t + (1 - t) v(t, x_t).
    if images:
      y, noise_std = levels_to_centres(y, spec.num_levels), noise_std * 2.0 / (spec.num_levels - 1)
    t = 1.0 / (1.0 + noise_std)
    x_t = t * y
    v = model.apply(params["model"], x_t, jnp.full((y.shape[0],), t, jnp.float32), method=model.velocity)
    x_hat = x_t + (1.0 - t) * v
    return to_data(jnp.clip(x_hat, -1.0, 1.0) if images else x_hat)

  latent = None if conditional else LatentSpace(prior=prior, decode=decode, encode=encode)
  return Task(model=model, init=init, optimizer=optimizer, update=gradient_update(loss, optimizer), loss=loss,
              evaluate=evaluate, sample=sample, uses_labels=conditional,
              log_likelihoods={"change_of_variables": log_change_of_variables}, latent=latent,
              denoise=None if conditional else denoise)


def build_flow_matching_task(config: ml_collections.ConfigDict, model: FlowMatching, spec: DataSpec) -> Task:
  """config.flow_matching: the keyword options of `flow_matching_task`."""
  return flow_matching_task(model, spec, make_optimizer(config.optim, config.train.num_steps),
                            **section_options(config, "flow_matching", flow_matching_task))
