"""MADE: Masked Autoencoder for Distribution Estimation (Germain et al. 2015).

Each input dimension i (in the natural order 1..D) gets degree m(i) = i, each hidden unit a degree
m(k) in {1, ..., D-1}. A hidden weight from unit j to unit k is kept iff m(k) >= m(j); an output
weight from hidden unit k to output dimension i is kept iff i > m(k). The network is then
autoregressive: output i depends only on x_{<i} (output 1 is a constant).
"""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import numpy as np

from gen_jax.nn.masked_dense import MaskedDense


def made_degrees(num_inputs: int, hidden_sizes: Sequence[int]) -> list[np.ndarray]:
  """Degrees of the input and hidden layers (deterministic, cycling through 1..D-1)."""
  degrees = [np.arange(1, num_inputs + 1)]
  for width in hidden_sizes:
    degrees.append(np.arange(width) % max(1, num_inputs - 1) + 1)
  return degrees


def made_masks(num_inputs: int, hidden_sizes: Sequence[int],
               params_per_input: int) -> list[np.ndarray]:
  """Masks [in, out] of every layer; the output layer has D * params_per_input units, grouped
  as [D, params_per_input] (unit i * params_per_input + p belongs to input dimension i)."""
  degrees = made_degrees(num_inputs, hidden_sizes)
  masks = [(d_out[None, :] >= d_in[:, None]).astype(np.float32)
           for d_in, d_out in zip(degrees[:-1], degrees[1:])]
  out_degrees = np.repeat(np.arange(1, num_inputs + 1), params_per_input)
  masks.append((out_degrees[None, :] > degrees[-1][:, None]).astype(np.float32))
  return masks


class MADE(nn.Module):
  """Autoregressive network [B, D] -> [B, D, params_per_input]; out[:, i] depends on x[:, :i].

  Attributes:
    hidden_sizes: widths of the masked hidden layers.
    params_per_input: outputs per input dimension (2 for an affine MAF layer).
    activation: elementwise nonlinearity.
    zero_init_output: zero-initialise the last layer (the MAF layer then starts as the identity).
  """
  hidden_sizes: Sequence[int]
  params_per_input: int
  activation: Callable[[jax.Array], jax.Array] = nn.relu
  zero_init_output: bool = True

  @nn.compact
  def __call__(self, x: jax.Array) -> jax.Array:
    num_inputs = x.shape[-1]
    masks = made_masks(num_inputs, self.hidden_sizes, self.params_per_input)
    h = x
    for mask in masks[:-1]:
      h = self.activation(MaskedDense(mask.shape[1], mask)(h))
    h = MaskedDense(masks[-1].shape[1], masks[-1], zero_init=self.zero_init_output)(h)
    return h.reshape(x.shape[:-1] + (num_inputs, self.params_per_input))
