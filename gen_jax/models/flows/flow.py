"""What every flow model shares: exact log-density under a standard-normal base, sampling,
encoding and decoding through one bijector (Rezende & Mohamed 2015; Dinh et al. 2017).

For a bijection f: x -> z (data -> latent) with z of x's shape and base N(0, I),

  log p(x) = log N(f(x); 0, I) + log |det df/dx|,
  log N(z; 0, I) = -1/2 sum_i z_i^2 - D/2 log(2 pi),

in nats per example. Sampling draws z ~ N(0, T^2 I) (T = temperature; T = 1 samples the model)
and returns f^{-1}(z).
"""
from __future__ import annotations


import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import checks
from gen_jax.distributions import gaussian


def max_squeezes(height: int, width: int) -> int:
  """How many times [H, W] can be halved (2x2 squeeze) with both sides staying integers."""
  count = 0
  while height % 2 == 0 and width % 2 == 0 and height > 1 and width > 1:
    height, width, count = height // 2, width // 2, count + 1
  return count


def _as_jax_float(x) -> jax.Array:
  """x in JAX's floating dtype: a float64 numpy array becomes float32 unless x64 is enabled, once here,
  so that no bijector asks for float64 (which JAX answers with a warning per layer)."""
  x = jnp.asarray(x)
  return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


class FlowModel(nn.Module):
  """Base of the flow models: subclasses build their bijector in `make_bijector`.

  Vector flows have event_shape (D,) and take float32 [B, D]; image flows have event_shape
  (H, W, C) and take float32 [B, H, W, C] in [0, 1] (dequantized by the data pipeline).

  Methods (all with `model.apply(variables, ..., method=...)`):
    forward(x) -> (z, log_det [B]);  inverse(z) -> x;  log_prob(x) -> [B] nats;
    sample(rng, num, temperature=1.0) -> [num, *event_shape];  encode(x) -> z;  decode(z) -> x.
  `model.init(rng, x)` (or with `method=model.forward` / `model.log_prob`) creates the parameters,
  with data-dependent initialisation of the ActNorm layers from the batch x.
  """
  event_shape: tuple

  def __post_init__(self):
    shape = tuple(self.event_shape)
    if len(shape) not in (1, 3) or not all(isinstance(n, (int, np.integer)) and n > 0
                                           for n in shape):
      raise ValueError(f"event_shape must be (D,) for vectors or (H, W, C) for images with "
                       f"positive integer sizes, got {self.event_shape!r}")
    object.__setattr__(self, "event_shape", tuple(int(n) for n in shape))
    self.validate()
    super().__post_init__()

  @property
  def is_image(self) -> bool:
    return len(self.event_shape) == 3

  def validate(self) -> None:
    """Hyper-parameter checks of the subclass (raise ValueError)."""

  def make_bijector(self) -> nn.Module:
    raise NotImplementedError

  def setup(self):
    self.bijector = self.make_bijector()

  def _check_data(self, x: jax.Array) -> None:
    checks.check_event_shape(x, self.event_shape, "x")
    if self.is_image:
      checks.check_range(x, 0.0, 1.0, "x (images)")

  def forward(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """x -> (z, log |det dz/dx|): z has x's shape, log_det is [batch]."""
    self._check_data(x)
    return self.bijector.forward(_as_jax_float(x))

  def inverse(self, z: jax.Array) -> jax.Array:
    """z -> x, the inverse of `forward`."""
    checks.check_event_shape(z, self.event_shape, "z")
    return self.bijector.inverse(_as_jax_float(z))

  def log_prob(self, x: jax.Array) -> jax.Array:
    """Exact log-density of x in nats, [batch]."""
    z, log_det = self.forward(x)
    return gaussian.sum_per_example(gaussian.standard_normal_log_prob(z)) + log_det

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.log_prob(x)

  def sample(self, rng: jax.Array, num: int, temperature: float = 1.0) -> jax.Array:
    """`num` samples [num, *event_shape]: x = f^{-1}(z), z ~ N(0, temperature^2 I)."""
    checks.check_positive_int(num, "num")
    z = temperature * jax.random.normal(rng, (num,) + self.event_shape, jnp.float32)
    return self.inverse(z)

  def encode(self, x: jax.Array) -> jax.Array:
    return self.forward(x)[0]

  def decode(self, z: jax.Array) -> jax.Array:
    return self.inverse(z)
