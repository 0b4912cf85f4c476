"""Rectified flow's reflow and the straightness of a flow's paths (Liu et al. 2023, "Flow Straight and
Fast: Learning to Generate and Transfer Data with Rectified Flow").

Reflow: a trained flow's ODE couples each noise z_0 with its own sample x_1 = Phi(z_0); flow matching
on these deterministic pairs (`FlowMatching.pair_loss`) gives a new flow whose paths cross less and are
straighter (their theorem 3.6: the transport cost does not increase), so few Euler steps suffice.

Straightness (their eq. 6): S = int_0^1 E || (x_1 - x_0) - v(t, x_t) ||^2 dt along the flow's own
trajectories, 0 exactly when every path is a straight line run at constant speed. Measured here on an
Euler trajectory of `num_steps` steps (a Riemann sum of the integral).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from gen_jax.models.flow_matching.flow_matching import FlowMatching


def reflow_pairs(model: FlowMatching, variables, rng: jax.Array, num: int, method: str = "dopri5",
                 num_steps: int | None = None) -> tuple[jax.Array, jax.Array]:
  """(z_0, x_1) [num, *event_shape] each, in model space: noise and the trained flow's image of it."""
  z_0 = jax.random.normal(rng, (num, *model.event_shape))
  x_1, _ = model.apply(variables, z_0, method, num_steps, method=model.generate)
  return z_0, x_1


def straightness(model: FlowMatching, variables, z_0: jax.Array, num_steps: int = 100) -> jax.Array:
  """S per example [B]: the mean over `num_steps` Euler steps of ||(x_1 - x_0) - v(t_k, x_k)||^2
  (summed over dimensions) along the trajectory from z_0 (module doc; an unconditional model)."""
  h = 1.0 / num_steps

  def step(x, k):
    v = model.apply(variables, x, jnp.full((x.shape[0],), k * h, jnp.float32), method=model.velocity)
    return x + h * v, v

  x_1, velocities = jax.lax.scan(step, z_0, jnp.arange(num_steps, dtype=jnp.float32))
  displacement = x_1 - z_0
  deviation = (displacement[None] - velocities).reshape(num_steps, z_0.shape[0], -1)
  return jnp.mean(jnp.sum(deviation ** 2, axis=-1), axis=0)
