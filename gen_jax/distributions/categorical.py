"""The categorical distribution over L levels per dimension: the output of PixelCNN (van den Oord
et al. 2016, "Pixel Recurrent Neural Networks", section 5.3: a 256-way softmax per sub-pixel).

P(x = l) = softmax(logits)_l, log P(x) = logits_x - logsumexp(logits). It speaks the decoder
likelihoods' API of `gen_jax.distributions.likelihoods` (out [..., C * L], parameter-major), so the
PixelCNN takes it and the discretized logistic mixture interchangeably.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

from gen_jax.data.levels import check_levels, check_num_levels
from gen_jax.distributions.likelihoods import Likelihood


@dataclasses.dataclass(frozen=True)
class Categorical(Likelihood):
  """L-way softmax per dimension over integer levels {0, ..., L-1}; out = the L logits (P = L).

  Attributes: num_levels L in [2, 256].
  """
  num_levels: int

  def __post_init__(self):
    check_num_levels(self.num_levels)

  @property
  def params_per_dim(self) -> int:
    return self.num_levels

  def log_prob_per_dim(self, out: jax.Array, x: jax.Array) -> jax.Array:
    check_levels(x, self.num_levels)
    log_p = jax.nn.log_softmax(self._params(out, x), axis=-2)          # [..., L, C]
    return jnp.take_along_axis(log_p, x.astype(jnp.int32)[..., None, :], axis=-2)[..., 0, :]

  def level_log_probs(self, out: jax.Array, num_levels: int | None = None) -> jax.Array:
    """log P(x = l) for every level: [..., C, L], the log-softmax of the logits."""
    return jnp.swapaxes(jax.nn.log_softmax(self._params(out), axis=-2), -1, -2)

  def sample(self, rng: jax.Array, out: jax.Array) -> jax.Array:
    return jax.random.categorical(rng, self._params(out), axis=-2).astype(jnp.uint8)

  def mean(self, out: jax.Array) -> jax.Array:
    probs = jax.nn.softmax(self._params(out), axis=-2)
    return jnp.sum(probs * jnp.arange(self.num_levels, dtype=jnp.float32)[:, None], axis=-2)
