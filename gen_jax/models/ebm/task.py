"""The EBM family on the training skeleton: one compiled step for each objective, Langevin inside it.

One step (`Task.update`) on a batch x (images: dequantized to y = (x + u) / L in [0, 1]^D):
  0. spectral norm (if on): one power-iteration step on the data, stored in 'batch_stats';
  1. objective "langevin": negatives by `langevin_steps` Langevin steps (one `lax.scan`) from uniform
     noise on the box ("short_run" chains, Nijkamp et al. 2019) or from the replay buffer
     ("persistent" chains, Du & Mordatch 2019; the buffer is params["buffer"], checkpointed with the
     run); loss = `maximum_likelihood_loss`. Objectives without MCMC: "dsm" (denoising score
     matching) and "nce" (noise-contrastive estimation against a diagonal Gaussian fitted to the first
     batch, params["noise"], with a learned log-normaliser params["log_normalizer"]);
  2. one optax step on the trainable parts (the energy's params, and NCE's log-normaliser).
The buffer and NCE's noise are not trained: they are state that rides in the params dict so the loop
checkpoints it (so train.ema_decay must be 0 with a buffer: an average of chain states is no chain).

Non-finite chains: `chain_grad_norm` (mean |grad_x E| along the chains) is logged, and the step's loss
is NaN whenever it is not finite, so the loop stops with the step's number and names the metric.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import optax

from gen_jax import visualize
from gen_jax.data import dequantize
from gen_jax.data.levels import unit_to_levels
from gen_jax.data.spec import DataSpec
from gen_jax.distributions import gaussian
from gen_jax.models.ebm import objectives
from gen_jax.models.ebm import replay_buffer
from gen_jax.models.ebm.energy_nets import ConvEnergy, MLPEnergy
from gen_jax.models.ebm.langevin import langevin_chain, uniform_on_box
from gen_jax.models.ebm.model import EnergyModel
from gen_jax.train.optimizer import make_optimizer
from gen_jax.train.task import Task

OBJECTIVES = ("langevin", "dsm", "nce")
CHAINS = ("persistent", "short_run")


def ebm_task(model: EnergyModel, spec: DataSpec, optimizer: optax.GradientTransformation, *,
             objective: str = "langevin", chains: str = "persistent", buffer_size: int = 10_000,
             reinit_prob: float = 0.05, energy_l2: float = 0.0, dsm_sigma: float = 0.1,
             sample_steps: int | None = None) -> Task:
  if objective not in OBJECTIVES:
    raise ValueError(f"ebm.objective must be one of {OBJECTIVES}, got {objective!r}")
  if chains not in CHAINS:
    raise ValueError(f"ebm.chains must be one of {CHAINS}, got {chains!r}")
  images = spec.num_levels is not None
  persistent = objective == "langevin" and chains == "persistent"
  domain = tuple(model.domain)

  def model_space(batch, rng):
    return dequantize.uniform_dequantize(rng, batch, spec.num_levels) if images else batch

  def energy_fn(variables):
    return lambda x: model.apply(variables, x, method=model.energy)

  def advance_spectral_norm(variables, x):
    """One power-iteration step of every spectrally normalised kernel (a no-op without spectral norm)."""
    if "batch_stats" not in variables:
      return variables
    _, updates = model.apply(variables, x, True, mutable=["batch_stats"])
    return {**variables, "batch_stats": updates["batch_stats"]}

  def init(rng, batch):
    model_rng, buffer_rng, data_rng = jax.random.split(rng, 3)
    x = model_space(batch, data_rng)
    params = {"model": model.init(model_rng, x)}
    if persistent:
      params["buffer"] = replay_buffer.init_replay_buffer(buffer_rng, buffer_size, spec.event_shape, domain)
    if objective == "nce":
      params["noise"] = {"mean": jnp.mean(x, axis=0), "std": jnp.std(x, axis=0) + 1e-3}
      params["log_normalizer"] = jnp.zeros((), jnp.float32)
    return params

  def trainable(params):
    out = {"model": params["model"]["params"]}
    if objective == "nce":
      out["log_normalizer"] = params["log_normalizer"]
    return out

  def init_opt_state(params):
    return optimizer.init(trainable(params))

  def update(params, opt_state, batch, rng, step):
    del step
    data_rng, start_rng, chain_rng, loss_rng = jax.random.split(rng, 4)
    x = model_space(batch, data_rng)
    variables = advance_spectral_norm(params["model"], x)
    new_params, chain_metrics = dict(params), {}
    if objective == "langevin":
      if persistent:
        starts, indices = replay_buffer.draw_chain_starts(params["buffer"], start_rng, x.shape[0], reinit_prob,
                                                          domain)
      else:
        starts = uniform_on_box(start_rng, x.shape, domain)
      result = langevin_chain(energy_fn(variables), starts, chain_rng, num_steps=model.langevin_steps,
                              step_size=model.step_size, noise_scale=model.noise_scale, domain=domain,
                              unroll=model.unroll_langevin)
      negatives = jax.lax.stop_gradient(result.x)
      if persistent:
        new_params["buffer"] = replay_buffer.store_chains(params["buffer"], indices, negatives)
      chain_metrics["chain_grad_norm"] = result.grad_norm

    def loss_fn(parts):
      energy = energy_fn({**variables, "params": parts["model"]})
      if objective == "langevin":
        e_data, e_neg = jnp.split(energy(jnp.concatenate([x, negatives])), 2)
        loss = objectives.maximum_likelihood_loss(e_data, e_neg, energy_l2)
        return loss, {"energy_data": jnp.mean(e_data), "energy_samples": jnp.mean(e_neg)}
      if objective == "dsm":
        return objectives.denoising_score_matching_loss(energy, x, loss_rng, dsm_sigma), {}
      noise = params["noise"]
      y = noise["mean"] + noise["std"] * jax.random.normal(loss_rng, x.shape)
      log_q = lambda z: gaussian.sum_per_example(gaussian.log_prob(z, noise["mean"], jnp.log(noise["std"])))
      log_model = lambda z: -energy(z) - parts["log_normalizer"]
      loss = objectives.noise_contrastive_loss(log_model(x), log_q(x), log_model(y), log_q(y))
      return loss, {"log_normalizer": parts["log_normalizer"]}

    (loss, metrics), grads = jax.value_and_grad(loss_fn, has_aux=True)(trainable(params))
    updates, opt_state = optimizer.update(grads, opt_state, trainable(params))
    parts = optax.apply_updates(trainable(params), updates)
    new_params["model"] = {**variables, "params": parts["model"]}
    if objective == "nce":
      new_params["log_normalizer"] = parts["log_normalizer"]
    if chain_metrics:  # a diverged chain stops the run even where the energies still look finite
      loss = jnp.where(jnp.isfinite(chain_metrics["chain_grad_norm"]), loss, jnp.nan)
    return new_params, opt_state, loss, {**metrics, **chain_metrics, "grad_norm": optax.tree.norm(grads)}

  def log_likelihood(params, batch, rng):
    del rng
    return model.apply(params["model"], batch, method=model.log_prob)

  def evaluate(params, batch, rng):
    out = {"energy": model.apply(params["model"], model_space(batch, rng), method=model.energy)}
    if not images and tuple(spec.event_shape) == (2,):
      out["nll"] = -log_likelihood(params, batch, rng)
    return out

  def sample(params, rng, num):
    y = model.apply(params["model"], rng, num, sample_steps, method=model.sample)
    return unit_to_levels(y, spec.num_levels) if images else y

  def figures(params, rng, examples):
    del rng, examples
    if not (images and persistent):
      return {}
    states = np.asarray(unit_to_levels(params["buffer"][:64], spec.num_levels))
    return {"replay_buffer": visualize.image_grid(states, spec.num_levels, columns=8)}

  log_likelihoods = {} if images else {"exact": log_likelihood}
  return Task(model=model, init=init, loss=None, evaluate=evaluate, sample=sample, figures=figures,
              log_likelihoods=log_likelihoods, update=update, init_opt_state=init_opt_state)


def ebm_model(event_shape, architecture: str = "mlp", hidden_sizes=(128, 128), channels=(32, 64),
              spectral_norm: bool = False, domain=None, langevin_steps: int = 60, step_size: float = 0.01,
              noise_scale: float = 0.1414, grid_size: int = 512,
              unroll_langevin: bool = False) -> EnergyModel:
  """An `EnergyModel` from config fields: architecture "mlp" (vectors) or "conv" (images); the domain
  defaults to [0, 1] for images (dequantized levels) and [-5, 5] for vectors."""
  event_shape = tuple(event_shape)
  if architecture == "mlp":
    network = MLPEnergy(tuple(hidden_sizes), spectral_norm=spectral_norm)
  elif architecture == "conv":
    network = ConvEnergy(tuple(channels), spectral_norm=spectral_norm)
  else:
    raise ValueError(f"model.architecture must be 'mlp' or 'conv', got {architecture!r}")
  if domain is None:
    domain = (0.0, 1.0) if len(event_shape) == 3 else (-5.0, 5.0)
  return EnergyModel(event_shape=event_shape, network=network, domain=tuple(float(d) for d in domain),
                     langevin_steps=langevin_steps, step_size=step_size, noise_scale=noise_scale,
                     grid_size=grid_size, unroll_langevin=unroll_langevin)


def build_ebm_task(config: ml_collections.ConfigDict, model: EnergyModel, spec: DataSpec) -> Task:
  """config.ebm: objective, chains, buffer_size, reinit_prob, energy_l2, dsm_sigma, sample_steps;
  config.optim as every family's (make_optimizer)."""
  ebm = config.get("ebm", ml_collections.ConfigDict())
  objective, chains = ebm.get("objective", "langevin"), ebm.get("chains", "persistent")
  if objective == "langevin" and chains == "persistent" and config.train.ema_decay > 0:
    raise ValueError("persistent chains need train.ema_decay = 0: the EMA would average the replay buffer's "
                     f"chain states (got ema_decay={config.train.ema_decay})")
  if spec.num_levels is not None and tuple(model.domain) != (0.0, 1.0):
    raise ValueError(f"an image EBM lives on dequantized levels in [0, 1]: expected model.domain (0, 1), "
                     f"got {model.domain}")
  return ebm_task(model, spec, make_optimizer(config.optim, config.train.num_steps), objective=objective,
                  chains=chains, buffer_size=ebm.get("buffer_size", 10_000),
                  reinit_prob=ebm.get("reinit_prob", 0.05), energy_l2=ebm.get("energy_l2", 0.0),
                  dsm_sigma=ebm.get("dsm_sigma", 0.1), sample_steps=ebm.get("sample_steps", None))
