"""Neural Spline Flow (Durkan, Bekasov, Murray & Papamakarios 2019), rational-quadratic couplings.

Vectors [B, D]: `num_layers` x [LU-linear map, RQ-spline coupling (alternating dimension masks)],
then a final LU-linear map (the paper's "RQ-NSF (C)" with invertible linear layers between).

Images [B, H, W, C] in [0, 1]: logit preprocessing, then the multi-scale architecture of Glow with
spline couplings: `num_scales` scales of squeeze and `num_layers` steps
[ActNorm, invertible 1x1 convolution, RQ-spline coupling (channel mask)], factor-out between
levels. The latent z has x's shape, arranged as in `multiscale.MultiScale`.
"""
from __future__ import annotations

import numbers

import flax.linen as nn

from gen_jax.models.flows.actnorm import ActNorm
from gen_jax.models.flows.chain import Chain
from gen_jax.models.flows.flow import FlowModel
from gen_jax.models.flows.glow import check_num_scales
from gen_jax.models.flows.invertible_conv import Invertible1x1Conv, LULinear
from gen_jax.models.flows.logit import Logit
from gen_jax.models.flows.multiscale import FlowLevel, MultiScale
from gen_jax.models.flows.spline_coupling import SplineCoupling


class NeuralSplineFlow(FlowModel):
  """RQ-spline coupling flow for vectors (event_shape (D,)) or images (event_shape (H, W, C)).

  Attributes:
    event_shape: (D,) or (H, W, C).
    num_layers: couplings (vectors) or steps per level (images).
    num_scales: scales of the image flow; H and W must be divisible by 2**num_scales.
    num_bins: K >= 1, spline bins (K = 1 makes every spline the identity: only the linear
      layers, and ActNorm for images, then learn).
    bound: B, the splines act on [-B, B] and are the identity outside.
    hidden: conditioner width (MLP units or conv channels).
    depth: conditioner hidden layers (vectors) or residual blocks (images).
    logit_alpha: alpha of the logit preprocessing of images.
  """
  num_layers: int = 4
  num_scales: int = 2
  num_bins: int = 8
  bound: float = 3.0
  hidden: int = 64
  depth: int = 2
  logit_alpha: float = 0.05

  def validate(self) -> None:
    if self.num_layers < 1:
      raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")
    if (isinstance(self.num_bins, bool) or not isinstance(self.num_bins, numbers.Integral)
        or self.num_bins < 1):
      raise ValueError(f"num_bins must be an integer >= 1, got {self.num_bins!r}")
    if len(self.event_shape) == 1:
      if self.event_shape[0] < 2:
        raise ValueError(f"NeuralSplineFlow needs at least D=2 dimensions, got event_shape "
                         f"{self.event_shape}")
      return
    check_num_scales(self.event_shape, self.num_scales, "NeuralSplineFlow")

  def _coupling(self, mask_type: str, parity: int) -> SplineCoupling:
    return SplineCoupling(mask_type=mask_type, parity=parity % 2, num_bins=self.num_bins,
                          bound=self.bound, hidden=self.hidden, depth=self.depth)

  def make_bijector(self) -> nn.Module:
    if not self.is_image:
      layers = []
      for i in range(self.num_layers):
        layers += [LULinear(seed=i), self._coupling("dimension", i)]
      layers.append(LULinear(seed=self.num_layers))
      return Chain(layers)
    levels = []
    for level in range(self.num_scales):
      steps = []
      for step in range(self.num_layers):
        steps += [ActNorm(), Invertible1x1Conv(seed=level * self.num_layers + step),
                  self._coupling("channel", step)]
      levels.append(FlowLevel(post=steps, squeeze=True))
    return Chain([Logit(alpha=self.logit_alpha), MultiScale(levels=levels)])
