"""The conditional probability path of flow matching and its target velocity.

Flow matching (Lipman et al. 2023, "Flow Matching for Generative Modeling") regresses a velocity
field v_theta(t, x) onto the velocity u_t(x | x_0, x_1) of a path that carries a source point x_0
(noise, t = 0) to a data point x_1 (t = 1); conditioned on the pair, the path here is the straight
line with an optional Gaussian tube of width sigma (Tong et al. 2023, "Improving and generalizing
flow-based generative models with minibatch optimal transport", eq. 14-15; torchcfm's
`ConditionalFlowMatcher`):

  x_t = t x_1 + (1 - t) x_0 + sigma eps,       u_t = x_1 - x_0,

the conditional optimal-transport path of Lipman et al. (their sigma_min -> 0) and rectified flow's
interpolation (Liu et al. 2023, "Flow Straight and Fast"). The loss

  L = E_{t ~ U(0, 1), (x_0, x_1) ~ pi, eps} || v_theta(t, x_t) - u_t ||^2

has the same gradient as regressing onto the marginal velocity u_t(x) = E[u_t | x_t = x] (Lipman
et al., theorem 2), so its minimiser transports the source law to the data law along the ODE
dx/dt = v(t, x). The coupling pi of (x_0, x_1) is the independent one or a minibatch OT plan
(`couplings`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp


def _per_example(t: jax.Array, like: jax.Array) -> jax.Array:
  """t [B] broadcast against like [B, ...]."""
  return t.reshape(t.shape + (1,) * (like.ndim - 1))


def interpolate(x_0: jax.Array, x_1: jax.Array, t: jax.Array, sigma: float = 0.0,
                eps: jax.Array | None = None) -> tuple[jax.Array, jax.Array]:
  """(x_t, u_t): the point at time t [B] on the path from x_0 to x_1 ([B, ...] each) and its velocity."""
  if x_0.shape != x_1.shape or t.shape != x_0.shape[:1]:
    raise ValueError(f"x_0 and x_1 must share a shape [B, ...] and t be [B]; got {x_0.shape}, {x_1.shape}, {t.shape}")
  tt = _per_example(t, x_0)
  x_t = tt * x_1 + (1.0 - tt) * x_0
  if sigma:
    if eps is None:
      raise ValueError(f"a path of width sigma={sigma} needs its noise eps (x_0's shape)")
    x_t = x_t + sigma * eps
  return x_t, x_1 - x_0


def squared_error(velocity: jax.Array, target: jax.Array) -> jax.Array:
  """The flow-matching loss per example [B]: the mean over dimensions of (v - u_t)^2 (torchcfm's
  `torch.mean((vt - ut) ** 2)` is its batch mean)."""
  return jnp.mean(((velocity - target) ** 2).reshape(velocity.shape[0], -1), axis=-1)
