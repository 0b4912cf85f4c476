"""Rational-quadratic spline coupling layer (Durkan et al. 2019, "Neural Spline Flows", 3.2).

With mask b (1 = passed through) and spline parameters theta = NN(b * x) (K widths, K heights
and K - 1 interior derivatives per entry):

  y = b * x + (1 - b) * RQS(x; theta),
  log |det dy/dx| = sum over entries of (1 - b) * log RQS'(x; theta),

with RQS the monotonic rational-quadratic spline on [-B, B] with identity tails
(`rational_quadratic_spline`). The network's last layer is zero-initialised, so the layer starts
as the identity. K >= 1; with K = 1 the spline has no free knot (its one bin maps [-B, B] onto
itself with unit end derivatives), so the layer is the identity whatever the network outputs.
"""
from __future__ import annotations

import numbers

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.models.flows.coupling import CouplingConditioner, coupling_mask
from gen_jax.models.flows.rational_quadratic_spline import rational_quadratic_spline


class SplineCoupling(nn.Module):
  """RQ-spline coupling for vectors [B, D] or images [B, H, W, C].

  Attributes:
    mask_type: "dimension" (vectors), "checkerboard" or "channel" (images).
    parity: 0 or 1; alternate it between consecutive couplings.
    num_bins: K, bins of the spline.
    bound: B, the spline acts on [-B, B] and is the identity outside.
    hidden: width of the conditioner (units or channels).
    depth: hidden layers (MLP) or residual blocks (conv ResNet) of the conditioner.
  """
  mask_type: str = "dimension"
  parity: int = 0
  num_bins: int = 8
  bound: float = 3.0
  hidden: int = 64
  depth: int = 2

  def __post_init__(self):
    if (isinstance(self.num_bins, bool) or not isinstance(self.num_bins, numbers.Integral)
        or self.num_bins < 1):
      raise ValueError(f"num_bins must be an integer >= 1, got {self.num_bins!r}")
    super().__post_init__()

  def setup(self):
    self.conditioner = CouplingConditioner(num_params=3 * self.num_bins - 1, hidden=self.hidden,
                                           depth=self.depth)

  def _transform(self, x: jax.Array, inverse: bool) -> tuple[jax.Array, jax.Array]:
    mask = jnp.asarray(coupling_mask(tuple(x.shape[1:]), self.mask_type, self.parity), x.dtype)
    theta = self.conditioner(x * mask)                        # [B, *event, 3K - 1]
    k = self.num_bins
    y, log_det = rational_quadratic_spline(
        x, theta[..., :k], theta[..., k:2 * k], theta[..., 2 * k:], self.bound, inverse=inverse)
    y = jnp.where(mask > 0, x, y)
    log_det = log_det * (1.0 - mask)
    return y, jnp.sum(log_det.reshape(x.shape[0], -1), axis=-1)

  def forward(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return self._transform(x, inverse=False)

  def inverse(self, y: jax.Array) -> jax.Array:
    return self._transform(y, inverse=True)[0]
