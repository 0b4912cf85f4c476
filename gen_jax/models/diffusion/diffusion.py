"""A Gaussian diffusion model (DDPM / VDM) as one Flax module: denoiser + noise schedule.

The same module is DDPM (Ho et al. 2020) with a discrete schedule (`schedules.DiscreteSchedule`, T
states) and VDM (Kingma et al. 2021) with a continuous log-SNR schedule (fixed or learned); the
bound and the samplers are those of `elbo`, `process` and `samplers`:

  elbo(x, rng)       one-sample unbiased estimate of the ELBO and its terms, nats per example:
                     discrete time (a uniformly drawn transition times their number) or, with
                     num_timesteps = 0 and a continuous schedule, VDM's continuous-time bound;
  elbo_terms(x, rng, i)  the bound's diffusion term at transition i (for the full sum over steps,
                     `gen_jax.models.diffusion.likelihood.elbo_over_steps`);
  simple_loss(x, rng, train)  Ho et al.'s L_simple: || target - output ||^2 per example, with the
                     target of the prediction parameterisation (eps, x0, v or edm) and t uniform;
  edm_loss(x, rng, train)  EDM's objective (Karras et al. 2022): lambda(sigma) ||D - x||^2 per example at
                     ln sigma ~ N(P_mean, P_std^2) (`edm`; the "edm" prediction is its preconditioning);
  denoise(z, t, train)   (x_hat, eps_hat);  log_snr(t);
  log_prob(x, rng, divergence, **solver_options)  log P(x) in nats of x as stored by the probability-
                     flow ODE (a dequantization bound for images; `likelihood`), as every family's
                     `log_prob` takes `(x, ...)` through `model.apply(variables, ..., method=...)`;
  sample(rng, num, num_steps, eta, clip_denoised, sampler)  from N(0, I): DDIM(eta) / ancestral
                     (sampler "ddim", eta = 1 by default), DPM-Solver++(2M) ("dpm_solver_2m") or
                     EDM's Heun ("edm_heun", Karras et al. 2022, `edm_sampler`);
  edit(rng, x, t_start, num_steps, mask, eta)  noise x to t_start and run the sampler back to 0:
                     denoising (SDEdit, Meng et al. 2022) or, with a mask, inpainting by replacement.

Data: images enter as stored, integer levels x in {0, ..., L-1} (uint8 [B, H, W, C]) and the model
works on their bin centres 2 x / (L - 1) - 1 in [-1, 1]; vectors (num_levels None) are float32
[B, D] used as they are. Samples come back in the same form (levels, or float32 vectors).

Class conditioning and classifier-free guidance (Ho & Salimans 2022): a denoiser with num_classes > 0
(`nn.UNet`, `nn.TimeConditionedMLP`) takes labels [B] in {0, ..., K} (K = num_classes, the null label:
the unconditional model); every method takes `labels`, and `denoise` / `sample` a guidance_scale s that
combines the conditional and null-label outputs in one batched network evaluation,
output = uncond + s (cond - uncond) (`nn.guided_output`; every prediction is affine in the
output, so this is the guided eps, x_hat and score alike, and every sampler follows it).

The antithetic ("low-discrepancy") time sampling of VDM draws one u ~ U(0, 1) per batch and uses
t_i = (u + i / B) mod 1 for example i: unbiased per example, lower variance for the batch mean.
"""
from __future__ import annotations

from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import checks
from gen_jax.models.diffusion import edm
from gen_jax.models.diffusion import edm_sampler
from gen_jax.models.diffusion import elbo as elbo_lib
from gen_jax.models.diffusion import likelihood
from gen_jax.models.diffusion import process
from gen_jax.models.diffusion import samplers
from gen_jax.models.diffusion.schedules import DiscreteSchedule, LearnedLogSNR, log_snr_and_derivative
from gen_jax.data.levels import centres_to_levels, to_model_space
from gen_jax.distributions import discretized, gaussian
from gen_jax.nn.label_embedding import check_labels, guidance_scale_is_one, guided_output


@jax.custom_vjp
def scale_gradient(x: jax.Array, scale: jax.Array) -> jax.Array:
  """Identity on x whose gradient is multiplied by `scale` (x's shape); no gradient to scale."""
  return x


scale_gradient.defvjp(lambda x, scale: (x, scale), lambda scale, g: (g * scale, jnp.zeros_like(scale)))


def _elbo_keys(rng: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """(time, noise, decoder) keys of one ELBO draw: `elbo` and `prior_and_reconstruction` share them."""
  time_rng, eps_rng, decoder_rng = jax.random.split(rng, 3)
  return time_rng, eps_rng, decoder_rng


def antithetic_times(rng: jax.Array, batch: int) -> jax.Array:
  """t_i = (u + i / B) mod 1, u ~ U(0, 1): each t_i uniform, the batch evenly spread; [B]."""
  u = jax.random.uniform(rng, ())
  return jnp.mod(u + jnp.arange(batch, dtype=jnp.float32) / batch, 1.0)


class GaussianDiffusion(nn.Module):
  """Attributes:
    event_shape: (H, W, C) for images, (D,) for vectors.
    denoiser: a module (z [B, ...], t [B] in [0, 1], train: bool) -> [B, ...] (e.g. `nn.UNet`).
    schedule: a `schedules` dataclass (DiscreteSchedule, LinearLogSNR, CosineLogSNR, LearnedLogSNR).
    num_levels: L for discrete images (uint8 levels), None for continuous vectors.
    prediction: "eps", "x0", "v" or "edm" (`process.PREDICTIONS`; "edm": EDM's preconditioning, `edm`).
    num_timesteps: transitions of the bound. Discrete schedules: None = their own T - 1 transitions
      between the T states. Continuous schedules: 0 = continuous time (VDM's L_inf), T > 0 = T equal
      steps on [0, 1].
    sigma_data: EDM's data standard deviation sigma_d (prediction "edm" and `edm_loss` only).
  """
  event_shape: tuple
  denoiser: nn.Module
  schedule: Any
  num_levels: int | None = None
  prediction: str = "eps"
  num_timesteps: int | None = None
  sigma_data: float = edm.SIGMA_DATA

  def __post_init__(self):
    if self.prediction not in process.PREDICTIONS:
      raise ValueError(f"prediction must be one of {process.PREDICTIONS}, got {self.prediction!r}")
    discrete = isinstance(self.schedule, DiscreteSchedule)
    if discrete and self.num_timesteps not in (None, self.schedule.num_timesteps - 1):
      raise ValueError(f"a discrete schedule of {self.schedule.num_timesteps} states has "
                       f"{self.schedule.num_timesteps - 1} transitions; num_timesteps must be None or "
                       f"that, got {self.num_timesteps}")
    if not discrete and (self.num_timesteps is None or self.num_timesteps < 0):
      raise ValueError(f"a continuous schedule needs num_timesteps >= 0 (0 = continuous time), got "
                       f"{self.num_timesteps}")
    if not self.sigma_data > 0:
      raise ValueError(f"sigma_data must be > 0, got {self.sigma_data}")
    if self.num_levels is not None and not 2 <= self.num_levels <= 256:
      raise ValueError(f"num_levels must be in [2, 256] (or None for vectors), got {self.num_levels}")
    super().__post_init__()

  def setup(self):
    self.schedule_params = self.param("schedule", self.schedule.init)

  # -- the pieces --------------------------------------------------------------------------------

  @property
  def num_transitions(self) -> int:
    """T of the discrete-time bound; 0 for continuous time."""
    if isinstance(self.schedule, DiscreteSchedule):
      return self.schedule.num_timesteps - 1
    return self.num_timesteps

  def time_grid(self) -> np.ndarray:
    """The bound's states t_0 = 0 < ... < t_T = 1 (float32 [T + 1]); continuous time has none."""
    if isinstance(self.schedule, DiscreteSchedule):
      return self.schedule.grid()
    if self.num_timesteps == 0:
      raise ValueError("a continuous-time model (num_timesteps=0) has no time grid")
    return np.linspace(0.0, 1.0, self.num_timesteps + 1, dtype=np.float32)

  def to_model_space(self, x: jax.Array) -> jax.Array:
    """Levels -> bin centres in [-1, 1] for images; vectors checked and returned as float32."""
    return to_model_space(x, self.event_shape, self.num_levels)

  def log_snr(self, t: jax.Array) -> jax.Array:
    return self.schedule.log_snr(self.schedule_params, t)

  def log_snr_and_derivative(self, t: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(lambda(t), dlambda/dt)."""
    return log_snr_and_derivative(self.schedule, self.schedule_params, t)

  @property
  def num_classes(self) -> int:
    """K of a class-conditional denoiser (labels 0..K-1, K = the null label); 0 when unconditional."""
    return getattr(self.denoiser, "num_classes", 0)

  def network_time(self, t: jax.Array, log_snr: jax.Array) -> jax.Array:
    """The denoiser's time input: EDM's c_noise = ln(sigma) / 4 for prediction "edm"; t for a discrete schedule; for a continuous one the position of
    lambda(t) in the configured range, (lambda_max - lambda) / (lambda_max - lambda_min) (= t for
    `LinearLogSNR`), so the network sees the noise level itself and a learned schedule only
    changes which levels the bound weights (VDM conditions on gamma(t) likewise)."""
    if self.prediction == "edm":
      return edm.network_time(log_snr)
    if isinstance(self.schedule, DiscreteSchedule):
      return t
    span = self.schedule.log_snr_max - self.schedule.log_snr_min
    return (self.schedule.log_snr_max - log_snr) / span

  def _network(self, z: jax.Array, t: jax.Array | None, log_snr: jax.Array, train: bool,
               labels: jax.Array | None) -> jax.Array:
    """The denoiser's raw output at z_t (EDM's c_in-scaled input for prediction "edm")."""
    inputs = edm.network_input(z, log_snr, self.sigma_data) if self.prediction == "edm" else z
    time = self.network_time(t, log_snr)
    if labels is None:
      return self.denoiser(inputs, time, train=train)
    return self.denoiser(inputs, time, train=train, labels=labels)

  def denoise(self, z: jax.Array, t: jax.Array | None, train: bool = False, log_snr: jax.Array | None = None,
              labels: jax.Array | None = None, guidance_scale: float = 1.0) -> tuple[jax.Array, jax.Array]:
    """(x_hat, eps_hat) at z_t; t [B] in [0, 1] (log_snr: lambda(t) if already computed; t may then be
    None for prediction "edm" or a continuous schedule). labels [B] for a class-conditional denoiser;
    guidance_scale s != 1 evaluates the conditional and the null-label network in one batch of 2B and
    combines their outputs, uncond + s (cond - uncond)."""
    log_snr = self.log_snr(t) if log_snr is None else log_snr
    if labels is None:
      output = self._network(z, t, log_snr, train, None)
    else:
      network = lambda z, t, log_snr, labels: self._network(z, t, log_snr, train, labels)
      output = guided_output(network, (z, t, log_snr), labels, self.num_classes, guidance_scale)
    return process.predictions(output, z, log_snr, self.prediction, self.sigma_data)

  def __call__(self, x: jax.Array, rng: jax.Array) -> dict[str, jax.Array]:
    return self.elbo(x, rng)

  # -- objectives --------------------------------------------------------------------------------

  def _prior_and_reconstruction(self, x: jax.Array, x_data: jax.Array, rng: jax.Array, train: bool, labels=None):
    """(KL(q(z_1|x) || N(0, I)), log p(x | z_0) at one z_0 ~ q(z_0 | x)), each [B]."""
    batch = x.shape[0]
    log_snr_0, log_snr_1 = self.log_snr(jnp.zeros(())), self.log_snr(jnp.ones(()))
    z_0 = process.diffuse(x, log_snr_0, jax.random.normal(rng, x.shape))
    x_hat, _ = self.denoise(z_0, jnp.zeros((batch,)), train, labels=labels)
    std = elbo_lib.decoder_std(log_snr_0)
    if self.num_levels is None:
      reconstruction = gaussian.sum_per_example(gaussian.log_prob(x, x_hat, jnp.log(std)))
    else:
      reconstruction = gaussian.sum_per_example(
          discretized.discretized_gaussian_log_prob(x_data, x_hat, std, self.num_levels))
    return elbo_lib.prior_kl(x, log_snr_1), reconstruction

  def diffusion_term(self, x: jax.Array, rng: jax.Array, step: jax.Array | None = None,
                     t: jax.Array | None = None, train: bool = False, labels: jax.Array | None = None) -> jax.Array:
    """The diffusion term [B]: at transition `step` [B] (ints in 1..T; discrete time: that KL, not
    scaled by T) or at times t [B] (continuous time: the integrand -lambda'(t)/2 ||eps - eps_hat||^2);
    labels [B] of a class-conditional model."""
    eps = jax.random.normal(rng, x.shape)
    if self.num_transitions == 0:
      log_snr_t, dlog_snr_dt = self.log_snr_and_derivative(t)
      if train and isinstance(self.schedule, LearnedLogSNR):
        log_snr_t, dlog_snr_dt = self._variance_gradient_schedule(x, eps, t, log_snr_t, dlog_snr_dt, labels)
      z_t = process.diffuse(x, log_snr_t, eps)
      _, eps_hat = self.denoise(z_t, t, train, log_snr=log_snr_t, labels=labels)
      return elbo_lib.continuous_diffusion_term(eps, eps_hat, dlog_snr_dt)
    grid = jnp.asarray(self.time_grid())
    t, s = grid[step], grid[step - 1]
    log_snr_t, log_snr_s = self.log_snr(t), self.log_snr(s)
    z_t = process.diffuse(x, log_snr_t, eps)
    _, eps_hat = self.denoise(z_t, t, train, labels=labels)
    return elbo_lib.discrete_diffusion_term(eps, eps_hat, log_snr_s, log_snr_t)

  def _variance_gradient_schedule(self, x, eps, t, log_snr_t, dlog_snr_dt, labels=None):
    """(lambda(t), lambda'(t)) whose learned *shape* s(t) passes the gradient of E[L^2] instead of
    E[L] (VDM, Kingma et al. 2021, sec. 5 and appendix I.2): in continuous time the bound does not
    depend on the shape between fixed endpoints, so the shape is trained to minimise the variance of
    the diffusion term L, while the endpoints and the denoiser follow the bound as usual.

    d E[L^2] / d s = E[2 L dL/ds]: the shape's gradient is scaled per example by 2 L, with L from a
    forward pass without gradient (one extra denoiser evaluation per training step; without dropout,
    so with dropout the scale is that of the deterministic network)."""
    z_t = process.diffuse(x, log_snr_t, eps)
    _, eps_hat = self.denoise(z_t, t, False, log_snr=log_snr_t, labels=labels)
    scale = jax.lax.stop_gradient(2.0 * elbo_lib.continuous_diffusion_term(eps, eps_hat, dlog_snr_dt))
    shape, dshape_dt = jax.jvp(lambda u: self.schedule.shape(self.schedule_params, u), (t,), (jnp.ones_like(t),))
    shape, dshape_dt = scale_gradient(shape, scale), scale_gradient(dshape_dt, scale)
    span = jax.nn.softplus(self.schedule_params["gap"])
    return self.schedule_params["log_snr_max"] - span * shape, -span * dshape_dt

  def elbo(self, x: jax.Array, rng: jax.Array, train: bool = False, labels: jax.Array | None = None
           ) -> dict[str, jax.Array]:
    """One-sample unbiased ELBO estimate in nats per example: dict(elbo, prior, diffusion,
    reconstruction), each [B]; elbo = reconstruction - prior - diffusion (of p(x | labels) for a
    class-conditional model).

    Raises ValueError on x of the wrong shape, dtype or range.
    """
    x_data = x
    x = self.to_model_space(x)
    batch = x.shape[0]
    time_rng, eps_rng, decoder_rng = _elbo_keys(rng)
    prior, reconstruction = self._prior_and_reconstruction(x, x_data, decoder_rng, train, labels)
    t = antithetic_times(time_rng, batch)
    if self.num_transitions == 0:
      diffusion = self.diffusion_term(x, eps_rng, t=t, train=train, labels=labels)
    else:  # transition i in 1..T, drawn uniformly (antithetically), times T
      step = jnp.minimum((t * self.num_transitions).astype(jnp.int32) + 1, self.num_transitions)
      diffusion = self.num_transitions * self.diffusion_term(x, eps_rng, step=step, train=train, labels=labels)
    return {"elbo": reconstruction - prior - diffusion, "prior": prior, "diffusion": diffusion,
            "reconstruction": reconstruction}

  def log_prob(self, x: jax.Array, rng: jax.Array, divergence: str = "hutchinson",
               labels: jax.Array | None = None, **solver_options) -> jax.Array:
    """log P(x) [B] in nats of x as stored, by the probability-flow ODE (exact for vectors up to the
    solver's tolerance and, with Hutchinson's divergence, an unbiased estimate; a uniform-
    dequantization lower bound for images); NaN where the solve failed. `solver_options` go to
    `probability_flow.log_prob` (method, rtol, atol, num_steps); a model with a bound, `elbo`."""
    model, variables = self.unbind()
    log_p, solution = likelihood.probability_flow_log_likelihood(model, variables, x, rng, divergence,
                                                                 labels=labels, **solver_options)
    return jnp.where(solution.succeeded, log_p, jnp.nan)

  def prior_and_reconstruction(self, x: jax.Array, rng: jax.Array, labels: jax.Array | None = None
                               ) -> dict[str, jax.Array]:
    """dict(prior, reconstruction) in nats [B]: the ELBO's endpoint terms exactly as `elbo` draws them
    from the same rng, without its one-sample diffusion term (for estimators that average that term
    over many transitions)."""
    _, _, decoder_rng = _elbo_keys(rng)
    prior, reconstruction = self._prior_and_reconstruction(self.to_model_space(x), x, decoder_rng, False, labels)
    return {"prior": prior, "reconstruction": reconstruction}

  def simple_loss(self, x: jax.Array, rng: jax.Array, train: bool = False, labels: jax.Array | None = None
                  ) -> jax.Array:
    """Ho et al.'s L_simple per example [B]: mean over dimensions of (target - output)^2 at t ~ U
    (a uniform state of a discrete grid, else t ~ U(0, 1)), target by `prediction`."""
    x = self.to_model_space(x)
    batch = x.shape[0]
    time_rng, eps_rng = jax.random.split(rng)
    t = antithetic_times(time_rng, batch)
    if self.num_transitions:  # a state i in 1..T of the grid (state 0 is the decoder's)
      grid = jnp.asarray(self.time_grid())
      t = grid[jnp.minimum((t * self.num_transitions).astype(jnp.int32) + 1, self.num_transitions)]
    eps = jax.random.normal(eps_rng, x.shape)
    log_snr = self.log_snr(t)
    output = self._network(process.diffuse(x, log_snr, eps), t, log_snr, train, labels)
    target = process.prediction_target(x, eps, log_snr, self.prediction, self.sigma_data)
    return jnp.mean(((target - output) ** 2).reshape(batch, -1), axis=-1)

  def edm_loss(self, x: jax.Array, rng: jax.Array, train: bool = False, labels: jax.Array | None = None,
               log_sigma_mean: float = edm.LOG_SIGMA_MEAN, log_sigma_std: float = edm.LOG_SIGMA_STD
               ) -> jax.Array:
    """EDM's objective per example [B] (Karras et al. 2022, Table 1): lambda(sigma) times the mean over
    dimensions of (D(x + sigma n; sigma) - x)^2 at ln sigma ~ N(log_sigma_mean, log_sigma_std^2), the
    noise applied in the variance-preserving form z = alpha x + sigma_t eps, sigma = sigma_t / alpha."""
    x = self.to_model_space(x)
    sigma_rng, eps_rng = jax.random.split(rng)
    log_snr = edm.sample_log_snr(sigma_rng, x.shape[0], log_sigma_mean, log_sigma_std)
    z = process.diffuse(x, log_snr, jax.random.normal(eps_rng, x.shape))
    x_hat, _ = self.denoise(z, None, train, log_snr=log_snr, labels=labels)
    return edm.weighted_denoising_loss(x_hat, x, log_snr, self.sigma_data)

  # -- sampling ----------------------------------------------------------------------------------

  def _pure(self, method: str):
    """This module's `method` as a pure function of its arguments (for lax.scan / ODE solvers)."""
    variables, module = self.variables, self.clone(parent=None)
    return lambda *args: module.apply(variables, *args, method=method)

  def _grid(self, num_steps: int | None, t_start: float = 1.0) -> np.ndarray:
    discrete = isinstance(self.schedule, DiscreteSchedule)
    if num_steps is None:
      if not discrete and self.num_timesteps == 0:
        raise ValueError("num_steps is required for a continuous-time model")
      num_steps = self.num_transitions
    return samplers.sampling_grid(num_steps, self.schedule.grid() if discrete else None, t_start)

  def _denoiser(self, labels: jax.Array | None = None, guidance_scale: float = 1.0):
    """(z, t) -> (x_hat, eps_hat) for the samplers: `denoise` with these labels and guidance."""
    denoise = self._pure("denoise")
    return lambda z, t: denoise(z, t, False, None, labels, guidance_scale)

  def sampling_labels(self, num: int, labels: jax.Array | None = None) -> jax.Array | None:
    """The labels [num] a sample is drawn for: `labels` checked, or for a class-conditional model
    without them the classes in turn, 0, 1, ..., K - 1, 0, ...; None for an unconditional model.

    Raises ValueError for labels given to an unconditional model or not int [num] in {0, ..., K}
    (`nn.check_labels`)."""
    if labels is None and self.num_classes:
      return jnp.arange(num, dtype=jnp.int32) % self.num_classes
    return check_labels(labels, num, self.num_classes, "num")

  def _decode(self, rng: jax.Array, z_0: jax.Array, clip_denoised: bool, denoise=None) -> jax.Array:
    """x ~ p(x | z_0): the decoder's Gaussian around x_hat(z_0), binned to levels for images."""
    x_hat, _ = (denoise or self._denoiser())(z_0, jnp.zeros((z_0.shape[0],)))
    if clip_denoised:
      x_hat = jnp.clip(x_hat, -1.0, 1.0)
    x = x_hat + elbo_lib.decoder_std(self._pure("log_snr")(jnp.zeros(()))) * jax.random.normal(rng, x_hat.shape)
    if self.num_levels is None:
      return x
    # The edge bins take the tails (the discretized decoder's definition), hence the clip of levels.
    return centres_to_levels(x, self.num_levels)

  def sample(self, rng: jax.Array, num: int, num_steps: int | None = None, eta: float | None = None,
             clip_denoised: bool | None = None, return_trajectory: bool = False, sampler: str = "ddim",
             labels: jax.Array | None = None, guidance_scale: float = 1.0):
    """`num` samples: z_1 ~ N(0, I), the sampler's steps to t = 0, x ~ p(x | z_0).

    sampler: "ddim", DDIM(eta) steps (eta None = 1: ancestral), or "dpm_solver_2m", DPM-Solver++(2M)
    (`samplers.run_dpm_solver`, deterministic: eta must be None or 0), or "edm_heun", EDM's Heun
    (`edm_sampler.run_edm_heun`, churn 0: deterministic, eta None or 0); all end at z_0 and decode it
    alike. num_steps defaults to the bound's transitions (DDPM's full chain); clip_denoised defaults
    to True for images. With return_trajectory, also x_hat at every step [num_steps, num, ...].
    A class-conditional model draws for `labels` [num] (default: the classes in turn,
    `sampling_labels`) with classifier-free guidance_scale s (1: the conditional model, 0: the
    unconditional one, > 1: guided; Ho & Salimans' w = s - 1), at every step and in the decoder.

    Raises ValueError for an unknown sampler, or an eta other than 0 with "dpm_solver_2m" or "edm_heun",
    or labels or a guidance_scale other than 1 for an unconditional model.
    """
    samplers.check_sampler(sampler)
    if sampler != "ddim" and eta is not None and eta != 0:
      raise ValueError(f"eta={eta} is DDIM's noise scale; sampler {sampler!r} is deterministic: "
                       "pass eta None or 0, or sampler 'ddim'")
    checks.check_positive_int(num, "num")
    if self.num_classes == 0 and not guidance_scale_is_one(guidance_scale):
      raise ValueError(f"guidance_scale={guidance_scale} needs a class-conditional model (num_classes > 0); "
                       "an unconditional one samples with guidance_scale 1")
    denoise = self._denoiser(self.sampling_labels(num, labels), guidance_scale)
    clip = self.num_levels is not None if clip_denoised is None else clip_denoised
    start_rng, loop_rng, decoder_rng = jax.random.split(rng, 3)
    z_1 = jax.random.normal(start_rng, (num, *self.event_shape))
    if sampler == "dpm_solver_2m":
      result = samplers.run_dpm_solver(denoise, self._pure("log_snr"), z_1, self._grid(num_steps),
                                       clip_denoised=clip, return_trajectory=return_trajectory)
    elif sampler == "edm_heun":
      result = edm_sampler.run_edm_heun(denoise, self._pure("log_snr"), z_1, self._grid(num_steps),
                                        loop_rng, clip_denoised=clip, return_trajectory=return_trajectory)
    else:
      result = samplers.run_sampler(denoise, self._pure("log_snr"), z_1, self._grid(num_steps),
                                    loop_rng, 1.0 if eta is None else eta, clip,
                                    return_trajectory=return_trajectory)
    z_0, trajectory = result if return_trajectory else (result, None)
    x = self._decode(decoder_rng, z_0, clip, denoise)
    return (x, trajectory) if return_trajectory else x

  def ddim_decode(self, z_1: jax.Array, num_steps: int | None = None, labels: jax.Array | None = None
                  ) -> jax.Array:
    """The deterministic DDIM map (eta = 0) from z_1 to the denoised x_hat(z_0, 0), in model space.

    The probability-flow ODE discretized by DDIM's steps (Song et al. 2021, "Denoising Diffusion
    Implicit Models", sec. 4.3 and 5.4) makes z_1 a latent code; no step clips x_hat (the map stays
    smooth, and `ddim_encode` inverts it), the output is clipped to [-1, 1] for images. labels [B]:
    a class-conditional model's (its null label K: the unconditional map).
    """
    denoise = self._denoiser(labels)
    z_0 = samplers.run_sampler(denoise, self._pure("log_snr"), z_1, self._grid(num_steps), jax.random.key(0), eta=0.0)
    x_hat, _ = denoise(z_0, jnp.zeros((z_0.shape[0],)))
    return x_hat if self.num_levels is None else jnp.clip(x_hat, -1.0, 1.0)

  def ddim_encode(self, x: jax.Array, num_steps: int | None = None, labels: jax.Array | None = None
                  ) -> jax.Array:
    """DDIM inversion: `ddim_decode`'s steps run backwards, t = 0 -> 1 from z_0 = x in model space.

    Each step is z_s = alpha_s x_hat(z_t) + sigma_s eps_hat(z_t) for s > t (the eta = 0 step read
    the other way), exact as the steps shrink (DDIM sec. 5.4); returns z_1 [B, *event_shape].
    """
    times = self._grid(num_steps)[::-1].copy()
    return samplers.run_sampler(self._denoiser(labels), self._pure("log_snr"), self.to_model_space(x), times,
                                jax.random.key(0), eta=0.0)

  def denoise_observation(self, y: jax.Array, noise_std: float, labels: jax.Array | None = None) -> jax.Array:
    """x_hat from y = x + noise_std N(0, I) in model space: the denoiser at the time whose
    sigma_t / alpha_t is nearest noise_std, fed z_t = alpha_t y (Tweedie's E[x | z_t], as the
    denoising figure's x_hat); clipped to [-1, 1] for images.

    The times searched are the bound's states (discrete time) or 1001 equal steps of [0, 1].
    """
    if isinstance(noise_std, (int, float)) and not noise_std > 0:
      raise ValueError(f"noise_std must be > 0, got {noise_std!r}")
    times = jnp.asarray(self.time_grid() if isinstance(self.schedule, DiscreteSchedule)
                        else np.linspace(0.0, 1.0, 1001, dtype=np.float32))
    log_snr = self.log_snr(times)
    t = times[jnp.argmin(jnp.abs(log_snr + 2.0 * jnp.log(noise_std)))]  # sigma / alpha = exp(-lambda / 2)
    alpha, _ = process.alpha_sigma(self.log_snr(t))
    x_hat, _ = self.denoise(alpha * y, jnp.full((y.shape[0],), t), labels=labels)
    return x_hat if self.num_levels is None else jnp.clip(x_hat, -1.0, 1.0)

  def edit(self, rng: jax.Array, x: jax.Array, t_start: float, num_steps: int | None = None,
           mask: jax.Array | None = None, eta: float = 1.0, clip_denoised: bool | None = None,
           labels: jax.Array | None = None) -> jax.Array:
    """Noises x to t_start and samples back to t = 0 (denoising / SDEdit); with `mask` (x's shape,
    1 = keep), the kept part is re-noised from x at every step (inpainting by replacement).

    num_steps: steps from t_start to 0 (default: as many grid states as lie below t_start).
    """
    x_model = self.to_model_space(x)
    if mask is not None and mask.shape != x.shape:
      raise ValueError(f"mask must have x's shape {tuple(x.shape)}, got {tuple(mask.shape)}")
    clip = self.num_levels is not None if clip_denoised is None else clip_denoised
    if num_steps is None:
      grid = self.time_grid() if self.num_transitions else None
      num_steps = int(np.sum(grid <= t_start + 1e-6)) - 1 if grid is not None else None
    times = self._grid(num_steps, t_start)
    noise_rng, loop_rng, decoder_rng = jax.random.split(rng, 3)
    z_start = process.diffuse(x_model, self._pure("log_snr")(jnp.asarray(times[0])),
                              jax.random.normal(noise_rng, x_model.shape))
    known = None if mask is None else (x_model, mask.astype(jnp.float32))
    denoise = self._denoiser(labels)
    z_0 = samplers.run_sampler(denoise, self._pure("log_snr"), z_start, times, loop_rng, eta, clip, known=known)
    out = self._decode(decoder_rng, z_0, clip, denoise)
    return out if mask is None else jnp.where(mask > 0, x, out)
