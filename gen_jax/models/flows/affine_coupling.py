"""Affine coupling layer (Dinh et al. 2017, "Density estimation using Real NVP", 3.3).

With mask b (1 = passed through) and (log s, t) = NN(b * x):

  y = b * x + (1 - b) * (x * exp(log s) + t),
  log |det dy/dx| = sum over entries of (1 - b) * log s,
  x = b * y + (1 - b) * (y - t) * exp(-log s)        (t, s depend on b * y = b * x only).

For stability the raw network output h is soft-clamped, log s = c * tanh(h / c) with
c = `log_scale_bound` (so |log s| < c, and log s ~ h near 0, RealNVP's tanh-bounded scale).
The network's last layer is zero-initialised, so the coupling starts as the identity.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax.models.flows.coupling import CouplingConditioner, coupling_mask


class AffineCoupling(nn.Module):
  """RealNVP affine coupling for vectors [B, D] or images [B, H, W, C].

  Attributes:
    mask_type: "dimension" (vectors), "checkerboard" or "channel" (images).
    parity: 0 or 1; alternate it between consecutive couplings.
    hidden: width of the conditioner (units or channels).
    depth: hidden layers (MLP) or residual blocks (conv ResNet) of the conditioner.
    log_scale_bound: c in log s = c * tanh(h / c).
  """
  mask_type: str = "dimension"
  parity: int = 0
  hidden: int = 64
  depth: int = 2
  log_scale_bound: float = 3.0

  def setup(self):
    self.conditioner = CouplingConditioner(num_params=2, hidden=self.hidden, depth=self.depth)

  def _shift_log_scale(self, x_masked, mask):
    out = self.conditioner(x_masked)
    c = self.log_scale_bound
    log_scale = c * jnp.tanh(out[..., 0] / c) * (1.0 - mask)
    shift = out[..., 1] * (1.0 - mask)
    return shift, log_scale

  def forward(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    mask = jnp.asarray(coupling_mask(tuple(x.shape[1:]), self.mask_type, self.parity), x.dtype)
    shift, log_scale = self._shift_log_scale(x * mask, mask)
    y = x * jnp.exp(log_scale) + shift                      # identity where mask == 1
    return y, jnp.sum(log_scale.reshape(x.shape[0], -1), axis=-1)

  def inverse(self, y: jax.Array) -> jax.Array:
    mask = jnp.asarray(coupling_mask(tuple(y.shape[1:]), self.mask_type, self.parity), y.dtype)
    shift, log_scale = self._shift_log_scale(y * mask, mask)
    return (y - shift) * jnp.exp(-log_scale)
