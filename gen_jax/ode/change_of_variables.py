"""The log-density of a continuous normalizing flow, by the instantaneous change of variables.

For an ODE dz/dt = v(t, z) that carries the data at t = t_data to a base density p_base at t = t_base
(a diffusion model's probability flow, a flow-matching model's learned velocity), Chen et al. 2018
("Neural Ordinary Differential Equations", theorem 1) give

  log p_data(z(t_data)) = log p_base(z(t_base)) + int_{t_data}^{t_base} div_z v(t, z(t)) dt,

solved as one augmented ODE for the pair (z [B, ...], the integral [B]). The divergence is exact
(D Jacobian-vector products; small D) or Hutchinson's estimate eps^T J eps with one eps fixed along
the solve (FFJORD, Grathwohl et al. 2019): unbiased for the log-density, a stochastic estimate per
solve. Both are in `divergence`.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from gen_jax.distributions import gaussian
from gen_jax.ode import divergence as divergence_lib
from gen_jax.ode import solver

DIVERGENCES = ("exact", "hutchinson")


def log_prob(velocity: Callable[[jax.Array, jax.Array], jax.Array], z_data: jax.Array, t_data: float,
             t_base: float, rng: jax.Array, divergence: str = "exact", noise: str = "rademacher",
             base_log_prob: Callable[[jax.Array], jax.Array] | None = None, method: str = "dopri5",
             rtol: float = 1e-5, atol: float = 1e-5, num_steps: int | None = None
             ) -> tuple[jax.Array, solver.ODESolution]:
  """(log p(z_data) [B] in nats per example, the ODE's solution).

  Args:
    velocity: (t scalar, z [B, ...]) -> dz/dt [B, ...], acting on each example separately.
    z_data: points [B, ...] at time t_data.
    t_data, t_base: the times of the data and of the base density (either order).
    rng: draws Hutchinson's noise (unused for the exact divergence).
    divergence: "exact" or "hutchinson"; noise: Hutchinson's, "rademacher" or "gaussian".
    base_log_prob: z [B, ...] -> [B]; None = the standard normal N(0, I).
    method, rtol, atol, num_steps: `solver.solve_ode`'s ("dopri5" adaptive; fixed-step methods).
  """
  if divergence not in DIVERGENCES:
    raise ValueError(f"divergence must be one of {DIVERGENCES}, got {divergence!r}")
  eps = divergence_lib.divergence_noise(rng, z_data.shape, noise) if divergence == "hutchinson" else None

  def augmented(t, state):
    z, _ = state
    field = lambda y: velocity(t, y)
    if eps is None:
      return divergence_lib.exact_divergence(field, z)
    return divergence_lib.hutchinson_divergence(field, z, eps)

  solution = solver.solve_ode(augmented, (z_data, jnp.zeros(z_data.shape[:1], jnp.float32)), t_data, t_base,
                              method=method, rtol=rtol, atol=atol, num_steps=num_steps)
  z_base, integral = solution.y
  if base_log_prob is None:
    base = gaussian.sum_per_example(gaussian.standard_normal_log_prob(z_base))
  else:
    base = base_log_prob(z_base)
  # d integral / dt = div v integrated from t_data to t_base is the theorem's integral in either
  # order of the times (the solver's step carries the sign): log p_data = log p_base + integral.
  return base + integral, solution
