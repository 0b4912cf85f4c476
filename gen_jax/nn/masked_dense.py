"""Dense layer with a fixed binary connectivity mask (the layer of MADE, Germain et al. 2015)."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


class MaskedDense(nn.Module):
  """y = x @ (W * M) + b with a fixed mask M of shape [in_features, features].

  Attributes:
    features: output width.
    mask: numpy array [in_features, features] of 0/1; M[i, j] = 0 cuts input i from output j.
    zero_init: initialise the kernel and bias at zero.
  """
  features: int
  mask: np.ndarray
  zero_init: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    mask = np.asarray(self.mask, dtype=np.float32)
    if mask.shape != (x.shape[-1], self.features):
      raise ValueError(f"mask must have shape {(x.shape[-1], self.features)} "
                       f"(in_features, features), got {mask.shape}")
    init = nn.initializers.zeros if self.zero_init else nn.initializers.lecun_normal()
    kernel = self.param("kernel", init, mask.shape, jnp.float32)
    bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
    return x @ (kernel * jnp.asarray(mask, x.dtype)).astype(x.dtype) + bias.astype(x.dtype)
