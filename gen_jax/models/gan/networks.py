"""Generators G(z) and discriminators D(x) of the GANs: MLPs for vectors, DCGAN and ResNet for images.

Every generator maps z [B, latent_dim] to x [B, D] (MLP, linear output) or [B, H, W, C] (conv nets,
tanh output in [-1, 1]); every discriminator maps x to logits [B] (no sigmoid: D(x) = sigmoid(logit),
and the losses take logits). Images enter the discriminators on the scale of the generators' output,
[-1, 1] (`gen_jax.data.levels.levels_to_centres`).

All modules are called as `module.apply(variables, x, train=..., mutable=[...])`; `train` is required
(no default), because it decides what the mutable state does:

  BatchNorm   train=True: normalise with the batch's own mean and (biased) variance; with
              mutable=['batch_stats'] the running averages move by r <- 0.9 r + 0.1 batch (flax
              momentum 0.9 = torch momentum 0.1, epsilon 1e-5: torch's defaults).
              train=False: normalise with the running averages; nothing is written.
              (torch stores the unbiased n/(n-1) variance in running_var; flax the biased one.)
  SpectralNorm  train=True: one power-iteration step from the stored u, written back with
              mutable=['batch_stats']; train=False: deterministic, nothing written (`spectral_norm`).

Both live in the one collection 'batch_stats': a training step passes mutable=['batch_stats'] and
keeps the returned collection. A discriminator used by a gradient penalty must be a function of
each example alone: call it with train=False, or use norm='layer' / 'none' (Gulrajani et al. 2017
replace BatchNorm by layer normalisation in the WGAN-GP critic for this reason). pytorch/examples'
DCGAN samples with G in train mode (batch statistics); the running statistics average over
changing weights, so a generator EMA needs its own statistics (an EMA of 'batch_stats', or
"standing statistics" re-estimated in train mode, Brock et al. 2019).

Architectures:
  MLPGenerator / MLPDiscriminator   Dense layers, ReLU in G (optional BatchNorm), LeakyReLU(0.2) in D.
  DCGANGenerator / DCGANDiscriminator  Radford et al. 2016 as in pytorch/examples' dcgan/main.py,
      generalised to side s = b 2^n (b >= 4): G projects z by a b x b transposed conv to
      base_channels 2^(n-1) channels, then n - 1 transposed convs 4x4/2 (padding 1) halve the
      channels, BatchNorm + ReLU after each, and a last 4x4/2 transposed conv to C with tanh; D
      mirrors it with 4x4/2 convs, LeakyReLU(0.2), normalisation on all but the first, and a last
      b x b valid conv to one logit. 64x64x3, latent 100, base 64 is pytorch/examples' layout exactly
      (G 3,576,704 and D 2,765,568 parameters, no biases); 28x28 gives b = 7, n = 2; 8x8 gives b = 4, n = 1.
  ResNetGenerator / ResNetDiscriminator  SNGAN's CIFAR ResNets (Miyato et al. 2018, appendix;
      Gulrajani et al. 2017, appendix): G = dense to b x b x channels, n up-blocks
      [BN, ReLU, 2x nearest upsample, conv3x3, BN, ReLU, conv3x3] + [upsample, conv1x1] shortcut,
      BN, ReLU, conv3x3, tanh. D = an "optimised" first down-block [conv3x3, ReLU, conv3x3,
      avgpool2] + [avgpool2, conv1x1], more down-blocks [ReLU, conv3x3, ReLU, conv3x3, avgpool2] +
      [conv1x1, avgpool2], plain blocks with identity shortcut, ReLU, sum over space, dense to 1.
"""
from __future__ import annotations

import math
from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax import checks
from gen_jax.nn.spectral_norm import maybe_spectral_norm
from gen_jax.nn.conv_transpose import PhaseConvTranspose

NORMS = ("batch", "layer", "none")
BN_MOMENTUM = 0.9  # flax's convention: running <- momentum running + (1 - momentum) batch
BN_EPSILON = 1e-5

dcgan_kernel_init = nn.initializers.normal(0.02)  # Radford et al. 2016: N(0, 0.02)


def dcgan_bn_scale_init(key, shape, dtype=jnp.float32):
  """pytorch/examples' DCGAN `weights_init`: BatchNorm weight ~ N(1, 0.02) (bias 0)."""
  return 1.0 + 0.02 * jax.random.normal(key, shape, dtype)


def leaky_relu(x: jax.Array) -> jax.Array:
  return nn.leaky_relu(x, negative_slope=0.2)


def batch_norm(train: bool, scale_init=nn.initializers.ones) -> nn.BatchNorm:
  return nn.BatchNorm(use_running_average=not train, momentum=BN_MOMENTUM, epsilon=BN_EPSILON,
                      scale_init=scale_init)


def _check_norm(norm: str) -> None:
  if norm not in NORMS:
    raise ValueError(f"unknown discriminator normalisation {norm!r}: expected one of {list(NORMS)}")


def _check_latent(z: jax.Array, latent_dim: int) -> None:
  checks.check_rank(z, 2, "z", "[B, latent_dim]")
  if z.shape[-1] != latent_dim:
    raise ValueError(f"z must have shape [B, latent_dim={latent_dim}], got {tuple(z.shape)}")


def generator_plan(z: jax.Array, latent_dim: int, output_shape, num_upsamplings: int | None):
  """Checks z [B, latent_dim] and returns the `resolution_plan` (b_h, b_w, n) of a generator's output."""
  _check_latent(z, latent_dim)
  height, width, _ = output_shape
  return resolution_plan(height, width, num_upsamplings)


def _check_images(x: jax.Array, name: str = "x") -> None:
  checks.check_rank(x, 4, name, "[B, H, W, C] (images on the [-1, 1] scale)")


def resolution_plan(height: int, width: int, num_steps: int | None = None) -> tuple[int, int, int]:
  """(b_h, b_w, n): the sides are b 2^n with n doublings from the base b_h x b_w, each b >= 4.

  With num_steps None, n is the largest such number (64 -> 4 x 4 and n = 4, 28 -> 7 x 7 and n = 2,
  8 -> 4 x 4 and n = 1); otherwise n = num_steps, checked.
  """
  def max_steps(side):
    n = 0
    while side % 2 ** (n + 1) == 0 and side // 2 ** (n + 1) >= 4:
      n += 1
    return n

  n = min(max_steps(height), max_steps(width)) if num_steps is None else num_steps
  if n < 1 or height % 2**n or width % 2**n or height // 2**n < 1 or width // 2**n < 1:
    raise ValueError(f"the image sides must be b 2^n with n >= 1 doublings (e.g. 8 = 4 * 2, 28 = 7 * 4, "
                     f"64 = 4 * 16), got {height}x{width} with num_steps={num_steps}")
  return height // 2**n, width // 2**n, n


# ---------------------------------------------------------------------------------------------
# Vectors.


class MLPGenerator(nn.Module):
  """z [B, latent_dim] -> Dense -> [BatchNorm] -> ReLU -> ... -> Dense -> x [B, output_dim] (linear).

  Attributes:
    latent_dim: dimension of z.
    hidden_sizes: widths of the hidden layers.
    output_dim: dimension of x.
    batch_norm: BatchNorm before each ReLU (PacGAN's and VEEGAN's 2-D generators use it).
  """
  latent_dim: int
  hidden_sizes: Sequence[int]
  output_dim: int
  batch_norm: bool = False

  @nn.compact
  def __call__(self, z: jax.Array, train: bool) -> jax.Array:
    _check_latent(z, self.latent_dim)
    h = z
    for width in self.hidden_sizes:
      h = nn.Dense(width, use_bias=not self.batch_norm)(h)
      if self.batch_norm:
        h = batch_norm(train)(h)
      h = nn.relu(h)
    return nn.Dense(self.output_dim)(h)


class MLPDiscriminator(nn.Module):
  """x [B, ...] (flattened) -> Dense -> LeakyReLU(0.2) -> ... -> Dense -> logits [B].

  Attributes:
    hidden_sizes: widths of the hidden layers.
    spectral_norm: spectrally normalise every Dense kernel (`gen_jax.nn.spectral_norm`).
    activation: nonlinearity between layers.
  """
  hidden_sizes: Sequence[int]
  spectral_norm: bool = False
  activation: Callable[[jax.Array], jax.Array] = leaky_relu

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    if x.ndim < 2:
      raise ValueError(f"x must be a batch [B, D] (or [B, H, W, C]), got shape {tuple(x.shape)}")
    h = x.reshape(x.shape[0], -1)
    for width in self.hidden_sizes:
      h = self.activation(maybe_spectral_norm(nn.Dense(width), h, self.spectral_norm, train))
    return maybe_spectral_norm(nn.Dense(1), h, self.spectral_norm, train)[:, 0]


# ---------------------------------------------------------------------------------------------
# DCGAN (Radford et al. 2016; the layout of pytorch/examples' dcgan/main.py).


class DCGANGenerator(nn.Module):
  """z [B, latent_dim] -> images [B, H, W, C] in [-1, 1] (see the module docstring).

  Transposed convolutions match torch's ConvTranspose2d(k, s, p) through flax's explicit padding
  k - 1 - p on the stride-dilated input (the kernel is not flipped: a torch weight [C_in, C_out, k, k]
  corresponds to kernel[::-1, ::-1] of flax's [k, k, C_in, C_out]). They are computed as s^2
  stride-1 phases (`gen_jax.nn.conv_transpose`), the same function of the same parameters as flax's
  ConvTranspose, whose kernel gradient XLA:CPU computes 10-25x slower.

  Attributes:
    output_shape: (H, W, C).
    latent_dim: dimension of z (pytorch/examples: nz = 100).
    base_channels: channels before the last layer, doubled per resolution below (ngf = 64).
    num_upsamplings: n, the number of 2x transposed convs; None for the largest with base side >= 4.
  """
  output_shape: Sequence[int]
  latent_dim: int = 100
  base_channels: int = 64
  num_upsamplings: int | None = None

  @nn.compact
  def __call__(self, z: jax.Array, train: bool) -> jax.Array:
    bh, bw, n = generator_plan(z, self.latent_dim, self.output_shape, self.num_upsamplings)
    channels = self.output_shape[-1]
    # Named as flax's ConvTranspose would be: runs saved before the phase form load unchanged.
    conv_t = lambda i, features, kernel, stride, pad: PhaseConvTranspose(
        features, kernel, strides=(stride, stride), padding=pad, use_bias=False,
        kernel_init=dcgan_kernel_init, name=f"ConvTranspose_{i}")
    h = z[:, None, None, :]  # [B, 1, 1, latent_dim]
    h = conv_t(0, self.base_channels * 2 ** (n - 1), (bh, bw), 1, ((bh - 1, bh - 1), (bw - 1, bw - 1)))(h)
    h = nn.relu(batch_norm(train, dcgan_bn_scale_init)(h))  # [B, bh, bw, base * 2^(n-1)]
    for i in range(1, n):
      h = conv_t(i, self.base_channels * 2 ** (n - 1 - i), (4, 4), 2, ((2, 2), (2, 2)))(h)
      h = nn.relu(batch_norm(train, dcgan_bn_scale_init)(h))
    return jnp.tanh(conv_t(n, channels, (4, 4), 2, ((2, 2), (2, 2)))(h))  # [B, H, W, C]


class DCGANDiscriminator(nn.Module):
  """images [B, H, W, C] -> logits [B] (see the module docstring).

  Attributes:
    base_channels: channels of the first conv, doubled per halving (ndf = 64).
    num_downsamplings: n, the number of 4x4/2 convs; None for the largest with final side >= 4.
    norm: 'batch' (DCGAN; convs without bias, as pytorch/examples), 'layer' (per example over
      H, W, C, with per-channel scale and offset: the WGAN-GP critic) or 'none' (SNGAN's
      DCGAN-style D); with 'layer' / 'none' the convs have biases.
    spectral_norm: spectrally normalise every conv kernel.
  """
  base_channels: int = 64
  num_downsamplings: int | None = None
  norm: str = "batch"
  spectral_norm: bool = False

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    _check_images(x)
    _check_norm(self.norm)
    bh, bw, n = resolution_plan(x.shape[1], x.shape[2], self.num_downsamplings)
    use_bias = self.norm != "batch"

    def conv(h, features, kernel, stride, pad):
      layer = nn.Conv(features, kernel, strides=(stride, stride), padding=pad, use_bias=use_bias,
                      kernel_init=dcgan_kernel_init)
      return maybe_spectral_norm(layer, h, self.spectral_norm, train)

    h = leaky_relu(conv(x, self.base_channels, (4, 4), 2, ((1, 1), (1, 1))))
    for i in range(1, n):
      h = conv(h, self.base_channels * 2**i, (4, 4), 2, ((1, 1), (1, 1)))
      if self.norm == "batch":
        h = batch_norm(train, dcgan_bn_scale_init)(h)
      elif self.norm == "layer":
        h = nn.LayerNorm(epsilon=BN_EPSILON, reduction_axes=(1, 2, 3), feature_axes=-1)(h)
      h = leaky_relu(h)
    return conv(h, 1, (bh, bw), 1, "VALID").reshape(x.shape[0])  # [B, 1, 1, 1] -> [B]


# ---------------------------------------------------------------------------------------------
# ResNets (SNGAN, Miyato et al. 2018; WGAN-GP, Gulrajani et al. 2017).


def _upsample(h: jax.Array) -> jax.Array:
  return jnp.repeat(jnp.repeat(h, 2, axis=1), 2, axis=2)


def _avg_pool(h: jax.Array) -> jax.Array:
  return nn.avg_pool(h, (2, 2), strides=(2, 2))


class GeneratorBlock(nn.Module):
  """x + F(x) at twice the resolution: F = BN, ReLU, up, conv3x3, BN, ReLU, conv3x3; shortcut up, conv1x1."""
  channels: int

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    h = _upsample(nn.relu(batch_norm(train)(x)))
    h = nn.Conv(self.channels, (3, 3), padding="SAME")(h)
    h = nn.Conv(self.channels, (3, 3), padding="SAME")(nn.relu(batch_norm(train)(h)))
    return h + nn.Conv(self.channels, (1, 1))(_upsample(x))


class DiscriminatorBlock(nn.Module):
  """SNGAN's discriminator residual block; `first` is the "optimised" block that reads the image.

    first:       [conv3x3, ReLU, conv3x3, avgpool]  + [avgpool, conv1x1]
    downsample:  [ReLU, conv3x3, ReLU, conv3x3, avgpool] + [conv1x1, avgpool]
    plain:       [ReLU, conv3x3, ReLU, conv3x3]     + identity (the channels must not change)
  """
  channels: int
  downsample: bool
  first: bool = False
  spectral_norm: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    conv = lambda h, k: maybe_spectral_norm(nn.Conv(self.channels, (k, k), padding="SAME"), h,
                                            self.spectral_norm, train)
    h = x if self.first else nn.relu(x)
    h = conv(nn.relu(conv(h, 3)), 3)
    if self.first:
      return _avg_pool(h) + conv(_avg_pool(x), 1)
    if self.downsample:
      return _avg_pool(h) + _avg_pool(conv(x, 1))
    if x.shape[-1] != self.channels:
      raise ValueError(f"a plain residual block keeps its {self.channels} channels, got input "
                       f"shape {tuple(x.shape)}")
    return h + x


class ResNetGenerator(nn.Module):
  """z [B, latent_dim] -> images [B, H, W, C] in [-1, 1] (SNGAN / WGAN-GP CIFAR generator).

  Attributes:
    output_shape: (H, W, C).
    latent_dim: dimension of z (SNGAN: 128).
    channels: width of every block (SNGAN: 256, WGAN-GP: 128).
    num_upsamplings: n up-blocks from the b x b base; None for the largest with b >= 4 (32 -> 4 x 4
      and n = 3, SNGAN's CIFAR layout; 28 -> 7 x 7 and n = 2).
  """
  output_shape: Sequence[int]
  latent_dim: int = 128
  channels: int = 128
  num_upsamplings: int | None = None

  @nn.compact
  def __call__(self, z: jax.Array, train: bool) -> jax.Array:
    bh, bw, n = generator_plan(z, self.latent_dim, self.output_shape, self.num_upsamplings)
    channels = self.output_shape[-1]
    h = nn.Dense(bh * bw * self.channels)(z).reshape(z.shape[0], bh, bw, self.channels)
    for _ in range(n):
      h = GeneratorBlock(self.channels)(h, train)
    h = nn.relu(batch_norm(train)(h))
    return jnp.tanh(nn.Conv(channels, (3, 3), padding="SAME")(h))


class ResNetDiscriminator(nn.Module):
  """images [B, H, W, C] -> logits [B] (SNGAN's CIFAR discriminator by default).

  Attributes:
    channels: width of every block (SNGAN: 128).
    num_downsamplings: down-blocks, the first the "optimised" one; H and W must be divisible by
      2^num_downsamplings (SNGAN's CIFAR D: 2, 32 -> 8).
    num_plain_blocks: blocks at the final resolution (SNGAN: 2).
    spectral_norm: spectrally normalise every kernel (SNGAN); False for WGAN-GP's critic.
  """
  channels: int = 128
  num_downsamplings: int = 2
  num_plain_blocks: int = 2
  spectral_norm: bool = True

  @nn.compact
  def __call__(self, x: jax.Array, train: bool) -> jax.Array:
    _check_images(x)
    factor = 2**self.num_downsamplings
    if self.num_downsamplings < 1 or x.shape[1] % factor or x.shape[2] % factor:
      raise ValueError(f"ResNetDiscriminator halves H and W num_downsamplings={self.num_downsamplings} "
                       f"(>= 1) times: H and W must be divisible by {factor}, got shape {tuple(x.shape)}")
    sn = self.spectral_norm
    h = DiscriminatorBlock(self.channels, True, first=True, spectral_norm=sn)(x, train)
    for _ in range(self.num_downsamplings - 1):
      h = DiscriminatorBlock(self.channels, True, spectral_norm=sn)(h, train)
    for _ in range(self.num_plain_blocks):
      h = DiscriminatorBlock(self.channels, False, spectral_norm=sn)(h, train)
    h = jnp.sum(nn.relu(h), axis=(1, 2))  # [B, channels]: SNGAN's global sum pooling
    return maybe_spectral_norm(nn.Dense(1), h, sn, train)[:, 0]


def count_params(params) -> int:
  """Number of scalars in a params pytree (the 'params' collection only, if given variables)."""
  if isinstance(params, dict) and "params" in params:
    params = params["params"]
  return sum(math.prod(p.shape) for p in jax.tree_util.tree_leaves(params))
