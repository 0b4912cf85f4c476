"""Energy networks E_theta(x) -> [B] for p(x) = exp(-E(x)) / Z: an MLP for vectors, a small ResNet for images.

Langevin dynamics and score matching differentiate E with respect to x (and score matching then with
respect to theta through that gradient), so every activation is smooth: swish(h) = h sigmoid(h)
(Du & Mordatch 2019 use swish / leaky ReLU; Nijkamp et al. 2019 leaky ReLU). No BatchNorm: a
per-batch statistic would make one example's energy depend on the others in the chain batch.
Spectral normalisation of every kernel (Miyato et al. 2018; Du & Mordatch 2019 use it to keep the
energy smooth) is optional and uses `gen_jax.nn.spectral_norm` (its state in 'batch_stats').

  MLPEnergy   [B, D] -> Dense(w) swish ... Dense(1) -> [B]
  ConvEnergy  [B, H, W, C] in [0, 1] -> 2x - 1 -> conv3x3(c) -> per stage: residual block (c_s),
              2x2 average pool -> sum over space -> swish -> Dense(1) -> [B]
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.nn.spectral_norm import maybe_spectral_norm


class MLPEnergy(nn.Module):
  hidden_sizes: Sequence[int] = (128, 128)
  spectral_norm: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    h = x
    for width in self.hidden_sizes:
      h = nn.swish(maybe_spectral_norm(nn.Dense(width), h, self.spectral_norm, train))
    return maybe_spectral_norm(nn.Dense(1), h, self.spectral_norm, train)[:, 0]


class EnergyResidualBlock(nn.Module):
  """x + conv3x3(swish(conv3x3(swish(x)))), a 1x1 projection of x where the width changes."""
  channels: int
  spectral_norm: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    conv = lambda k, h: maybe_spectral_norm(nn.Conv(self.channels, (k, k), padding="SAME"), h,
                                            self.spectral_norm, train)
    h = conv(3, nn.swish(conv(3, nn.swish(x))))
    skip = x if x.shape[-1] == self.channels else conv(1, x)
    return skip + h


class ConvEnergy(nn.Module):
  """A ResNet energy on images in [0, 1]; one stage per entry of `channels`, each halving H and W."""
  channels: Sequence[int] = (32, 64)
  spectral_norm: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, train: bool = False) -> jax.Array:
    h = maybe_spectral_norm(nn.Conv(self.channels[0], (3, 3), padding="SAME"), 2.0 * x - 1.0,
                            self.spectral_norm, train)
    for width in self.channels:
      h = EnergyResidualBlock(width, self.spectral_norm)(h, train)
      h = nn.avg_pool(h, (2, 2), strides=(2, 2), padding="SAME")
    h = nn.swish(jnp.sum(h, axis=(1, 2)))  # [B, C]
    return maybe_spectral_norm(nn.Dense(1), h, self.spectral_norm, train)[:, 0]
