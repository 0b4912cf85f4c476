"""Binary masks and conditioner networks shared by coupling layers (Dinh et al. 2017, "Real NVP").

A coupling layer with binary mask b (1 = passed through, 0 = transformed) computes

  y = b * x + (1 - b) * g(x; theta(b * x)),

with g an elementwise bijection whose parameters theta come from a network that only sees the
passed-through half b * x. The Jacobian is triangular (up to a permutation) with diagonal 1 on
b and dg/dx on 1 - b, so log|det dy/dx| = sum over the transformed entries of log|dg/dx|.

Masks:
  * "checkerboard" (images): b[h, w, c] = 1 iff (h + w + parity) is even.
  * "channel" (images): b[..., c] = 1 iff c is in the first half of the channels (parity 0),
    or the second half (parity 1).
  * "dimension" (vectors [B, D]): b[d] = 1 iff (d + parity) is even (alternating dimensions;
    for D = 2 this is the classic toy flow's [1, 0] / [0, 1]).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import numpy as np

from gen_jax.nn.conv_resnet import ConvResNet
from gen_jax.nn.mlp import MLP

MASK_TYPES = ("checkerboard", "channel", "dimension")


def checkerboard_mask(height: int, width: int, channels: int, parity: int) -> np.ndarray:
  """[H, W, C] float32 mask, 1 where (h + w + parity) is even."""
  hh, ww = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
  mask = ((hh + ww + parity) % 2 == 0).astype(np.float32)
  return np.repeat(mask[:, :, None], channels, axis=2)


def channel_mask(channels: int, parity: int) -> np.ndarray:
  """[C] float32 mask, 1 on the first half of the channels (parity 0) or the second (parity 1)."""
  first = (np.arange(channels) < channels // 2).astype(np.float32)
  return first if parity % 2 == 0 else 1.0 - first


def dimension_mask(dims: int, parity: int) -> np.ndarray:
  """[D] float32 mask, 1 where (d + parity) is even."""
  return ((np.arange(dims) + parity) % 2 == 0).astype(np.float32)


def coupling_mask(event_shape: tuple[int, ...], mask_type: str, parity: int) -> np.ndarray:
  """The mask of `mask_type` for one example of shape `event_shape`, broadcastable to it."""
  if mask_type not in MASK_TYPES:
    raise ValueError(f"mask_type must be one of {MASK_TYPES}, got {mask_type!r}")
  if mask_type == "dimension":
    if len(event_shape) != 1:
      raise ValueError(f"mask_type 'dimension' needs vectors [B, D], got event shape {event_shape}")
    if event_shape[0] < 2:
      raise ValueError(f"a coupling needs at least D=2 dimensions, got D={event_shape[0]}")
    return dimension_mask(event_shape[0], parity)
  if len(event_shape) != 3:
    raise ValueError(f"mask_type {mask_type!r} needs images [B, H, W, C], "
                     f"got event shape {event_shape}")
  h, w, c = event_shape
  if mask_type == "checkerboard":
    if h * w < 2:
      raise ValueError(f"a checkerboard coupling needs at least 2 spatial positions, got H={h}, W={w}")
    return checkerboard_mask(h, w, c, parity)
  if c < 2:
    raise ValueError(f"a channel coupling needs at least C=2 channels, got C={c}")
  return channel_mask(c, parity)


class CouplingConditioner(nn.Module):
  """theta(b * x): [B, *event] -> [B, *event, num_params], last layer zero-initialised.

  Vectors use an MLP with `depth` hidden layers of width `hidden`; images a `ConvResNet` with
  `depth` residual blocks of `hidden` channels (depth 0: Glow's conv3x3-conv1x1-conv3x3 net).
  """
  num_params: int
  hidden: int = 64
  depth: int = 2

  @nn.compact
  def __call__(self, x_masked: jax.Array) -> jax.Array:
    if x_masked.ndim == 2:
      d = x_masked.shape[-1]
      out = MLP((self.hidden,) * self.depth, d * self.num_params, zero_init_output=True)(x_masked)
      return out.reshape(x_masked.shape + (self.num_params,))
    if x_masked.ndim == 4:
      c = x_masked.shape[-1]
      out = ConvResNet(self.hidden, c * self.num_params, num_blocks=self.depth,
                       zero_init_output=True)(x_masked)
      return out.reshape(x_masked.shape + (self.num_params,))
    raise ValueError(f"a coupling expects rank 2 [B, D] or rank 4 [B, H, W, C], "
                     f"got shape {tuple(x_masked.shape)}")
