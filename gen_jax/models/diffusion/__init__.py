"""Diffusion models: noise schedules, objectives, samplers and the probability-flow ODE.

  GaussianDiffusion   DDPM (discrete schedule) / VDM (continuous log-SNR) as one module: elbo,
                      simple_loss, denoise, sample, edit, log_prob (diffusion.py)
  diffusion_model     the config factory: denoiser + schedule by name (task.py)
  schedules           DDPM linear / cosine betas; linear, cosine and learned log-SNR
  process, elbo       the forward process q(z_t | x), its posterior, the bound's terms
  samplers            DDIM(eta) / ancestral sampling and DPM-Solver++(2M) on a time grid
  probability_flow    the ODE: deterministic sampling and exact (or Hutchinson) log_prob
(The ODE solver and the divergences are shared with flow matching: `gen_jax.ode`.)
  likelihood          elbo_over_steps, probability_flow_log_likelihood
"""
from gen_jax.models.diffusion import elbo, likelihood, probability_flow, process, samplers, schedules
from gen_jax.models.diffusion.diffusion import GaussianDiffusion
from gen_jax.models.diffusion.task import diffusion_model

__all__ = ["GaussianDiffusion", "diffusion_model", "elbo", "likelihood", "probability_flow",
           "process", "samplers", "schedules"]
