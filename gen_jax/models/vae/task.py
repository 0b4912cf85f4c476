"""The VAE family's objective: the ELBO, with beta weighting and KL warm-up for training only.

Training maximises E_q[log p(x|z)] - w_t KL(q(z|x) || p(z)) with w_t = beta * min(1, t / T_warmup)
(beta-VAE, Higgins et al. 2017; KL warm-up / annealing, Bowman et al. 2016, Sønderby et al. 2016).
The *reported* ELBO and bits/dim always use w = 1, so they are true bounds on log p(x) of the
discrete data (the decoder likelihoods of gen_jax.distributions.likelihoods put probability mass on
each of the L levels), never the weighted training objective.

Bernoulli likelihoods model binarized data: images are binarized by sampling each pixel with
probability x / (L - 1) (dynamic binarization in training; a fixed draw per batch in evaluation),
so their bits/dim are those of the binarized images, not comparable with L-level numbers.

Logged diagnostics of posterior collapse: KL per latent dimension on the test split
(`eval/kl_dim_XX`, nats) and, on each training batch, the number of active units (Burda et al.
2016: dimensions whose posterior mean varies across the batch with variance > 0.01).

Likelihood estimators (gen_jax.eval.likelihood): "elbo", and "iwae" (option k, chunk_size).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import optax

from gen_jax.data.levels import bits_per_dim
from gen_jax.data.spec import DataSpec
from gen_jax.models.vae import figures as figures_lib
from gen_jax.models.vae.vae import largest_divisor_at_most
from gen_jax.train.config_section import refuse_moved, section_options
from gen_jax.train.optimizer import make_optimizer
from gen_jax.train.task import BitsBack, LatentSpace, Task, gradient_update

ACTIVE_UNIT_THRESHOLD = 1e-2


def binarize(rng, x_levels, num_levels):
  """Samples {0, 1} pixels with P(1) = x / (L - 1) (dynamic binarization, Salakhutdinov & Murray 2008)."""
  return (jax.random.uniform(rng, x_levels.shape) < x_levels.astype(jnp.float32) / (num_levels - 1)).astype(jnp.uint8)


def vae_task(model, spec: DataSpec, optimizer: optax.GradientTransformation, beta: float = 1.0,
             kl_warmup_steps: int = 0, likelihood: str = "") -> Task:
  if beta < 0:
    raise ValueError(f"vae.beta must be >= 0, got {beta}")
  if kl_warmup_steps < 0:
    raise ValueError(f"vae.kl_warmup_steps must be >= 0, got {kl_warmup_steps}")
  num_dims = math.prod(spec.event_shape)
  discrete = spec.num_levels is not None
  binarized = likelihood == "bernoulli"

  def prepare(batch, rng):
    return binarize(rng, batch, spec.num_levels) if binarized else batch

  def elbo_parts(params, batch, rng):
    data_rng, model_rng = jax.random.split(rng)
    return model.apply(params["model"], prepare(batch, data_rng), model_rng, method=model.elbo)

  def init(rng, batch):
    data_rng, model_rng, elbo_rng = jax.random.split(rng, 3)
    return {"model": model.init(model_rng, prepare(batch, data_rng), elbo_rng, method=model.elbo)}, {}

  def evaluate(params, batch, rng):
    parts = elbo_parts(params, batch, rng)
    metrics = {"nll": -parts["elbo"], "kl": parts["kl"], "reconstruction": parts["reconstruction"]}
    if discrete:
      metrics["bpd"] = bits_per_dim(-parts["elbo"], num_dims)
    per_dim = parts.get("kl_per_dim", parts.get("kl_per_layer"))
    label = "kl_dim" if "kl_per_dim" in parts else "kl_layer"
    for i in range(per_dim.shape[-1]):
      metrics[f"{label}_{i:02d}"] = per_dim[:, i]
    return metrics

  def loss(params, state, batch, rng, step):
    parts = elbo_parts(params, batch, rng)
    weight = beta if kl_warmup_steps == 0 else beta * jnp.minimum(1.0, step / kl_warmup_steps)
    objective = jnp.mean(parts["reconstruction"] - weight * parts["kl"])
    metrics = {"elbo": jnp.mean(parts["elbo"]), "kl": jnp.mean(parts["kl"]), "kl_weight": jnp.asarray(weight),
               "reconstruction": jnp.mean(parts["reconstruction"])}
    if discrete:
      metrics["bpd"] = bits_per_dim(-metrics["elbo"], num_dims)
    if "posterior_mean" in parts:
      variance = jnp.var(parts["posterior_mean"].reshape(batch.shape[0], -1), axis=0)
      metrics["active_units"] = jnp.sum(variance > ACTIVE_UNIT_THRESHOLD).astype(jnp.float32)
    # A bits/dim-sized loss for discrete data (its scale independent of the resolution), nats for vectors.
    return (bits_per_dim(-objective, num_dims) if discrete else -objective), (metrics, state)

  def sample(params, rng, num):
    return model.apply(params["model"], rng, num, method=model.sample)

  def log_elbo(params, batch, rng):
    return elbo_parts(params, batch, rng)["elbo"]

  def log_iwae(params, batch, rng, k=5000, chunk_size=None):
    # Default: chunks of at most 100 samples, so k = 5000 never holds k x batch decoder outputs at once.
    chunk_size = largest_divisor_at_most(k, 100) if chunk_size is None else chunk_size
    data_rng, model_rng = jax.random.split(rng)
    return model.apply(params["model"], prepare(batch, data_rng), model_rng, k, chunk_size,
                       method=model.iwae_bound)

  def figures(params, rng, examples):
    if not discrete or spec.kind != "image":
      return {}
    return figures_lib.reconstructions_and_interpolations(model, params["model"], prepare(jnp.asarray(examples), rng),
                                                          2 if binarized else spec.num_levels)

  # Binarized data: the encoder sees x / (L - 1) rounded to {0, 1}, the decoded mean P(1) in [0, 1] is
  # read back in the data's levels, x (L - 1).
  scale = (spec.num_levels - 1) if binarized else 1.0

  def encode(params, x):  # the posterior mean E_q[z | x]
    if binarized:
      x = jnp.round(x.astype(jnp.float32) / (spec.num_levels - 1)).astype(jnp.uint8)
    return model.apply(params["model"], x, method=model.posterior_mean)

  def decode(params, z):  # the decoded mean E[x | z], in data scale
    return scale * model.apply(params["model"], z, method=model.decode_mean)

  def denoise(params, y, noise_std):  # the decoded posterior mean of y, rounded to the levels it takes
    del noise_std
    if discrete:
      y = jnp.clip(jnp.round(y), 0, spec.num_levels - 1).astype(jnp.uint8)
    return decode(params, encode(params, y))

  # A hierarchical VAE's latent is a list of layers under a learned prior: no flat code (not yet).
  latent = (LatentSpace(prior=lambda rng, num: jax.random.normal(rng, (num, model.latent_dim), jnp.float32),
                        decode=decode, encode=encode) if hasattr(model, "latent_dim") else None)
  def posterior(params, x):  # q(z | x) as (mean, std)
    mean, log_std = model.apply(params["model"], x, method=model.encode)
    return mean, jnp.exp(log_std)

  def observation_log_probs(params, z):
    return model.observation.level_log_probs(model.apply(params["model"], z, method=model.decode), spec.num_levels)

  # Bits-back coding codes the data as stored: not binarized data (its likelihood is of other data).
  bits_back = BitsBack(posterior, observation_log_probs) if latent is not None and discrete and not binarized else None
  return Task(model=model, init=init, optimizer=optimizer, update=gradient_update(loss, optimizer), loss=loss,
              evaluate=evaluate, sample=sample, figures=figures, log_likelihoods={"elbo": log_elbo, "iwae": log_iwae},
              latent=latent, denoise=denoise if latent is not None else None, bits_back=bits_back)


def build_vae_task(config: ml_collections.ConfigDict, model, spec: DataSpec) -> Task:
  """config.vae: the keyword options of `vae_task` (beta, kl_warmup_steps); the likelihood is the model's."""
  refuse_moved(config, {"loss": "vae.beta / vae.kl_warmup_steps"})
  return vae_task(model, spec, make_optimizer(config.optim, config.train.num_steps),
                  likelihood=config.model.get("likelihood", ""),
                  **section_options(config, "vae", vae_task, skip=("likelihood",)))
