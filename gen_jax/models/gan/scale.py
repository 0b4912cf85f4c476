"""The GAN image scale: levels {0, ..., L-1} <-> [-1, 1], the range of the generators' tanh.

  to the networks:   x = 2 level / (L - 1) - 1      (`vae.likelihoods.levels_to_centres`)
  back to levels:    level = round((x + 1) (L - 1) / 2), x in [-1, 1]

The discriminators see real images as `levels_to_gan_input` and fakes as the generator's output,
both in [-1, 1]; samples enter the evaluation module as uint8 levels (`gan_output_to_levels`).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from gen_jax import checks
from gen_jax.models.vae.likelihoods import check_levels, levels_to_centres


def levels_to_gan_input(x: jax.Array, num_levels: int) -> jax.Array:
  """Integer levels [B, H, W, C] -> float32 in [-1, 1]; checks the dtype and (when concrete) the range."""
  check_levels(x, num_levels)
  return levels_to_centres(x, num_levels)


def gan_output_to_levels(x: jax.Array, num_levels: int) -> jax.Array:
  """Generator output in [-1, 1] -> the nearest level, uint8 (for num_levels <= 256)."""
  if num_levels > 256:
    raise ValueError(f"uint8 levels need num_levels <= 256, got {num_levels}")
  checks.check_range(x, -1.0, 1.0, "generator output")
  return jnp.round((x.astype(jnp.float32) + 1.0) * (0.5 * (num_levels - 1))).astype(jnp.uint8)
