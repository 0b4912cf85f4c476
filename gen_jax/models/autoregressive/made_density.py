"""MADE as a density: an autoregressive mixture of Gaussians for continuous vectors (Germain et al.
2015, "MADE: Masked Autoencoder for Distribution Estimation"; the real-valued mixture conditionals
of Uria et al. 2013, "RNADE").

  log p(x) = sum_{i=1}^{D} log p(x_i | x_<i),
  p(x_i | x_<i) = sum_{k=1}^{K} pi_ik N(x_i; mu_ik, sigma_ik^2),

with (logits of pi_i, mu_i, log sigma_i) = MADE(x)_i, which depends on x_<i only (`gen_jax.nn.made`),
so every conditional comes from one parallel pass: log p(x) is exact, in nats per example.
Sampling is sequential: D passes inside one `lax.fori_loop`, pass i drawing x_i.

The first dimension's conditional is MADE's bias alone; a learned offset of the means, initialised
at random, makes the K components differ from the start (identical components get identical
gradients and would stay identical).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax import checks
from gen_jax.distributions import gaussian
from gen_jax.nn.made import MADE


class MADEDensity(nn.Module):
  """Autoregressive Gaussian-mixture density of float32 vectors [B, D].

  Attributes:
    event_shape: (D,).
    hidden_sizes: widths of MADE's masked hidden layers.
    num_components: K, Gaussians per conditional.

  Methods (with `model.apply(variables, ..., method=...)`):
    conditionals(x) -> (log pi, mu, log sigma), each [B, D, K]; entry i depends on x[:, :i] only;
    log_prob(x) -> [B] nats;  sample(rng, num) -> float32 [num, D].
  """
  event_shape: tuple
  hidden_sizes: Sequence[int] = (128, 128)
  num_components: int = 5

  def __post_init__(self):
    if len(tuple(self.event_shape)) != 1:
      raise ValueError(f"MADEDensity needs vectors: event_shape (D,), got {self.event_shape!r}")
    object.__setattr__(self, "event_shape", (int(self.event_shape[0]),))
    checks.check_positive_int(self.num_components, "num_components")
    super().__post_init__()

  def setup(self):
    k = self.num_components
    self.made = MADE(hidden_sizes=tuple(self.hidden_sizes), params_per_input=3 * k, zero_init_output=False)
    self.mean_offset = self.param("mean_offset", nn.initializers.normal(1.0), self.event_shape + (k,))

  def conditionals(self, x: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
    checks.check_event_shape(x, self.event_shape, "x")
    k = self.num_components
    out = self.made(x.astype(jnp.float32))                              # [B, D, 3K]
    logits, means, log_stds = out[..., :k], out[..., k:2 * k], out[..., 2 * k:]
    return jax.nn.log_softmax(logits, axis=-1), means + self.mean_offset, log_stds

  def log_prob(self, x: jax.Array) -> jax.Array:
    """Exact log p(x) in nats per example, [B]."""
    log_weights, means, log_stds = self.conditionals(x)
    log_p = jax.nn.logsumexp(log_weights + gaussian.log_prob(x[..., None], means, log_stds), axis=-1)
    return jnp.sum(log_p, axis=-1)

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.log_prob(x)

  def sample(self, rng: jax.Array, num: int) -> jax.Array:
    """`num` vectors float32 [num, D], drawn one dimension at a time in one fori_loop."""
    checks.check_positive_int(num, "num")
    (dims,) = self.event_shape
    x0 = jnp.zeros((num, dims), jnp.float32)
    if self.is_initializing():
      self.conditionals(x0)                                             # creates the parameters
    # A pure function of the variables, callable inside lax.fori_loop (as in flows.autoregressive).
    variables, density = self.variables, self.clone(parent=None)

    def draw_dimension(i, x):
      log_weights, means, log_stds = density.apply(variables, x, method=MADEDensity.conditionals)
      component_rng, normal_rng = jax.random.split(jax.random.fold_in(rng, i))
      k = jax.random.categorical(component_rng, log_weights, axis=-1)[..., None]      # [num, D, 1]
      pick = lambda a: jnp.take_along_axis(a, k, axis=-1)[..., 0]
      draw = gaussian.reparameterize(normal_rng, pick(means), pick(log_stds))
      return jnp.where(jnp.arange(dims) == i, draw, x)

    return jax.lax.fori_loop(0, dims, draw_dimension, x0)
