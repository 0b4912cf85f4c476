"""Encoders q(z | x) and decoders of the VAEs: MLPs for vectors (or flattened images), conv nets for images.

Every encoder maps the network input h = x on the network scale (see `VAE`) to the mean and log
standard deviation of a diagonal Gaussian over the latent z, each [B, latent_dim]. Every decoder
maps z [B, latent_dim] to the likelihood's parameters `out`: [B, H, W, C * P] for images and
[B, D * P] for vectors, P = `params_per_dim` of the likelihood (see `likelihoods`).

An MLP with no hidden layers is affine: encoder and decoder are then those of probabilistic PCA
(Tipping & Bishop 1999), x = W z + mu + noise, the VAE whose marginal likelihood has a closed form.

The conv nets halve (encoder: stride-2 3x3 convolutions) or double (decoder: nearest-neighbour
upsampling then a 3x3 convolution, which avoids the checkerboard artefacts of transposed
convolutions, Odena et al. 2016) the resolution once per entry of `channels`, with optional
pre-activation residual blocks at each resolution; H and W must be divisible by 2 ** len(channels):
(32, 64) serves 8x8 digits (-> 2x2) and 28x28 MNIST (-> 7x7), (32, 64, 128) 32x32 images (-> 4x4).
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.nn import MLP, ResidualBlock


def split_mean_log_std(h: jax.Array) -> tuple[jax.Array, jax.Array]:
  """[B, 2 * latent_dim] -> (mean, log_std), each [B, latent_dim]."""
  mean, log_std = jnp.split(h, 2, axis=-1)
  return mean, log_std


def check_conv_resolution(event_shape: Sequence[int], channels: Sequence[int]) -> None:
  """Checks an image event shape can be halved len(channels) times."""
  if len(event_shape) != 3:
    raise ValueError(f"the conv architecture needs images with event_shape (H, W, C), got {tuple(event_shape)}")
  if not channels:
    raise ValueError("conv channels must name at least one resolution (e.g. (32, 64)), got ()")
  factor = 2 ** len(channels)
  height, width, _ = event_shape
  if height % factor or width % factor:
    raise ValueError(f"the conv architecture halves H and W {len(channels)} times (one per entry of "
                     f"channels {tuple(channels)}): H and W must be divisible by {factor}, got "
                     f"event_shape {tuple(event_shape)}")


class MLPEncoder(nn.Module):
  """Flatten -> MLP -> (mean, log_std) over `latent_dim`."""
  latent_dim: int
  hidden_sizes: Sequence[int] = (256, 256)

  @nn.compact
  def __call__(self, h: jax.Array) -> tuple[jax.Array, jax.Array]:
    h = h.reshape(h.shape[0], -1)
    return split_mean_log_std(MLP(self.hidden_sizes, 2 * self.latent_dim)(h))


class MLPDecoder(nn.Module):
  """z -> MLP -> out [B, *event_shape[:-1], C * params_per_dim]."""
  event_shape: Sequence[int]
  params_per_dim: int
  hidden_sizes: Sequence[int] = (256, 256)

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    out_shape = tuple(self.event_shape[:-1]) + (self.event_shape[-1] * self.params_per_dim,)
    out = MLP(self.hidden_sizes, math.prod(out_shape))(z)
    return out.reshape((z.shape[0],) + out_shape)


class ConvEncoder(nn.Module):
  """conv3x3 -> per entry c of channels: [residual blocks], relu, conv3x3 stride 2 to c -> dense.

  [B, H, W, C] -> (mean, log_std), each [B, latent_dim].
  """
  latent_dim: int
  channels: Sequence[int] = (32, 64)
  num_res_blocks: int = 0

  @nn.compact
  def __call__(self, h: jax.Array) -> tuple[jax.Array, jax.Array]:
    check_conv_resolution(h.shape[1:], self.channels)
    h = nn.Conv(self.channels[0], (3, 3), padding="SAME")(h)
    for features in self.channels:
      for _ in range(self.num_res_blocks):
        h = ResidualBlock(h.shape[-1])(h)
      h = nn.Conv(features, (3, 3), strides=(2, 2), padding="SAME")(nn.relu(h))
    h = nn.relu(h).reshape(h.shape[0], -1)
    return split_mean_log_std(nn.Dense(2 * self.latent_dim)(h))


class ConvDecoder(nn.Module):
  """dense to [H / 2^n, W / 2^n, channels[-1]] -> per entry c of reversed channels: relu, conv3x3 to
  c, [residual blocks], 2x nearest upsampling -> relu, conv3x3 to C * params_per_dim.

  z [B, latent_dim] -> out [B, H, W, C * params_per_dim].
  """
  event_shape: Sequence[int]
  params_per_dim: int
  channels: Sequence[int] = (32, 64)
  num_res_blocks: int = 0

  @nn.compact
  def __call__(self, z: jax.Array) -> jax.Array:
    check_conv_resolution(self.event_shape, self.channels)
    height, width, num_channels = self.event_shape
    factor = 2 ** len(self.channels)
    base_shape = (height // factor, width // factor, self.channels[-1])
    h = nn.Dense(math.prod(base_shape))(z).reshape((z.shape[0],) + base_shape)
    for features in reversed(self.channels):
      h = nn.Conv(features, (3, 3), padding="SAME")(nn.relu(h))
      for _ in range(self.num_res_blocks):
        h = ResidualBlock(features)(h)
      h = jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)
    return nn.Conv(num_channels * self.params_per_dim, (3, 3), padding="SAME")(nn.relu(h))


ARCHITECTURES = ("mlp", "conv")


def make_encoder_decoder(architecture: str, event_shape: Sequence[int], latent_dim: int,
                         params_per_dim: int, hidden_sizes: Sequence[int], channels: Sequence[int],
                         num_res_blocks: int) -> tuple[nn.Module, nn.Module]:
  """(encoder, decoder) of `architecture`: 'mlp' (hidden_sizes; the decoder's in reverse) or 'conv'."""
  if architecture == "mlp":
    return (MLPEncoder(latent_dim, tuple(hidden_sizes)),
            MLPDecoder(tuple(event_shape), params_per_dim, tuple(reversed(hidden_sizes))))
  if architecture == "conv":
    check_conv_resolution(event_shape, channels)
    return (ConvEncoder(latent_dim, tuple(channels), num_res_blocks),
            ConvDecoder(tuple(event_shape), params_per_dim, tuple(channels), num_res_blocks))
  raise ValueError(f"unknown VAE architecture {architecture!r}: expected one of {list(ARCHITECTURES)}")
