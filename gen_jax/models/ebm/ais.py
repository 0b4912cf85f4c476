"""Annealed importance sampling (Neal 2001) of log Z for p(x) = exp(-E(x)) / Z on the box [low, high]^D.

Path: pi_k(x) ∝ U_B(x) exp(-beta_k E(x)), 0 = beta_0 < ... < beta_K = 1 (K = num_distributions),
from the uniform law on the box (Z_0 = (high - low)^D) to the model. Each chain starts at x_0 ~ U_B and
  log w = sum_{k=1..K} (beta_k - beta_{k-1}) (-E(x_{k-1})),   x_k ~ T_k(. | x_{k-1}),
where T_k is `steps_per_distribution` MALA steps (Metropolis-adjusted Langevin; Roberts & Tweedie
1996) leaving pi_k invariant (a proposal off the box is rejected: pi_k is 0 there). Then E[w] = Z / Z_0:

  log Z_hat = log Z_0 + log mean_i w_i          (the estimate; `AISResult.log_z`),

unbiased in Z but, by Jensen, E[log Z_hat] <= log Z: a log-likelihood -E(x) - log Z_hat is therefore
biased *upwards* (optimistic) in expectation, by less as K grows and the weights even out. Report it
with its spread: every chain's own log Z_0 + log w_i (`log_weights`), their standard deviation, and
the delta-method standard error of log Z_hat, sd(w) / (mean(w) sqrt(n)); the effective sample size
(sum w)^2 / sum w^2 says how many chains carry the estimate.

The schedule is Grosse et al.'s sigmoid (2013; as in Wu et al. 2017, "On the quantitative analysis
of decoder-based generative models"): beta_k ∝ sigmoid(delta (2k/K - 1)), rescaled to [0, 1].
The MALA step size h starts at `step_size` and after each distribution is multiplied by
exp(acceptance - target) (one shared h; a transition chosen from the past still leaves its pi_k
invariant, the usual practice of adaptive AIS).
"""
from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp


class AISResult(NamedTuple):
  log_z: jax.Array  # scalar: log Z_0 + logmeanexp_i log w_i
  log_weights: jax.Array  # [num_chains]: each chain's own estimate log Z_0 + log w_i
  log_z_stderr: jax.Array  # scalar: delta-method standard error of log_z
  effective_sample_size: jax.Array  # scalar: (sum w)^2 / sum w^2, in chains
  acceptance: jax.Array  # scalar: mean MALA acceptance rate over all steps and chains


def sigmoid_schedule(num_distributions: int, delta: float = 4.0) -> jax.Array:
  """[K + 1] inverse temperatures from 0 to 1 (Grosse et al. 2013)."""
  s = jax.nn.sigmoid(delta * (2.0 * jnp.arange(num_distributions + 1) / num_distributions - 1.0))
  return (s - s[0]) / (s[-1] - s[0])


def _energy_and_gradient(energy_fn, x):
  energy, vjp = jax.vjp(energy_fn, x)
  return energy, vjp(jnp.ones_like(energy))[0]


def mala_step(energy_fn, x, energy, grad, beta, step_size, rng, domain):
  """One MALA step targeting ∝ exp(-beta E) on the box; returns (x, energy, grad, accepted [B])."""
  noise_rng, accept_rng = jax.random.split(rng)
  flat = lambda a: a.reshape(a.shape[0], -1)
  proposal = x - step_size * beta * grad + jnp.sqrt(2.0 * step_size) * jax.random.normal(noise_rng, x.shape)
  p_energy, p_grad = _energy_and_gradient(energy_fn, proposal)
  log_q_forward = -jnp.sum(flat(proposal - x + step_size * beta * grad) ** 2, axis=1) / (4.0 * step_size)
  log_q_backward = -jnp.sum(flat(x - proposal + step_size * beta * p_grad) ** 2, axis=1) / (4.0 * step_size)
  log_ratio = beta * (energy - p_energy) + log_q_backward - log_q_forward
  on_box = jnp.all(flat((proposal >= domain[0]) & (proposal <= domain[1])), axis=1)
  accept = on_box & (jnp.log(jax.random.uniform(accept_rng, energy.shape)) < log_ratio)
  keep = lambda new, old: jnp.where(accept.reshape((-1,) + (1,) * (old.ndim - 1)), new, old)
  return keep(proposal, x), keep(p_energy, energy), keep(p_grad, grad), accept


def ais_log_normalizer(energy_fn: Callable[[jax.Array], jax.Array], rng: jax.Array, *, event_shape,
                       domain: tuple[float, float], num_distributions: int, num_chains: int,
                       step_size: float = 0.01, steps_per_distribution: int = 1,
                       target_acceptance: float = 0.6) -> AISResult:
  """AIS estimate of log Z for exp(-E) on [low, high]^D; all distributions in one `lax.scan`."""
  if num_distributions < 1 or num_chains < 1:
    raise ValueError(f"num_distributions and num_chains must be >= 1, got {num_distributions}, {num_chains}")
  low, high = domain
  num_dims = math.prod(event_shape)
  init_rng, rng = jax.random.split(rng)
  x = jax.random.uniform(init_rng, (num_chains, *event_shape), jnp.float32, low, high)
  energy, grad = _energy_and_gradient(energy_fn, x)
  betas = sigmoid_schedule(num_distributions)

  def distribution(carry, inputs):
    x, energy, grad, log_w, h, accepted = carry
    beta_prev, beta, key = inputs
    log_w = log_w - (beta - beta_prev) * energy

    def transition(state, step_key):
      x, energy, grad = state
      x, energy, grad, accept = mala_step(energy_fn, x, energy, grad, beta, h, step_key, domain)
      return (x, energy, grad), jnp.mean(accept.astype(jnp.float32))

    (x, energy, grad), rates = jax.lax.scan(transition, (x, energy, grad),
                                            jax.random.split(key, steps_per_distribution))
    rate = jnp.mean(rates)
    return (x, energy, grad, log_w, h * jnp.exp(rate - target_acceptance), accepted + rate), None

  inputs = (betas[:-1], betas[1:], jax.random.split(rng, num_distributions))
  init = (x, energy, grad, jnp.zeros(num_chains), jnp.asarray(step_size, jnp.float32), 0.0)
  (_, _, _, log_w, _, accepted), _ = jax.lax.scan(distribution, init, inputs)
  log_z0 = num_dims * math.log(high - low)
  log_mean_w = jax.nn.logsumexp(log_w) - jnp.log(num_chains)
  normalized = jnp.exp(log_w - jax.nn.logsumexp(log_w))  # w_i / sum w
  ess = 1.0 / jnp.sum(normalized ** 2)
  stderr = jnp.std(normalized * num_chains) / jnp.sqrt(num_chains)  # sd(w) / mean(w) / sqrt(n)
  return AISResult(log_z=log_z0 + log_mean_w, log_weights=log_z0 + log_w, log_z_stderr=stderr,
                   effective_sample_size=ess, acceptance=accepted / num_distributions)
