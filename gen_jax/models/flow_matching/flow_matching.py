"""A flow-matching model (Lipman et al. 2023; rectified flow, Liu et al. 2023; OT-CFM, Tong et al. 2023)
as one Flax module: a velocity network v_theta(t, x) on the straight conditional path of `paths`.

  loss(x, rng, train, labels, coupling, ...)  the flow-matching loss per example [B] (`paths`), with
                   x_0 ~ N(0, I) coupled to the data x_1 independently or by minibatch OT (`couplings`);
  velocity(z, t, train, labels)  v_theta(t, z); guided_velocity adds classifier-free guidance;
  generate(z_0, method, num_steps, ...)  the ODE dx/dt = v(t, x) from t = 0 (noise) to t = 1 by
                   `gen_jax.ode.solve_ode`: "euler", "midpoint" (fixed steps) or "dopri5" (adaptive);
                   encode(x, num_steps) runs it back from the data to z_0;
  sample(rng, num, ...)  data from z_0 ~ N(0, I), binned to levels for images;
  log_prob(x, rng, divergence, ...)  log P(x) in nats of x as stored: the model is a continuous
                   normalizing flow, so the instantaneous change of variables (`gen_jax.ode.log_prob`,
                   exact or Hutchinson divergence) from t = 1 back to the Gaussian at t = 0; for images a
                   uniform-dequantization lower bound on the discrete data (`gen_jax.data.dequantize`).

Data: images enter as stored levels x in {0, ..., L-1} and are modelled at their bin centres
2 x / (L - 1) - 1 in [-1, 1]; vectors (num_levels None) are float32 [B, D] as they are.

Class conditioning: a network with num_classes > 0 takes labels in {0, ..., num_classes}, the last
the null label; training replaces labels by it with probability label_dropout, and sampling mixes the
conditional and null-label velocities with guidance scale s (`nn.guided_output`): the
velocity is affine in the score along the Gaussian path, so this is guidance of the score.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax import checks, ode
from gen_jax.data import dequantize
from gen_jax.data.levels import centres_to_levels, check_levels, to_model_space
from gen_jax.models.flow_matching import couplings, paths
from gen_jax.nn.label_embedding import check_labels, drop_labels, guided_output

SAMPLE_METHODS = ("euler", "midpoint", "dopri5")


class FlowMatching(nn.Module):
  """Attributes:
    event_shape: (H, W, C) for images, (D,) for vectors.
    network: a module (x [B, ...], t [B] in [0, 1], train, labels=None) -> [B, ...] (`nn.UNet`,
      `nn.TimeConditionedMLP`), class-conditional when its num_classes > 0.
    num_levels: L for discrete images (uint8 levels), None for continuous vectors.
    sigma: the width of the conditional path (0: the straight line).
  """
  event_shape: tuple
  network: nn.Module
  num_levels: int | None = None
  sigma: float = 0.0

  @property
  def num_classes(self) -> int:
    return getattr(self.network, "num_classes", 0)

  def to_model_space(self, x: jax.Array) -> jax.Array:
    return to_model_space(x, self.event_shape, self.num_levels)

  def velocity(self, z: jax.Array, t: jax.Array, train: bool = False, labels: jax.Array | None = None) -> jax.Array:
    """v_theta(t, z) [B, ...]; t [B] in [0, 1]."""
    if self.num_classes:
      return self.network(z, t, train=train, labels=labels)
    return self.network(z, t, train=train)

  def guided_velocity(self, z: jax.Array, t: jax.Array, labels: jax.Array | None = None,
                      guidance_scale: float = 1.0) -> jax.Array:
    """The velocity under classifier-free guidance: unconditional + s (conditional - unconditional),
    both from one network call on the doubled batch; the plain velocity when s = 1 or unconditional."""
    if self.num_classes == 0:
      return self.velocity(z, t, labels=labels)
    velocity = lambda z, t, labels: self.velocity(z, t, labels=labels)
    return guided_output(velocity, (z, t), labels, self.num_classes, guidance_scale)

  def __call__(self, x: jax.Array, rng: jax.Array) -> jax.Array:
    return self.loss(x, rng)

  def loss(self, x: jax.Array, rng: jax.Array, train: bool = False, labels: jax.Array | None = None,
           coupling: str = "independent", ot_epsilon: float = 0.01, label_dropout: float = 0.0) -> jax.Array:
    """The flow-matching loss per example [B] at x_1 = x (as stored) with x_0 ~ N(0, I), t ~ U(0, 1)."""
    if coupling not in couplings.COUPLINGS:
      raise ValueError(f"coupling must be one of {couplings.COUPLINGS}, got {coupling!r}")
    x_1 = self.to_model_space(x)
    batch = x_1.shape[0]
    labels = check_labels(labels, batch, self.num_classes)
    noise_rng, time_rng, pair_rng, drop_rng = jax.random.split(rng, 4)
    x_0 = jax.random.normal(noise_rng, x_1.shape)
    if coupling == "minibatch_ot":
      i, j = couplings.minibatch_ot_pairs(pair_rng, x_0, x_1, ot_epsilon)
      x_0, x_1 = x_0[i], x_1[j]
      labels = None if labels is None else labels[j]
    if labels is not None and label_dropout:
      labels = drop_labels(drop_rng, labels, self.num_classes, label_dropout)
    return self.pair_loss(x_0, x_1, jax.random.fold_in(time_rng, 1), train, labels)

  def pair_loss(self, x_0: jax.Array, x_1: jax.Array, rng: jax.Array, train: bool = False,
                labels: jax.Array | None = None) -> jax.Array:
    """The loss per example [B] on given pairs (x_0, x_1) in model space (a coupling's draws, or
    rectified flow's reflow pairs, `reflow`), t ~ U(0, 1)."""
    time_rng, eps_rng = jax.random.split(rng)
    t = jax.random.uniform(time_rng, (x_0.shape[0],))
    eps = jax.random.normal(eps_rng, x_1.shape) if self.sigma else None
    x_t, u_t = paths.interpolate(x_0, x_1, t, self.sigma, eps)
    return paths.squared_error(self.velocity(x_t, t, train=train, labels=labels), u_t)

  # -- the ODE -------------------------------------------------------------------------------------

  def _pure(self, method):
    """This module's `method` as a pure function of its arguments (for the ODE solver)."""
    variables, module = self.variables, self.clone(parent=None)
    return lambda *args: module.apply(variables, *args, method=method)

  def generate(self, z_0: jax.Array, method: str = "midpoint", num_steps: int | None = 50,
               labels: jax.Array | None = None, guidance_scale: float = 1.0, rtol: float = 1e-5,
               atol: float = 1e-5) -> tuple[jax.Array, ode.ODESolution]:
    """(x_1 in model space, the ODE solution) from z_0 [B, ...] at t = 0; method "euler" or "midpoint"
    with num_steps equal steps, or "dopri5" (num_steps None) with tolerances rtol, atol."""
    if method not in SAMPLE_METHODS:
      raise ValueError(f"method must be one of {SAMPLE_METHODS}, got {method!r}")
    labels = check_labels(labels, z_0.shape[0], self.num_classes)
    guided = self._pure("guided_velocity")
    field = lambda t, z: guided(z, jnp.full((z.shape[0],), t, jnp.float32), labels, guidance_scale)
    solution = ode.solve_ode(field, z_0, 0.0, 1.0, method=method, rtol=rtol, atol=atol,
                             num_steps=None if method == "dopri5" else num_steps)
    return solution.y, solution

  def encode(self, x: jax.Array, num_steps: int = 50) -> jax.Array:
    """x as stored -> z_0 [B, ...]: the ODE from t = 1 back to t = 0 in `num_steps` midpoint steps
    (the inverse of `generate` as the steps shrink; unconditional)."""
    velocity = self._pure("velocity")
    field = lambda t, z: velocity(z, jnp.full((z.shape[0],), t, jnp.float32))
    return ode.solve_ode(field, self.to_model_space(x), 1.0, 0.0, method="midpoint", num_steps=num_steps).y

  def to_data(self, x_1: jax.Array) -> jax.Array:
    """Model space -> data as stored: the level whose bin holds each value (images), vectors as they are."""
    return x_1 if self.num_levels is None else centres_to_levels(x_1, self.num_levels)

  def sample(self, rng: jax.Array, num: int, method: str = "midpoint", num_steps: int | None = 50,
             labels: jax.Array | None = None, guidance_scale: float = 1.0, **tolerances) -> jax.Array:
    """`num` samples in data space from z_0 ~ N(0, I) through `generate`."""
    checks.check_positive_int(num, "num")
    z_0 = jax.random.normal(rng, (num, *self.event_shape))
    x_1, _ = self.generate(z_0, method, num_steps, labels, guidance_scale, **tolerances)
    return self.to_data(x_1)

  def log_prob(self, x: jax.Array, rng: jax.Array, divergence: str = "hutchinson", labels: jax.Array | None = None,
               **solver_options) -> jax.Array:
    """log P(x) [B] in nats of x as stored (module doc); NaN where the ODE solve failed. solver_options:
    method ("dopri5" default, or a fixed-step method with num_steps), rtol, atol, noise."""
    dequantize_rng, noise_rng = jax.random.split(rng)
    if self.num_levels is None:
      x_model = self.to_model_space(x)
    else:  # to_model_space's checks, then the uniformly dequantized point in x's bin (not its centre)
      checks.check_event_shape(x, tuple(self.event_shape), "x")
      check_levels(x, self.num_levels)
      x_model = dequantize.uniform_dequantize_centres(dequantize_rng, x, self.num_levels)
    labels = check_labels(labels, x_model.shape[0], self.num_classes)
    velocity = self._pure("velocity")
    field = lambda t, z: velocity(z, jnp.full((z.shape[0],), t, jnp.float32), False, labels)
    log_p, solution = ode.log_prob(field, x_model, 1.0, 0.0, noise_rng, divergence, **solver_options)
    if self.num_levels is not None:
      log_p = dequantize.centres_discrete_log_likelihood(log_p, x_model[0].size, self.num_levels)
    return jnp.where(solution.succeeded, log_p, jnp.nan)
