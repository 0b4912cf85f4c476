"""The EBM family on the training skeleton: one compiled step for each objective, Langevin inside it.

The loss (`Task.loss`, descended by `gradient_update`) on a batch x (images: dequantized to
y = (x + u) / L in [0, 1]^D):
  0. spectral norm (if on): one power-iteration step on the data, carried in state's 'batch_stats';
  1. objective "langevin": negatives by `langevin_steps` Langevin steps (one `lax.scan`, on the energy
     with its params under stop_gradient) from uniform noise on the box ("short_run" chains, Nijkamp
     et al. 2019) or from the replay buffer ("persistent" chains, Du & Mordatch 2019; the buffer is
     state["buffer"], checkpointed with the run); loss = `maximum_likelihood_loss`. Objectives without
     MCMC: "dsm" (denoising score matching) and "nce" (noise-contrastive estimation against a diagonal
     Gaussian fitted to the first batch, state["noise"], with a learned log-normaliser
     params["log_normalizer"]).
Trained (params, averaged by the EMA): the energy's params and NCE's log-normaliser. Carried (state,
never averaged): spectral norm's estimates, the replay buffer, NCE's noise.

Non-finite chains: `chain_grad_norm` (mean |grad_x E| along the chains) is logged, and the step's loss
is NaN whenever it is not finite, so the loop stops with the step's number and names the metric.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from gen_jax.data import dequantize
from gen_jax.data.levels import unit_to_levels
from gen_jax.data.spec import DataSpec
from gen_jax.distributions import gaussian
from gen_jax.models.ebm import figures as figures_lib
from gen_jax.models.ebm import objectives
from gen_jax.models.ebm import replay_buffer
from gen_jax.models.ebm.energy_nets import ConvEnergy, MLPEnergy
from gen_jax.models.ebm.langevin import langevin_chain, uniform_on_box
from gen_jax.models.ebm.model import EnergyModel
from gen_jax.train.config_section import section_options
from gen_jax.train.optimizer import make_optimizer
from gen_jax.train.task import Task, gradient_update, merge_variables, split_variables

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
    params, state = split_variables({"model": model.init(model_rng, x)})
    if persistent:
      state["buffer"] = replay_buffer.init_replay_buffer(buffer_rng, buffer_size, spec.event_shape, domain)
    if objective == "nce":
      state["noise"] = {"mean": jnp.mean(x, axis=0), "std": jnp.std(x, axis=0) + 1e-3}
      params["log_normalizer"] = jnp.zeros((), jnp.float32)
    return params, state

  def loss(params, state, batch, rng, step):
    del step
    data_rng, start_rng, chain_rng, loss_rng = jax.random.split(rng, 4)
    x = model_space(batch, data_rng)
    frozen = merge_variables(jax.lax.stop_gradient(params), state)["model"]
    carried = advance_spectral_norm(frozen, x)
    state = dict(state)
    if "batch_stats" in carried:
      state["model"] = {"batch_stats": carried["batch_stats"]}
    energy = energy_fn({**carried, "params": params["model"]["params"]})
    if objective == "langevin":
      if persistent:
        starts, indices = replay_buffer.draw_chain_starts(state["buffer"], start_rng, x.shape[0], reinit_prob,
                                                          domain)
      else:
        starts = uniform_on_box(start_rng, x.shape, domain)
      chain = langevin_chain(energy_fn(carried), starts, chain_rng, num_steps=model.langevin_steps,
                             step_size=model.step_size, noise_scale=model.noise_scale, domain=domain,
                             unroll=model.unroll_langevin)
      negatives = jax.lax.stop_gradient(chain.x)
      if persistent:
        state["buffer"] = replay_buffer.store_chains(state["buffer"], indices, negatives)
      e_data, e_neg = jnp.split(energy(jnp.concatenate([x, negatives])), 2)
      value = objectives.maximum_likelihood_loss(e_data, e_neg, energy_l2)
      # a diverged chain stops the run even where the energies still look finite
      value = jnp.where(jnp.isfinite(chain.grad_norm), value, jnp.nan)
      metrics = {"energy_data": jnp.mean(e_data), "energy_samples": jnp.mean(e_neg),
                 "chain_grad_norm": chain.grad_norm}
    elif objective == "dsm":
      value, metrics = objectives.denoising_score_matching_loss(energy, x, loss_rng, dsm_sigma), {}
    else:
      noise = state["noise"]
      y = noise["mean"] + noise["std"] * jax.random.normal(loss_rng, x.shape)
      log_q = lambda z: gaussian.sum_per_example(gaussian.log_prob(z, noise["mean"], jnp.log(noise["std"])))
      log_model = lambda z: -energy(z) - params["log_normalizer"]
      value = objectives.noise_contrastive_loss(log_model(x), log_q(x), log_model(y), log_q(y))
      metrics = {"log_normalizer": params["log_normalizer"]}
    return value, (metrics, state)

  def log_likelihood(variables, batch, rng):
    del rng
    return model.apply(variables["model"], batch, method=model.log_prob)

  def evaluate(variables, batch, rng):
    out = {"energy": model.apply(variables["model"], model_space(batch, rng), method=model.energy)}
    if not images and tuple(spec.event_shape) == (2,):
      out["nll"] = -log_likelihood(variables, batch, rng)
    return out

  def sample(variables, rng, num):
    y = model.apply(variables["model"], rng, num, sample_steps, method=model.sample)
    return unit_to_levels(y, spec.num_levels) if images else y

  def figures(variables, rng, examples):
    del rng, examples
    if not (images and persistent):
      return {}
    return figures_lib.replay_buffer_grid(variables["buffer"], spec.num_levels)

  log_likelihoods = {} if images else {"exact": log_likelihood}
  return Task(model=model, init=init, optimizer=optimizer, update=gradient_update(loss, optimizer),
              evaluate=evaluate, sample=sample, figures=figures, log_likelihoods=log_likelihoods, loss=loss)


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
  """config.ebm: the keyword options of `ebm_task`; config.optim as every family's (make_optimizer)."""
  if spec.num_levels is not None and tuple(model.domain) != (0.0, 1.0):
    raise ValueError(f"an image EBM lives on dequantized levels in [0, 1]: expected model.domain (0, 1), "
                     f"got {model.domain}")
  return ebm_task(model, spec, make_optimizer(config.optim, config.train.num_steps),
                  **section_options(config, "ebm", ebm_task))
