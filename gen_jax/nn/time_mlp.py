"""A time-conditioned MLP, the denoiser of diffusion models on vectors (2-D toy data, tabular).

  e = Dense(swish(Dense(timestep_embedding(1000 t))))           (as the U-Net's time embedding)
      (+ a label embedding for a class-conditional network, `label_embedding`)
  h_0 = x,  h_k = swish(Dense(h_{k-1}) + Dense(e)),  output = Dense(h_K)

Shapes: x [B, D], t [B] in [0, 1] -> [B, output_size or D]. `train` is accepted for the denoiser
interface (no dropout here).
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn
import jax

from gen_jax import checks
from gen_jax.nn.label_embedding import add_label_embedding
from gen_jax.nn.unet import timestep_embedding


class TimeConditionedMLP(nn.Module):
  hidden_sizes: Sequence[int] = (256, 256, 256)
  output_size: int | None = None
  embedding_dim: int = 64
  num_classes: int = 0  # > 0: class-conditional, labels [B] in {0, ..., num_classes} (the null label)

  @nn.compact
  def __call__(self, x: jax.Array, t: jax.Array, train: bool = False, labels: jax.Array | None = None
               ) -> jax.Array:
    del train
    checks.check_rank(x, 2, "x", layout="[batch, features]")
    if t.shape != x.shape[:1]:
      raise ValueError(f"t must have shape [batch] = {x.shape[:1]}, got {t.shape}")
    e = timestep_embedding(1000.0 * t, self.embedding_dim)
    e = nn.Dense(self.embedding_dim)(nn.swish(nn.Dense(self.embedding_dim)(e)))
    e = add_label_embedding(e, labels, self.num_classes)
    h = x
    for width in self.hidden_sizes:
      h = nn.swish(nn.Dense(width)(h) + nn.Dense(width, use_bias=False)(e))
    return nn.Dense(self.output_size or x.shape[-1])(h)
