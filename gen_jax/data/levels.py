"""Discrete levels <-> each model space, and the bits/dim scale: the one place every family uses.

Discrete data are integer levels x in {0, ..., L-1} (L = `num_levels`: 256 for 8-bit images, 17 for
`digits`), stored as uint8. Two model spaces:

  centred [-1, 1]  (VAE decoders, diffusion, GANs, PixelCNN inputs): the bin centres
                     c = 2 x / (L - 1) - 1,   bins [c - h, c + h), h = 1 / (L - 1);
                   back to levels: x = round((c + 1) (L - 1) / 2), the edge bins taking the tails
                   (values beyond [-1, 1] fall in the first or last bin).
  unit [0, 1)      (flows, EBMs): y = (x + u) / L with dequantization noise u in [0, 1)
                   (`gen_jax.data.dequantize`); back to levels: x = floor(y L), the bin y falls in.

Bits per dimension of the discrete data: bpd = NLL / (D ln 2), NLL in nats per example over D
dimensions, from a bound or likelihood of the discrete data (dequantization already accounted for).
"""
from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import checks


def check_num_levels(num_levels, name: str = "num_levels") -> None:
  """Checks that L is an integer in [2, 256] (levels are stored as uint8)."""
  if isinstance(num_levels, bool) or not isinstance(num_levels, (int, np.integer)) or not 2 <= num_levels <= 256:
    raise ValueError(f"{name} must be an integer in [2, 256] (levels are stored as uint8), got {num_levels!r}")


def check_levels(x, num_levels: int, name: str = "x") -> None:
  """Checks that `x` holds integer levels in [0, L-1] (the range only when `x` is concrete)."""
  checks.check_positive_int(num_levels, "num_levels")
  if not jnp.issubdtype(x.dtype, jnp.integer):
    raise ValueError(f"{name} must hold integer levels in [0, {num_levels - 1}] (an integer dtype, uint8 "
                     f"for images), got dtype {x.dtype}")
  checks.check_range(x, 0, num_levels - 1, f"{name} (num_levels={num_levels})")


def levels_to_centres(x: jax.Array, num_levels: int) -> jax.Array:
  """Level x in {0, ..., L-1} -> the centre 2 x / (L - 1) - 1 of its bin in [-1, 1] (float32, unchecked;
  levels as real numbers map the same way, the inverse of `centres_to_level_values`)."""
  return x.astype(jnp.float32) * (2.0 / (num_levels - 1)) - 1.0


def centres_to_levels(c: jax.Array, num_levels: int) -> jax.Array:
  """A value c on the [-1, 1] scale -> the level whose bin holds it, round((c + 1) (L - 1) / 2) clipped
  to [0, L-1], uint8 (so L <= 256)."""
  if num_levels > 256:
    raise ValueError(f"uint8 levels need num_levels <= 256, got {num_levels}")
  levels = jnp.round((jnp.asarray(c, jnp.float32) + 1.0) * (0.5 * (num_levels - 1)))
  return jnp.clip(levels, 0, num_levels - 1).astype(jnp.uint8)


def centres_to_level_values(c: jax.Array, num_levels: int) -> jax.Array:
  """A value c on the [-1, 1] scale -> levels as real numbers, (c + 1) (L - 1) / 2 (float32, not rounded
  or clipped: `centres_to_levels` is its rounding)."""
  return (jnp.asarray(c, jnp.float32) + 1.0) * (0.5 * (num_levels - 1))


def unit_to_level_values(y: jax.Array, num_levels: int) -> jax.Array:
  """A value y on the [0, 1] scale of dequantized data -> levels as real numbers, y L - 1/2 (the centre
  (k + 1/2) / L of bin k -> k; float32, not rounded or clipped: `unit_to_levels` floors y L)."""
  return jnp.asarray(y, jnp.float32) * num_levels - 0.5


def unit_to_levels(y: jax.Array, num_levels: int) -> jax.Array:
  """A value y on the [0, 1] scale of dequantized data -> the level floor(y L) whose bin holds it,
  clipped to [0, L-1], uint8 (so L <= 256)."""
  if num_levels > 256:
    raise ValueError(f"uint8 levels need num_levels <= 256, got {num_levels}")
  return jnp.clip(jnp.floor(jnp.asarray(y, jnp.float32) * num_levels), 0, num_levels - 1).astype(jnp.uint8)


def to_model_space(x: jax.Array, event_shape, num_levels: int | None) -> jax.Array:
  """Data as stored -> the centred model space: integer levels -> bin centres in [-1, 1] (checked);
  float vectors (num_levels None) -> float32. Raises ValueError on a wrong shape, dtype or range."""
  checks.check_event_shape(x, tuple(event_shape), "x")
  if num_levels is None:
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise ValueError(f"x must be float vectors for a model with num_levels=None, got dtype {x.dtype}")
    return x.astype(jnp.float32)
  check_levels(x, num_levels)
  return levels_to_centres(x, num_levels)


def bits_per_dim(nll_nats: jax.Array, num_dims: int) -> jax.Array:
  """Bits per dimension: nll / (D ln 2), from an NLL in nats per example over D dimensions."""
  checks.check_positive_int(num_dims, "num_dims")
  return nll_nats / (num_dims * math.log(2.0))
