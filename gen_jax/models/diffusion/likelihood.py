"""Test-set likelihood bounds of a diffusion model, from its variables (`model.init`'s
dict; pure functions).

elbo_over_steps: the ELBO with its diffusion term averaged over K transitions per example instead of
one: discrete time (T transitions), steps floor((u + k) T / K) + 1 for k < K with one u ~ U(0, 1) per
example (stratified, unbiased; K = T is the exact sum over every transition, Ho et al.'s L_{1:T-1});
continuous time, t_k = (u + k) / K (stratified Monte Carlo of VDM's integral). K network
evaluations per example, run sequentially (`lax.map`) so memory stays that of one batch.

probability_flow_log_likelihood: log P(x) of the data as stored by the probability-flow ODE
(`probability_flow.log_prob`), dequantized for discrete images.
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from gen_jax.models.diffusion import probability_flow


def elbo_over_steps(model, variables, x: jax.Array, rng: jax.Array, num_step_samples: int | None = None
                    ) -> dict[str, jax.Array]:
  """dict(elbo, prior, diffusion, reconstruction) in nats per example [B], K = num_step_samples
  transitions (times) per example; default K = T for discrete time (the exact sum), 100 for
  continuous time."""
  num_transitions = model.num_transitions
  k = (num_transitions or 100) if num_step_samples is None else num_step_samples
  if not isinstance(k, int) or k < 1 or (num_transitions and k > num_transitions):
    raise ValueError(f"num_step_samples must be an int in [1, T={num_transitions or 'inf'}], got {num_step_samples!r}")
  parts = model.apply(variables, x, rng, method=model.prior_and_reconstruction)
  x_model = model.apply(variables, x, method=model.to_model_space)
  offset_rng, step_rng = jax.random.split(jax.random.fold_in(rng, 1))
  u = jax.random.uniform(offset_rng, x.shape[:1])

  def term(i):
    key = jax.random.fold_in(step_rng, i)
    position = (u + i) / k  # [B] in [0, 1), stratum i
    if num_transitions:
      step = jnp.minimum((position * num_transitions).astype(jnp.int32) + 1, num_transitions)
      return num_transitions * model.apply(variables, x_model, key, step=step, method=model.diffusion_term)
    return model.apply(variables, x_model, key, t=position, method=model.diffusion_term)

  diffusion = jnp.mean(jax.lax.map(term, jnp.arange(k)), axis=0)
  return {"elbo": parts["reconstruction"] - parts["prior"] - diffusion, "prior": parts["prior"],
          "diffusion": diffusion, "reconstruction": parts["reconstruction"]}


def probability_flow_log_likelihood(model, variables, x: jax.Array, rng: jax.Array, divergence: str = "hutchinson",
                                    **solver_options) -> tuple[jax.Array, object]:
  """(log-likelihood [B] in nats of x as stored, the ODE solution): exact for vectors given the
  solver's tolerance (a stochastic estimate with Hutchinson's divergence); for images a uniform-
  dequantization lower bound on the discrete data (see `probability_flow`)."""
  dequantize_rng, noise_rng = jax.random.split(rng)
  if model.num_levels is None:
    z_0 = model.apply(variables, x, method=model.to_model_space)
  else:
    model.apply(variables, x, method=model.to_model_space)  # checks x
    z_0 = probability_flow.dequantized_start(dequantize_rng, x, model.num_levels)
  denoise = lambda z, t: model.apply(variables, z, t, method=model.denoise)
  schedule = lambda t: model.apply(variables, t, method=model.log_snr_and_derivative)
  log_p0, solution = probability_flow.log_prob(denoise, schedule, z_0, noise_rng, divergence, **solver_options)
  if model.num_levels is None:
    return log_p0, solution
  return probability_flow.levels_log_likelihood(log_p0, math.prod(x.shape[1:]), model.num_levels), solution
