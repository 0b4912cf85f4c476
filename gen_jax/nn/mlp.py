"""Multi-layer perceptron, the conditioner of vector couplings."""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax


class MLP(nn.Module):
  """Dense -> activation -> ... -> Dense.

  Attributes:
    hidden_sizes: widths of the hidden layers.
    output_size: width of the last (linear) layer.
    activation: elementwise nonlinearity between layers.
    zero_init_output: initialise the last layer's kernel and bias at zero, so the network outputs 0
      at initialisation (a coupling it conditions then starts as the identity).
  """
  hidden_sizes: Sequence[int]
  output_size: int
  activation: Callable[[jax.Array], jax.Array] = nn.relu
  zero_init_output: bool = False

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    for width in self.hidden_sizes:
      x = self.activation(nn.Dense(width)(x))
    init = nn.initializers.zeros if self.zero_init_output else nn.initializers.lecun_normal()
    return nn.Dense(self.output_size, kernel_init=init, bias_init=nn.initializers.zeros)(x)
