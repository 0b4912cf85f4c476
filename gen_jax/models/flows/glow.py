"""Glow (Kingma & Dhariwal 2018, "Glow: Generative Flow with Invertible 1x1 Convolutions").

Images [B, H, W, C] in [0, 1]: logit preprocessing (as Real NVP, so that samples map back near
[0, 1]), then `num_scales` scales; each scale squeezes 2x2 -> channels and applies `num_steps`
steps of flow

  ActNorm -> invertible 1x1 convolution (LU) -> affine coupling (channel mask),

and every scale but the last factors out half of its channels (multi-scale). The base is a
standard normal on every factored part (no learned prior). The latent z has x's shape, arranged
as in `multiscale.MultiScale`. Each scale halves H and W: 8x8 images allow up to 3 scales, 28x28
up to 2.
"""
from __future__ import annotations

import flax.linen as nn

from gen_jax.models.flows.actnorm import ActNorm
from gen_jax.models.flows.affine_coupling import AffineCoupling
from gen_jax.models.flows.chain import Chain
from gen_jax.models.flows.flow import FlowModel, max_squeezes
from gen_jax.models.flows.invertible_conv import Invertible1x1Conv
from gen_jax.models.flows.logit import Logit
from gen_jax.models.flows.multiscale import FlowLevel, MultiScale


def check_num_scales(event_shape: tuple, num_scales: int, model: str) -> None:
  """Multi-scale image flows squeeze once per scale: H and W must be divisible by 2**num_scales."""
  if len(event_shape) != 3:
    raise ValueError(f"{model} needs images: event_shape (H, W, C), got {event_shape}")
  limit = max_squeezes(event_shape[0], event_shape[1])
  if not 1 <= num_scales <= limit:
    raise ValueError(f"num_scales must be between 1 and {limit} for event_shape {event_shape} "
                     f"(each scale halves H and W, so at most {limit}), got {num_scales}")


class Glow(FlowModel):
  """Multi-scale Glow on images.

  Attributes:
    event_shape: (H, W, C).
    num_scales: S, scales (squeezes); H and W must be divisible by 2**S.
    num_steps: K, steps of flow per scale.
    hidden_channels: width of the coupling conditioners.
    depth: residual blocks in each conditioner (0 = Glow's conv3x3-conv1x1-conv3x3 net).
    logit_alpha: alpha of the logit preprocessing.
  """
  num_scales: int = 2
  num_steps: int = 4
  hidden_channels: int = 64
  depth: int = 0
  logit_alpha: float = 0.05

  def validate(self) -> None:
    check_num_scales(self.event_shape, self.num_scales, "Glow")
    if self.num_steps < 1:
      raise ValueError(f"num_steps must be >= 1, got {self.num_steps}")

  def make_bijector(self) -> nn.Module:
    levels = []
    for level in range(self.num_scales):
      steps = []
      for step in range(self.num_steps):
        steps += [ActNorm(),
                  Invertible1x1Conv(seed=level * self.num_steps + step),
                  AffineCoupling(mask_type="channel", parity=step % 2,
                                 hidden=self.hidden_channels, depth=self.depth)]
      levels.append(FlowLevel(post=steps, squeeze=True))
    return Chain([Logit(alpha=self.logit_alpha), MultiScale(levels=levels)])
