"""The diffusion family on the training skeleton: model builder, objective, figures, estimators.

Objectives (config.diffusion.objective):
  "simple"  Ho et al.'s L_simple, the mean squared error of the prediction target (DDPM);
  "elbo"    the variational bound itself, in bits/dim for images (VDM trains on it; a learned
            schedule needs it).
Evaluation always reports the ELBO (nats, bits/dim for images) and its three terms, from one
unbiased draw per example, independent across examples; `gen_jax.eval.likelihood` adds the test-set estimators
  "elbo"              diffusion term averaged over K transitions per example (option
                      num_step_samples; default all T transitions for discrete time, 100 times for
                      continuous time);
  "probability_flow"  the probability-flow ODE log-likelihood (options divergence "hutchinson" or
                      "exact", method, rtol, atol, num_steps), dequantized for images.
Its latent space (`Task.latent`) is the DDIM latent z_1: `latent_steps` (default 50) deterministic DDIM steps decode
it, as many inverted steps encode data (DDIM inversion); `Task.denoise` is the denoiser at the noise
level of the observation. A run draws its samples with config.diffusion's sampler ("ddim", the default,
"dpm_solver_2m": DPM-Solver++(2M), `samplers.run_dpm_solver`, or "edm_heun": EDM's Heun sampler,
`edm_sampler.run_edm_heun`), sample_steps and sample_eta (DDIM's
eta, None = 1: ancestral; None or 0 with "dpm_solver_2m") and writes two figures for images: the
denoised estimate x_hat along the sampling chain, and inpainting of the bottom half of test images
(both by DDIM(sample_eta), whichever the sampler).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import ml_collections
import optax

from gen_jax.data.levels import bits_per_dim, centres_to_level_values, levels_to_centres
from gen_jax.data.spec import DataSpec
from gen_jax.models.diffusion import figures as figures_lib
from gen_jax.models.diffusion import likelihood
from gen_jax.models.diffusion import samplers
from gen_jax.models.diffusion.diffusion import GaussianDiffusion
from gen_jax.models.diffusion.schedules import make_schedule
from gen_jax.nn import TimeConditionedMLP, UNet
from gen_jax.train.config_section import refuse_moved, section_options
from gen_jax.train.optimizer import make_optimizer
from gen_jax.train.task import LatentSpace, Task, gradient_update

OBJECTIVES = ("simple", "elbo")


def diffusion_model(event_shape, denoiser: str = "unet", schedule: str = "linear_betas",
                    num_timesteps: int = 1000, log_snr_max: float = 13.3, log_snr_min: float = -5.0,
                    prediction: str = "eps", num_levels: int | None = None, **denoiser_options
                    ) -> GaussianDiffusion:
  """A `GaussianDiffusion` from config fields.

  Args:
    event_shape: (H, W, C) or (D,).
    denoiser: "unet" (`nn.UNet`, options channels, channel_multipliers, num_res_blocks,
      attention_resolutions, dropout, num_groups) or "mlp" (`nn.TimeConditionedMLP`, options
      hidden_sizes, embedding_dim).
    schedule: a name of `schedules.SCHEDULES`.
    num_timesteps: discrete schedules: T, their number of states; continuous ones: transitions of
      the bound, 0 for continuous time.
    log_snr_max, log_snr_min: the log-SNR range of continuous schedules.
    prediction: "eps", "x0" or "v".
    num_levels: L for images, None for vectors.
  """
  if denoiser == "unet":
    network = UNet(**denoiser_options)
  elif denoiser == "mlp":
    network = TimeConditionedMLP(**denoiser_options)
  else:
    raise ValueError(f"model.denoiser must be 'unet' or 'mlp', got {denoiser!r}")
  discrete = schedule.endswith("_betas")
  return GaussianDiffusion(event_shape=tuple(event_shape), denoiser=network,
                           schedule=make_schedule(schedule, num_timesteps, log_snr_max, log_snr_min),
                           num_levels=num_levels, prediction=prediction,
                           num_timesteps=None if discrete else num_timesteps)


def diffusion_task(model: GaussianDiffusion, spec: DataSpec, optimizer: optax.GradientTransformation,
                   objective: str = "simple", sample_steps: int | None = None, sample_eta: float | None = None,
                   latent_steps: int | None = None, sampler: str = "ddim") -> Task:
  if objective not in OBJECTIVES:
    raise ValueError(f"diffusion.objective must be one of {OBJECTIVES}, got {objective!r}")
  if sampler not in samplers.SAMPLERS:
    raise ValueError(f"diffusion.sampler must be one of {samplers.SAMPLERS}, got {sampler!r}")
  if sampler != "ddim" and sample_eta is not None and sample_eta != 0:
    raise ValueError(f"diffusion.sample_eta={sample_eta} is DDIM's noise scale; diffusion.sampler "
                     f"{sampler!r} is deterministic: set sample_eta None or 0")
  figure_eta = 1.0 if sample_eta is None else sample_eta
  if (model.num_levels is None) != (spec.num_levels is None) or (
      model.num_levels is not None and model.num_levels != spec.num_levels):
    raise ValueError(f"model.num_levels={model.num_levels} must equal the data's num_levels={spec.num_levels}")
  num_dims = math.prod(spec.event_shape)
  images = spec.num_levels is not None

  def init(rng, batch):
    params_rng, dropout_rng, elbo_rng = jax.random.split(rng, 3)
    return {"model": model.init({"params": params_rng, "dropout": dropout_rng}, batch, elbo_rng,
                                method=model.elbo)}, {}

  def loss(params, state, batch, rng, step):
    del step
    dropout_rng, loss_rng = jax.random.split(rng)
    rngs = {"dropout": dropout_rng}
    if objective == "simple":
      value = jnp.mean(model.apply(params["model"], batch, loss_rng, True, method=model.simple_loss, rngs=rngs))
      return value, ({"simple_loss": value}, state)
    parts = model.apply(params["model"], batch, loss_rng, True, method=model.elbo, rngs=rngs)
    metrics = {name: jnp.mean(value) for name, value in parts.items()}
    value = -metrics["elbo"]
    if images:  # a bits/dim-sized loss for images (its scale independent of the resolution), nats for vectors
      value = metrics["bpd"] = bits_per_dim(value, num_dims)
    return value, (metrics, state)

  def evaluate(params, batch, rng):
    # One independent time per example. `elbo`'s antithetic times (u + i / B) couple a batch's
    # examples: in a split's last, padded batch the real ones share a fraction of [0, 1) and one u
    # (on digits, 297 examples padded to 500, the VDM run logged 1.37 bits/dim for a bound whose
    # 100-time estimate is 1.87).
    parts = likelihood.elbo_over_steps(model, params["model"], batch, rng, num_step_samples=1)
    metrics = {"nll": -parts["elbo"], "prior": parts["prior"], "diffusion": parts["diffusion"],
               "reconstruction": parts["reconstruction"]}
    if images:
      metrics["bpd"] = bits_per_dim(-parts["elbo"], num_dims)
    return metrics

  def sample(params, rng, num):
    return model.apply(params["model"], rng, num, sample_steps, sample_eta, sampler=sampler, method=model.sample)

  def log_elbo(params, batch, rng, num_step_samples=None, strata="geometric"):
    return likelihood.elbo_over_steps(model, params["model"], batch, rng, num_step_samples, strata)["elbo"]

  def log_probability_flow(params, batch, rng, divergence="hutchinson", **solver_options):
    # The solver's `method` option would collide with `apply`'s own `method` keyword: bind it here.
    return model.apply(params["model"], batch, rng, method=lambda m, x, r: m.log_prob(x, r, divergence,
                                                                                   **solver_options))

  def figures(params, rng, examples):
    if not images:
      return {}
    return figures_lib.denoising_and_inpainting(model, params["model"], rng, jnp.asarray(examples[:8]), spec.num_levels,
                                                sample_steps, figure_eta)

  if latent_steps is None:  # 50 DDIM steps, or the discrete chain's transitions where fewer
    latent_steps = min(50, model.num_transitions) if model.num_transitions else 50
  to_data = (lambda c: centres_to_level_values(c, spec.num_levels)) if images else (lambda x: x)

  def prior(rng, num):  # z_1 ~ N(0, I), where sampling starts
    return jax.random.normal(rng, (num, *spec.event_shape), jnp.float32)

  def decode(params, z):  # `latent_steps` deterministic DDIM steps from z_1
    return to_data(model.apply(params["model"], z, latent_steps, method=model.ddim_decode))

  def encode(params, x):  # DDIM inversion in `latent_steps` steps
    return model.apply(params["model"], x, latent_steps, method=model.ddim_encode)

  def denoise(params, y, noise_std):
    if images:  # data scale (levels as real numbers) -> [-1, 1]: noise_std scales by 2 / (L - 1)
      y, noise_std = levels_to_centres(y, spec.num_levels), noise_std * 2.0 / (spec.num_levels - 1)
    return to_data(model.apply(params["model"], y, noise_std, method=model.denoise_observation))

  return Task(model=model, init=init, optimizer=optimizer, update=gradient_update(loss, optimizer), loss=loss,
              evaluate=evaluate, sample=sample, figures=figures,
              log_likelihoods={"elbo": log_elbo, "probability_flow": log_probability_flow},
              latent=LatentSpace(prior=prior, decode=decode, encode=encode), denoise=denoise)


def build_diffusion_task(config: ml_collections.ConfigDict, model: GaussianDiffusion, spec: DataSpec) -> Task:
  """config.diffusion: the keyword options of `diffusion_task` (objective, sampler, sample_steps,
  sample_eta, latent_steps)."""
  refuse_moved(config, {"loss": "diffusion.objective", "sampler": "diffusion.sampler / sample_steps / sample_eta"})
  return diffusion_task(model, spec, make_optimizer(config.optim, config.train.num_steps),
                        **section_options(config, "diffusion", diffusion_task))
