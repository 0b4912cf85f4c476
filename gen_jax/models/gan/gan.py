"""A GAN as one Flax module: a generator G(z) and a discriminator D(x) under one set of variables.

Variables: {"params": {"generator": ..., "discriminator": ...}, "batch_stats": {...}} (BatchNorm
statistics and spectral norm's power-iteration vectors live in 'batch_stats'). Each player is
trained by its own optimizer on its own subtree (`gan.task`); this module only names the parts:

  decode(z, train)         G(z) in the model's space ([-1, 1] images, or vectors), [B, ...];
  discriminate(x, train)   D's logits [B] for inputs in the model's space;
  sample(rng, num)         z ~ N(0, I), G(z) in data space: uint8 levels for images, float32 vectors;
  to_model_space(x)        levels -> [-1, 1] for images (checked), vectors as float32.

Calls with train=True update 'batch_stats': pass `mutable=["batch_stats"]`.
"""
from __future__ import annotations

import flax.linen as nn
import jax

from gen_jax import checks
from gen_jax.data.levels import centres_to_levels, to_model_space


class GAN(nn.Module):
  """Attributes:
    event_shape: (H, W, C) or (D,).
    generator: a module (z [B, latent_dim], train) -> [B, *event_shape].
    discriminator: a module (x [B, *event_shape], train) -> logits [B].
    latent_dim: the dimension of z ~ N(0, I).
    num_levels: L for images stored as levels, None for vectors.
  """
  event_shape: tuple
  generator: nn.Module
  discriminator: nn.Module
  latent_dim: int
  num_levels: int | None = None

  def __call__(self, z: jax.Array, x: jax.Array, train: bool = False):
    """(G(z), D(x)): creates both players' variables at init."""
    return self.decode(z, train), self.discriminate(x, train)

  def to_model_space(self, x: jax.Array) -> jax.Array:
    return to_model_space(x, self.event_shape, self.num_levels)

  def decode(self, z: jax.Array, train: bool = False) -> jax.Array:
    checks.check_event_shape(z, (self.latent_dim,), "z")
    return self.generator(z, train=train)

  def discriminate(self, x: jax.Array, train: bool = False) -> jax.Array:
    return self.discriminator(x, train=train)

  def sample(self, rng: jax.Array, num: int) -> jax.Array:
    checks.check_positive_int(num, "num")
    x = self.decode(jax.random.normal(rng, (num, self.latent_dim)), train=False)
    return x if self.num_levels is None else generator_output_to_levels(x, self.num_levels)


def generator_output_to_levels(x: jax.Array, num_levels: int) -> jax.Array:
  """Generator output in [-1, 1] (a tanh: checked when concrete, never clipped) -> the nearest level, uint8."""
  checks.check_range(x, -1.0, 1.0, "generator output")
  return centres_to_levels(x, num_levels)
