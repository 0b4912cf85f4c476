"""Activation normalisation (Kingma & Dhariwal 2018, "Glow", 3.1).

Per-channel affine map with parameters b, log s of shape [C], shared over the batch and the
spatial positions:

  y = (x + b) * exp(log s),     log |det dy/dx| = (H * W) * sum_c log s_c

(H * W = 1 for vectors [B, D]). Data-dependent initialisation: when the parameters are created
from a batch x (`module.init(rng, x, method=module.forward)`), b = -mean(x) and
log s = -log(std(x) + eps) per channel, so that the output on that batch has zero mean and unit
variance per channel. Parameters created from `inverse` (no data) start at the identity.

A batch on which a channel does not vary (a zero batch, as `model.init(rng, jnp.zeros(...))` is often
written, or a single vector) would set log s = -log(eps) = 13.8 there: a scale of 1e6 that sends
every later layer far off (the Glow of this package gives a non-finite log_prob on a zero batch).
Such a batch is refused with a ValueError when it is concrete (an eager `init`); under `jit` the
check is skipped, as every value check of `gen_jax.checks` is (the training loop inits on real data).
"""
from __future__ import annotations

import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import checks


def check_init_batch(x: jax.Array, axes: tuple[int, ...]) -> None:
  """Raises ValueError if the concrete batch `x` cannot set a data-dependent scale: non-finite values,
  or a channel with zero spread over `axes`. Skipped for tracers."""
  if not checks.is_concrete(x):
    return
  x = np.asarray(x)
  if not np.all(np.isfinite(x)):
    raise ValueError("ActNorm's data-dependent init got non-finite values; expected a batch of real data")
  flat = np.moveaxis(x, -1, 0).reshape(x.shape[-1], -1)
  constant = np.flatnonzero(flat.max(axis=1) == flat.min(axis=1))
  if constant.size:
    raise ValueError(
        f"ActNorm's data-dependent init needs a batch that varies in every channel; {constant.size} of "
        f"{x.shape[-1]} channels are constant over the {flat.shape[1]} values of its input of shape {x.shape} "
        f"(channels {constant[:8].tolist()}{' ...' if constant.size > 8 else ''}). Initialise with a "
        "batch of real (dequantized) training data, e.g. model.init(rng, x_train[:256]), not zeros or a "
        "single example")


class ActNorm(nn.Module):
  """Per-channel affine normalisation with data-dependent initialisation.

  Works on vectors [B, D] and images [B, H, W, C] (channel = last axis).

  Attributes:
    eps: added to the initial std before the log.
  """
  eps: float = 1e-6

  def _params(self, x: jax.Array | None, channels: int):
    if x is None:
      bias_init = lambda rng, shape: jnp.zeros(shape, jnp.float32)
      log_scale_init = lambda rng, shape: jnp.zeros(shape, jnp.float32)
    else:
      axes = tuple(range(x.ndim - 1))
      x0 = jax.lax.stop_gradient(x).astype(jnp.float32)
      check_init_batch(x0, axes)
      bias_init = lambda rng, shape: -jnp.mean(x0, axis=axes)
      log_scale_init = lambda rng, shape: -jnp.log(jnp.std(x0, axis=axes) + self.eps)
    bias = self.param("bias", bias_init, (channels,))
    log_scale = self.param("log_scale", log_scale_init, (channels,))
    return bias, log_scale

  @nn.compact
  def __call__(self, x: jax.Array, inverse: bool = False) -> tuple[jax.Array, jax.Array]:
    """forward (inverse=False) or inverse map of x, and its log |det J| [batch]."""
    checks.check_vector_or_image(x, "y" if inverse else "x")
    bias, log_scale = self._params(None if inverse else x, x.shape[-1])
    bias, log_scale = bias.astype(x.dtype), log_scale.astype(x.dtype)
    log_det = math.prod(x.shape[1:-1]) * jnp.sum(log_scale)
    if inverse:
      return x * jnp.exp(-log_scale) - bias, jnp.broadcast_to(-log_det, x.shape[:1])
    return (x + bias) * jnp.exp(log_scale), jnp.broadcast_to(log_det, x.shape[:1])

  def forward(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    return self(x)

  def inverse(self, y: jax.Array) -> jax.Array:
    return self(y, inverse=True)[0]
