"""The diffusion family on the training skeleton: model builder, objective, figures, estimators.

Objectives (config.diffusion.objective):
  "simple"  Ho et al.'s L_simple, the mean squared error of the prediction target (DDPM);
  "elbo"    the variational bound itself, in bits/dim for images (VDM trains on it; a learned
            schedule needs it);
  "edm"     EDM's lambda(sigma)-weighted denoising loss at ln sigma ~ N(log_sigma_mean,
            log_sigma_std^2) (Karras et al. 2022; `edm`), with model.prediction "edm" its
            preconditioning.
A denoiser with model.num_classes > 0 makes the task class-conditional (`Task.uses_labels`: batches
{"data", "label"}): it trains with each label replaced by the null label with probability
label_dropout (classifier-free guidance, Ho & Salimans 2022), samples the classes in turn with
guidance_scale, and evaluates the bound of p(x | label) on the true labels. Its likelihood estimators
take labelled batches (log p(x | label)) or data alone (the null label: log p(x)); its latent space,
denoiser and figures' inpainting are the null label's (the unconditional model).
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
from gen_jax.models.diffusion import edm
from gen_jax.models.diffusion import figures as figures_lib
from gen_jax.models.diffusion import likelihood
from gen_jax.models.diffusion import samplers
from gen_jax.models.diffusion.diffusion import GaussianDiffusion
from gen_jax.models.diffusion.schedules import make_schedule
from gen_jax.nn import TimeConditionedMLP, UNet
from gen_jax.nn.label_embedding import drop_labels, null_labels
from gen_jax.train.config_section import refuse_moved, section_options
from gen_jax.train.optimizer import make_optimizer
from gen_jax.train.task import LatentSpace, Task, gradient_update

OBJECTIVES = ("simple", "elbo", "edm")


def diffusion_model(event_shape, denoiser: str = "unet", schedule: str = "linear_betas",
                    num_timesteps: int = 1000, log_snr_max: float = 13.3, log_snr_min: float = -5.0,
                    prediction: str = "eps", num_levels: int | None = None, sigma_data: float = edm.SIGMA_DATA,
                    **denoiser_options) -> GaussianDiffusion:
  """A `GaussianDiffusion` from config fields.

  Args:
    event_shape: (H, W, C) or (D,).
    denoiser: "unet" (`nn.UNet`, options channels, channel_multipliers, num_res_blocks,
      attention_resolutions, dropout, num_groups) or "mlp" (`nn.TimeConditionedMLP`, options
      hidden_sizes, embedding_dim); both take num_classes (> 0: class-conditional).
    schedule: a name of `schedules.SCHEDULES`.
    num_timesteps: discrete schedules: T, their number of states; continuous ones: transitions of
      the bound, 0 for continuous time.
    log_snr_max, log_snr_min: the log-SNR range of continuous schedules.
    prediction: "eps", "x0", "v" or "edm".
    num_levels: L for images, None for vectors.
    sigma_data: EDM's data standard deviation (prediction "edm", objective "edm").
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
                           num_timesteps=None if discrete else num_timesteps, sigma_data=sigma_data)


def diffusion_task(model: GaussianDiffusion, spec: DataSpec, optimizer: optax.GradientTransformation,
                   objective: str = "simple", sample_steps: int | None = None, sample_eta: float | None = None,
                   latent_steps: int | None = None, sampler: str = "ddim",
                   log_sigma_mean: float = edm.LOG_SIGMA_MEAN, log_sigma_std: float = edm.LOG_SIGMA_STD,
                   label_dropout: float = 0.1, guidance_scale: float = 1.0) -> Task:
  if objective not in OBJECTIVES:
    raise ValueError(f"diffusion.objective must be one of {OBJECTIVES}, got {objective!r}")
  if objective == "edm" and model.prediction != "edm" and model.num_transitions:
    raise ValueError("diffusion.objective 'edm' draws noise levels off any time grid: it needs "
                     f"model.prediction 'edm' or a continuous-time model (num_timesteps 0), got "
                     f"prediction {model.prediction!r} with {model.num_transitions} transitions")
  if not log_sigma_std > 0:
    raise ValueError(f"diffusion.log_sigma_std must be > 0, got {log_sigma_std}")
  conditional = model.num_classes > 0
  if not 0 <= label_dropout < 1:
    raise ValueError(f"diffusion.label_dropout must lie in [0, 1), got {label_dropout}")
  if not conditional and guidance_scale != 1:
    raise ValueError(f"diffusion.guidance_scale={guidance_scale} needs a class-conditional denoiser "
                     "(model.num_classes > 0); leave it 1")
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

  def data_and_labels(batch):
    """(data, labels [B] or None): a conditional task's batches are {"data", "label"}."""
    return (batch["data"], batch["label"]) if conditional else (batch, None)

  def init(rng, batch):
    params_rng, dropout_rng, elbo_rng = jax.random.split(rng, 3)
    x, labels = data_and_labels(batch)
    return {"model": model.init({"params": params_rng, "dropout": dropout_rng}, x, elbo_rng, False, labels,
                                method=model.elbo)}, {}

  def loss(params, state, batch, rng, step):
    del step
    dropout_rng, loss_rng, label_rng = jax.random.split(rng, 3)
    rngs = {"dropout": dropout_rng}
    batch, labels = data_and_labels(batch)
    if conditional:  # classifier-free guidance's training: the null label with probability label_dropout
      labels = drop_labels(label_rng, labels, model.num_classes, label_dropout)
    if objective in ("simple", "edm"):
      if objective == "simple":
        per_example = model.apply(params["model"], batch, loss_rng, True, labels, method=model.simple_loss, rngs=rngs)
      else:
        per_example = model.apply(params["model"], batch, loss_rng, True, labels, log_sigma_mean, log_sigma_std,
                                  method=model.edm_loss, rngs=rngs)
      value = jnp.mean(per_example)
      return value, ({f"{objective}_loss": value}, state)
    parts = model.apply(params["model"], batch, loss_rng, True, labels, method=model.elbo, rngs=rngs)
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
    batch, labels = data_and_labels(batch)
    parts = likelihood.elbo_over_steps(model, params["model"], batch, rng, num_step_samples=1, labels=labels)
    metrics = {"nll": -parts["elbo"], "prior": parts["prior"], "diffusion": parts["diffusion"],
               "reconstruction": parts["reconstruction"]}
    if images:
      metrics["bpd"] = bits_per_dim(-parts["elbo"], num_dims)
    return metrics

  def sample(params, rng, num):  # a conditional model: the classes in turn, guided
    return model.apply(params["model"], rng, num, sample_steps, sample_eta, sampler=sampler,
                       guidance_scale=guidance_scale if conditional else 1.0, method=model.sample)

  def scored(batch):
    """(data, labels): a labelled batch's labels, or for data alone the null label of a conditional model."""
    if isinstance(batch, dict):
      return batch["data"], batch["label"]
    return batch, (null_labels(batch.shape[0], model.num_classes) if conditional else None)

  def log_elbo(params, batch, rng, num_step_samples=None, strata="geometric"):
    x, labels = scored(batch)
    return likelihood.elbo_over_steps(model, params["model"], x, rng, num_step_samples, strata, labels)["elbo"]

  def log_probability_flow(params, batch, rng, divergence="hutchinson", **solver_options):
    x, labels = scored(batch)
    # The solver's `method` option would collide with `apply`'s own `method` keyword: bind it here.
    return model.apply(params["model"], x, rng, method=lambda m, x, r: m.log_prob(x, r, divergence, labels,
                                                                               **solver_options))

  def figures(params, rng, examples):
    if not images:
      return {}
    return figures_lib.denoising_and_inpainting(model, params["model"], rng, jnp.asarray(examples[:8]), spec.num_levels,
                                                sample_steps, figure_eta, null_label=model.num_classes if conditional else None)

  if latent_steps is None:  # 50 DDIM steps, or the discrete chain's transitions where fewer
    latent_steps = min(50, model.num_transitions) if model.num_transitions else 50
  to_data = (lambda c: centres_to_level_values(c, spec.num_levels)) if images else (lambda x: x)

  def prior(rng, num):  # z_1 ~ N(0, I), where sampling starts
    return jax.random.normal(rng, (num, *spec.event_shape), jnp.float32)

  def unconditional(batch):  # a conditional model's null label [batch], None for an unconditional one
    return null_labels(batch, model.num_classes) if conditional else None

  def decode(params, z):  # `latent_steps` deterministic DDIM steps from z_1
    return to_data(model.apply(params["model"], z, latent_steps, unconditional(z.shape[0]), method=model.ddim_decode))

  def encode(params, x):  # DDIM inversion in `latent_steps` steps
    return model.apply(params["model"], x, latent_steps, unconditional(x.shape[0]), method=model.ddim_encode)

  def denoise(params, y, noise_std):
    if images:  # data scale (levels as real numbers) -> [-1, 1]: noise_std scales by 2 / (L - 1)
      y, noise_std = levels_to_centres(y, spec.num_levels), noise_std * 2.0 / (spec.num_levels - 1)
    return to_data(model.apply(params["model"], y, noise_std, unconditional(y.shape[0]),
                               method=model.denoise_observation))

  return Task(model=model, init=init, optimizer=optimizer, update=gradient_update(loss, optimizer), loss=loss,
              evaluate=evaluate, sample=sample, figures=figures, uses_labels=conditional,
              log_likelihoods={"elbo": log_elbo, "probability_flow": log_probability_flow},
              latent=LatentSpace(prior=prior, decode=decode, encode=encode), denoise=denoise)


def build_diffusion_task(config: ml_collections.ConfigDict, model: GaussianDiffusion, spec: DataSpec) -> Task:
  """config.diffusion: the keyword options of `diffusion_task` (objective, sampler, sample_steps,
  sample_eta, latent_steps, log_sigma_mean, log_sigma_std, label_dropout, guidance_scale)."""
  refuse_moved(config, {"loss": "diffusion.objective", "sampler": "diffusion.sampler / sample_steps / sample_eta"})
  return diffusion_task(model, spec, make_optimizer(config.optim, config.train.num_steps),
                        **section_options(config, "diffusion", diffusion_task))
