"""Spectral normalisation (Miyato et al. 2018, "Spectral normalization for GANs"), as flax's wrapper.

A layer's kernel W is replaced by W / sigma(W), sigma the largest singular value of W reshaped to a
matrix [fan_in, fan_out] (a conv kernel [kh, kw, C_in, C_out] becomes [kh kw C_in, C_out]; Miyato et
al. normalise this matrix, which bounds but does not equal the operator norm of the convolution).
sigma is estimated by power iteration with a persistent right vector u [1, fan_out]:

  v <- normalise(u W^T),  u <- normalise(v W),  sigma = v W u^T       (n_steps times per call)

with u and v held constant under differentiation (stop_gradient), as in the paper's Algorithm 1.

This is `flax.linen.SpectralNorm`, used as is. Its state lives in the mutable collection
'batch_stats' (flax's default, shared with BatchNorm's running statistics): for each wrapped
kernel, `<layer name>/kernel/u` [1, fan_out] and `<layer name>/kernel/sigma` [] (the last estimate).
Every network of this package passes `update_stats=train`:

  train=True   the power iteration starts from the stored u and, with mutable=['batch_stats'], the
               new u and sigma are stored (one step per call converges across training steps, the
               paper's scheme); without mutable, flax raises (nothing is silently dropped).
  train=False  the same n_steps are run from the stored u but nothing is written: deterministic,
               usable inside gradient penalties and for evaluation.

Biases (vectors) are left unnormalised, as in the paper.
"""
from __future__ import annotations

from typing import Any

import flax
import flax.linen as nn
import jax

STATE_COLLECTION = "batch_stats"  # BatchNorm running statistics and spectral-norm (u, sigma)


def maybe_spectral_norm(layer: nn.Module, x: jax.Array, enabled: bool, train: bool,
                        n_steps: int = 1) -> jax.Array:
  """layer(x), with the layer's kernel spectrally normalised when `enabled` (call inside compact)."""
  if not enabled:
    return layer(x)
  return nn.SpectralNorm(layer, n_steps=n_steps, collection_name=STATE_COLLECTION)(x, update_stats=train)


def spectral_sigmas(variables: Any) -> dict[str, jax.Array]:
  """The last power-iteration estimates sigma of every spectrally normalised kernel, by path.

  For training-health logs (a sigma far from its previous value means u has not converged). Accepts
  the full variables dict or its 'batch_stats' collection.
  """
  if isinstance(variables, (dict, flax.core.FrozenDict)) and STATE_COLLECTION in variables:
    variables = variables[STATE_COLLECTION]
  flat = flax.traverse_util.flatten_dict(flax.core.unfreeze(variables), sep="/")
  return {path: value for path, value in flat.items() if path.endswith("/sigma")}
