"""The U-Net of DDPM, the denoiser of diffusion models (Ho, Jain & Abbeel 2020, arXiv:2006.11239).

The architecture of their TF code (`diffusion_tf/models/unet.py`; also score_sde's `models/ddpm.py`),
a PixelCNN++-style U-Net (Salimans et al. 2017) with self-attention (Wang et al. 2018) and group
normalisation (Wu & He 2018). Images are NHWC throughout, with no transposes inside the network.

  temb = Dense(4c) . swish . Dense(4c) (sinusoid(1000 t))      c = `channels`, t in [0, 1]
         (+ a label embedding for a class-conditional network, `label_embedding`)
  h = conv3x3(x)                                               skips = [h]
  down, per level l (width c * mult[l]):
    num_res_blocks x { h = Res(h, temb); h = Attn(h) if the resolution is in attention_resolutions;
                       skips += [h] }
    h = conv3x3 stride 2 (h); skips += [h]                      (not after the last level)
  middle: h = Res(h), Attn(h), Res(h)
  up, per level l from the last to the first:
    (num_res_blocks + 1) x { h = Res(concat(h, skips.pop()), temb); h = Attn(h) at the same
                             resolutions }
    h = conv3x3(nearest-neighbour x2 (h))                       (not after the first level)
  out = conv3x3(swish(GroupNorm(h)))

  Res(h, temb) = shortcut(h) + conv3x3(dropout(swish(GN(
                   conv3x3(swish(GN(h))) + Dense(swish(temb))))))
    shortcut: identity, or a 1x1 projection ("nin", a Dense over channels) when the width changes.
  Attn(h) = h + proj_out(softmax(q k^T / sqrt(C)) v),  q, k, v = Dense(GN(h)) over the H*W positions
    (a single head of width C).

The timestep embedding is DDPM's (and the Transformer's): for s = 1000 t (DDPM's 1000 discrete
steps; t is continuous here) and half = channels // 2,
  emb = [sin(s w_0), ..., sin(s w_{half-1}), cos(s w_0), ..., cos(s w_{half-1})],
  w_i = exp(-log(10000) i / (half - 1)),
which is diffusers' `Timesteps(flip_sin_to_cos=False, downscale_freq_shift=1)`.

The stride-2 downsampling conv pads one row/column at the bottom/right only (TF's "SAME" at even
sizes, as DDPM; diffusers' `downsample_padding=0`). GroupNorm has epsilon 1e-6 as DDPM.

Initialisation as DDPM: kernels variance-scaling (scale 1, fan_avg, uniform), biases zero, and the
last layer of every residual branch (each ResnetBlock's second conv, each attention's output
projection) and the output conv at zero. Every block is then the identity at initialisation and the
untrained network outputs 0 (DDPM uses scale 1e-10; zero is the same in practice).

With DDPM's CIFAR-10 layout (channels 128, channel_multipliers (1, 2, 2, 2), 2 res blocks, attention
at 16x16, 32x32x3 images) the network has 35,746,307 parameters, equal to diffusers' UNet2DModel
for google/ddpm-cifar10-32 (tests/test_unet.py).
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.checks import check_rank
from gen_jax.nn.label_embedding import add_label_embedding

_EPSILON = 1e-6  # GroupNorm epsilon, as DDPM
_default_init = nn.initializers.variance_scaling(1.0, "fan_avg", "uniform")
_zeros = nn.initializers.zeros


def timestep_embedding(timesteps: jax.Array, dim: int, max_period: float = 10000.0) -> jax.Array:
  """DDPM's sinusoidal embedding [B] -> [B, dim]: half sin, half cos, w_i = max_period^(-i/(half-1))."""
  half = dim // 2
  if half < 2:
    raise ValueError(f"the timestep embedding needs dim >= 4, got {dim}")
  frequencies = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / (half - 1))
  angles = timesteps.astype(jnp.float32)[:, None] * frequencies[None, :]  # [B, half]
  emb = jnp.concatenate([jnp.sin(angles), jnp.cos(angles)], axis=-1)
  if dim % 2:
    emb = jnp.pad(emb, ((0, 0), (0, 1)))
  return emb


def _conv3x3(features: int, name: str, zero_init: bool = False, stride: int = 1, padding="SAME"):
  return nn.Conv(features, (3, 3), strides=(stride, stride), padding=padding,
                 kernel_init=_zeros if zero_init else _default_init, name=name)


def _group_norm(num_groups: int, name: str):
  return nn.GroupNorm(num_groups=num_groups, epsilon=_EPSILON, name=name)


class ResnetBlock(nn.Module):
  """DDPM's residual block: [B, H, W, C_in], temb [B, T] -> [B, H, W, out_channels]."""
  out_channels: int
  num_groups: int
  dropout: float

  @nn.compact
  def __call__(self, x: jax.Array, temb: jax.Array, train: bool) -> jax.Array:
    h = _conv3x3(self.out_channels, "conv_1")(nn.swish(_group_norm(self.num_groups, "norm_1")(x)))
    h = h + nn.Dense(self.out_channels, kernel_init=_default_init,
                     name="temb_proj")(nn.swish(temb))[:, None, None, :]
    h = nn.swish(_group_norm(self.num_groups, "norm_2")(h))
    h = nn.Dropout(self.dropout, deterministic=not train)(h)
    h = _conv3x3(self.out_channels, "conv_2", zero_init=True)(h)
    if x.shape[-1] != self.out_channels:
      x = nn.Dense(self.out_channels, kernel_init=_default_init, name="shortcut")(x)
    return x + h


class AttentionBlock(nn.Module):
  """Single-head self-attention over the H*W positions, with a residual: [B, H, W, C] -> same."""
  num_groups: int

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    b, height, width, c = x.shape
    h = _group_norm(self.num_groups, "norm")(x).reshape(b, height * width, c)  # [B, N, C]
    q, k, v = (nn.Dense(c, kernel_init=_default_init, name=name)(h) for name in ("q", "k", "v"))
    weights = jax.nn.softmax(jnp.einsum("bic,bjc->bij", q, k) * c ** -0.5, axis=-1)  # [B, N, N]
    h = jnp.einsum("bij,bjc->bic", weights, v)
    h = nn.Dense(c, kernel_init=_zeros, name="proj_out")(h)
    return x + h.reshape(b, height, width, c)


def _upsample_nearest(x: jax.Array) -> jax.Array:
  """[B, H, W, C] -> [B, 2H, 2W, C], each pixel repeated 2x2."""
  b, height, width, c = x.shape
  x = jnp.broadcast_to(x[:, :, None, :, None, :], (b, height, 2, width, 2, c))
  return x.reshape(b, 2 * height, 2 * width, c)


class UNet(nn.Module):
  """DDPM's U-Net: x [B, H, W, C], t [B] in [0, 1] -> [B, H, W, output_channels or C].

  Attributes:
    channels: width of the first level (and the timestep embedding's dimension; temb is 4x this).
    channel_multipliers: width of level l is channels * channel_multipliers[l]; each level after
      the first halves the resolution.
    num_res_blocks: residual blocks per level on the way down (one more on the way up).
    attention_resolutions: resolutions (height in pixels at that level) with self-attention.
    dropout: dropout rate in the residual blocks, applied when `train=True` (the 'dropout' rng).
    num_groups: groups of every GroupNorm; must divide `channels`.
    output_channels: channels of the output; None means those of the input.
    num_classes: > 0 for a class-conditional network: `labels` [B] in {0, ..., num_classes}
      (num_classes = the null label of classifier-free guidance) add a learned embedding to temb
      (`label_embedding`, as ADM); 0 = unconditional (no labels).
  """
  channels: int = 128
  channel_multipliers: Sequence[int] = (1, 2, 2, 2)
  num_res_blocks: int = 2
  attention_resolutions: Sequence[int] = (16,)
  dropout: float = 0.1
  num_groups: int = 32
  output_channels: int | None = None
  num_classes: int = 0

  def _check(self, x: jax.Array, t: jax.Array) -> None:
    check_rank(x, 4, "x", "[B, H, W, C]")
    factor = 2 ** (len(self.channel_multipliers) - 1)
    if x.shape[1] % factor or x.shape[2] % factor:
      raise ValueError(f"x's height and width must be divisible by {factor} (2 ** (levels - 1) for "
                       f"channel_multipliers {tuple(self.channel_multipliers)}), got shape "
                       f"{tuple(x.shape)}")
    if t.shape != (x.shape[0],):
      raise ValueError(f"t must have shape [B] = ({x.shape[0]},) (one time per image of x), got "
                       f"{tuple(t.shape)}")
    if self.channels % self.num_groups:
      raise ValueError(f"channels must be divisible by num_groups, got channels={self.channels}, "
                       f"num_groups={self.num_groups}")
    if self.channels < 4:
      raise ValueError(f"channels must be >= 4 (the timestep embedding's dimension), got {self.channels}")

  @nn.compact
  def __call__(self, x: jax.Array, t: jax.Array, train: bool = False, labels: jax.Array | None = None
               ) -> jax.Array:
    self._check(x, t)
    num_levels = len(self.channel_multipliers)
    widths = [self.channels * m for m in self.channel_multipliers]
    res = lambda width, name: ResnetBlock(width, self.num_groups, self.dropout, name=name)
    attn = lambda name: AttentionBlock(self.num_groups, name=name)

    temb = timestep_embedding(1000.0 * t, self.channels)  # [B, channels]
    temb = nn.Dense(4 * self.channels, kernel_init=_default_init, name="temb_dense_0")(temb)
    temb = nn.Dense(4 * self.channels, kernel_init=_default_init,
                    name="temb_dense_1")(nn.swish(temb))  # [B, 4 channels]
    temb = add_label_embedding(temb, labels, self.num_classes)

    h = _conv3x3(self.channels, "conv_in")(x)
    skips = [h]
    for level in range(num_levels):
      for i in range(self.num_res_blocks):
        h = res(widths[level], f"down_{level}_res_{i}")(h, temb, train)
        if h.shape[1] in self.attention_resolutions:
          h = attn(f"down_{level}_attn_{i}")(h)
        skips.append(h)
      if level != num_levels - 1:
        # Pad bottom/right by one: TF's "SAME" for stride 2 at even sizes, [H, W] -> [H/2, W/2].
        h = _conv3x3(widths[level], f"down_{level}_downsample", stride=2,
                     padding=((0, 1), (0, 1)))(h)
        skips.append(h)

    h = res(widths[-1], "mid_res_0")(h, temb, train)
    h = attn("mid_attn")(h)
    h = res(widths[-1], "mid_res_1")(h, temb, train)

    for level in reversed(range(num_levels)):
      for i in range(self.num_res_blocks + 1):
        h = res(widths[level], f"up_{level}_res_{i}")(
            jnp.concatenate([h, skips.pop()], axis=-1), temb, train)
        if h.shape[1] in self.attention_resolutions:
          h = attn(f"up_{level}_attn_{i}")(h)
      if level != 0:
        h = _conv3x3(widths[level], f"up_{level}_upsample")(_upsample_nearest(h))
    assert not skips, "every skip connection is consumed"

    h = nn.swish(_group_norm(self.num_groups, "norm_out")(h))
    out_channels = x.shape[-1] if self.output_channels is None else self.output_channels
    return _conv3x3(out_channels, "conv_out", zero_init=True)(h)
