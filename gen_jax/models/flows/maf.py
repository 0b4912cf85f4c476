"""Masked Autoregressive Flow (Papamakarios, Pavlakou & Murray 2017) for vectors [B, D].

`num_layers` MADE-conditioned affine autoregressive layers (`MaskedAutoregressiveAffine`), with the
order of the dimensions reversed between consecutive layers. Density evaluation is one parallel
pass per layer; sampling is sequential over the D dimensions in each layer.
"""
from __future__ import annotations

from typing import Sequence

import flax.linen as nn

from gen_jax.models.flows.autoregressive import MaskedAutoregressiveAffine
from gen_jax.models.flows.chain import Chain
from gen_jax.models.flows.flow import FlowModel
from gen_jax.models.flows.permutation import Reverse


class MAF(FlowModel):
  """Masked autoregressive flow on vectors.

  Attributes:
    event_shape: (D,).
    num_layers: MADE affine layers.
    hidden_sizes: widths of each MADE's masked hidden layers.
  """
  num_layers: int = 5
  hidden_sizes: Sequence[int] = (64, 64)

  def validate(self) -> None:
    if len(self.event_shape) != 1:
      raise ValueError(f"MAF needs vectors: event_shape (D,), got {self.event_shape}")
    if self.num_layers < 1:
      raise ValueError(f"num_layers must be >= 1, got {self.num_layers}")

  def make_bijector(self) -> nn.Module:
    layers = []
    for i in range(self.num_layers):
      if i > 0:
        layers.append(Reverse())
      layers.append(MaskedAutoregressiveAffine(hidden_sizes=tuple(self.hidden_sizes)))
    return Chain(layers)
