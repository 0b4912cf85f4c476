"""Real NVP (Dinh, Sohl-Dickstein & Bengio 2017, "Density estimation using Real NVP").

Vectors [B, D]: `num_couplings` affine couplings with alternating dimension masks (for D = 2 the
classic toy flow: each coupling transforms one coordinate conditioned on the other).

Images [B, H, W, C] in [0, 1] (paper, 3.6 and 4.1): logit preprocessing y = logit(a + (1 - 2a) x),
then `num_scales` scales. Every scale but the last: `num_couplings_per_scale` checkerboard
couplings, squeeze, `num_couplings_per_scale` channel couplings, factor out half the channels.
Last scale: `num_couplings_per_scale + 1` checkerboard couplings (the paper uses 3, 3 and 4).
The latent z has x's shape, arranged as in `multiscale.MultiScale`.
"""
from __future__ import annotations

import flax.linen as nn

from gen_jax.models.flows.affine_coupling import AffineCoupling
from gen_jax.models.flows.chain import Chain
from gen_jax.models.flows.flow import FlowModel, max_squeezes
from gen_jax.models.flows.logit import Logit
from gen_jax.models.flows.multiscale import FlowLevel, MultiScale


def max_realnvp_scales(height: int, width: int) -> int:
  """Scales such that the last one still has >= 2 spatial positions for its checkerboard."""
  scales = 1
  while scales - 1 < max_squeezes(height, width) and (height * width) // 4 ** scales >= 2:
    scales += 1
  return scales


class RealNVP(FlowModel):
  """Real NVP for vectors (event_shape (D,)) or images (event_shape (H, W, C)).

  Attributes:
    event_shape: (D,) or (H, W, C).
    num_couplings: couplings of the vector flow.
    num_scales: scales of the image flow (squeezes = num_scales - 1).
    num_couplings_per_scale: checkerboard (and channel) couplings per image scale.
    hidden: conditioner width (MLP units for vectors, conv channels for images).
    depth: conditioner hidden layers (vectors) or residual blocks (images).
    logit_alpha: alpha of the logit preprocessing of images.
  """
  num_couplings: int = 8
  num_scales: int = 2
  num_couplings_per_scale: int = 3
  hidden: int = 64
  depth: int = 2
  logit_alpha: float = 0.05

  def validate(self) -> None:
    if len(self.event_shape) == 1:
      if self.event_shape[0] < 2:
        raise ValueError(f"RealNVP needs at least D=2 dimensions, got event_shape {self.event_shape}")
      if self.num_couplings < 1:
        raise ValueError(f"num_couplings must be >= 1, got {self.num_couplings}")
      return
    h, w, _ = self.event_shape
    limit = max_realnvp_scales(h, w)
    if not 1 <= self.num_scales <= limit:
      raise ValueError(f"num_scales must be between 1 and {limit} for event_shape "
                       f"{self.event_shape} (each scale but the last halves H and W, and the last "
                       f"needs >= 2 positions), got {self.num_scales}")
    if self.num_couplings_per_scale < 1:
      raise ValueError(f"num_couplings_per_scale must be >= 1, got {self.num_couplings_per_scale}")

  def _coupling(self, mask_type: str, parity: int) -> AffineCoupling:
    return AffineCoupling(mask_type=mask_type, parity=parity % 2, hidden=self.hidden,
                          depth=self.depth)

  def make_bijector(self) -> nn.Module:
    if not self.is_image:
      return Chain([self._coupling("dimension", i) for i in range(self.num_couplings)])
    n = self.num_couplings_per_scale
    levels = []
    for _ in range(self.num_scales - 1):
      levels.append(FlowLevel(pre=[self._coupling("checkerboard", i) for i in range(n)],
                              squeeze=True,
                              post=[self._coupling("channel", i) for i in range(n)]))
    levels.append(FlowLevel(pre=[self._coupling("checkerboard", i) for i in range(n + 1)],
                            squeeze=False))
    return Chain([Logit(alpha=self.logit_alpha), MultiScale(levels=levels)])
