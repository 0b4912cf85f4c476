"""Squeeze (space-to-depth) and channel split, the reshapes of multi-scale flows.

Squeeze (Dinh et al. 2017, "Real NVP", 3.6): every 2x2 spatial block becomes 4 channels,
[B, H, W, C] -> [B, H/2, W/2, 4C]; output channel (2 i + j) * C + c holds x[2h + i, 2w + j, c].
It is a permutation of the entries, so log_det = 0.

Split (factor-out): the channels of a level's output are cut in half; the first half continues
to the next level, the second half is factored out as latent variables.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp


def squeeze2d(x: jax.Array) -> jax.Array:
  """[B, H, W, C] -> [B, H/2, W/2, 4C]; H and W must be even."""
  if x.ndim != 4:
    raise ValueError(f"squeeze expects rank 4 [B, H, W, C], got shape {tuple(x.shape)}")
  b, h, w, c = x.shape
  if h % 2 or w % 2:
    raise ValueError(f"squeeze needs even H and W (a multiple of 2), got H={h}, W={w} "
                     f"in shape {tuple(x.shape)}")
  x = x.reshape(b, h // 2, 2, w // 2, 2, c)
  x = x.transpose(0, 1, 3, 2, 4, 5)                         # [B, H/2, W/2, 2, 2, C]
  return x.reshape(b, h // 2, w // 2, 4 * c)


def unsqueeze2d(y: jax.Array) -> jax.Array:
  """[B, H, W, 4C] -> [B, 2H, 2W, C], the inverse of `squeeze2d`."""
  if y.ndim != 4:
    raise ValueError(f"unsqueeze expects rank 4 [B, H, W, C], got shape {tuple(y.shape)}")
  b, h, w, c4 = y.shape
  if c4 % 4:
    raise ValueError(f"unsqueeze needs a channel count divisible by 4, got C={c4}")
  y = y.reshape(b, h, w, 2, 2, c4 // 4)
  y = y.transpose(0, 1, 3, 2, 4, 5)                         # [B, H, 2, W, 2, C]
  return y.reshape(b, 2 * h, 2 * w, c4 // 4)


def split_channels(x: jax.Array) -> tuple[jax.Array, jax.Array]:
  """[..., C] -> ([..., C/2] kept, [..., C/2] factored out); C must be even."""
  c = x.shape[-1]
  if c % 2:
    raise ValueError(f"split needs an even channel count, got C={c} in shape {tuple(x.shape)}")
  return x[..., : c // 2], x[..., c // 2:]


def merge_channels(kept: jax.Array, factored: jax.Array) -> jax.Array:
  """Inverse of `split_channels`."""
  return jnp.concatenate([kept, factored], axis=-1)


class Squeeze(nn.Module):
  """Space-to-depth 2x2 as a bijector: forward = `squeeze2d` (log_det 0), inverse = `unsqueeze2d`."""

  def forward(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return squeeze2d(x), jnp.zeros(x.shape[:1], x.dtype)

  def inverse(self, y: jax.Array) -> jax.Array:
    return unsqueeze2d(y)
