"""Variational autoencoder (Kingma & Welling 2014; Rezende, Mohamed & Wierstra 2014) with the
importance-weighted bound (Burda, Grosse & Salakhutdinov 2016).

Prior p(z) = N(0, I) over `latent_dim`, posterior q(z | x) = N(m(x), diag(s(x)^2)) from the encoder,
likelihood p(x | z) from the decoder (see `likelihoods`). In nats per example:

  ELBO(x)   = E_q[log p(x | z)] - KL(q(z | x) || p(z))                     <= log p(x),
              one reparameterised sample z = m + s * eps for the first term, the KL analytic;
  IWAE_k(x) = log (1/k) sum_{i=1}^k p(x, z_i) / q(z_i | x),  z_i ~ q(z | x) iid,
              E[IWAE_k] <= E[IWAE_{k+1}] <= log p(x), and IWAE_k -> log p(x) as k -> infinity.

The gap of the ELBO is KL(q(z | x) || p(z | x)): with the exact posterior it is tight, and then every
log-weight log p(x, z_i) - log q(z_i | x) equals log p(x), whatever z_i (the IWAE bound has no
variance; the ELBO's analytic-KL estimator is still stochastic, with mean log p(x)).

With a discrete likelihood over the L levels of images the bounds are on the discrete data, so
bits/dim = -bound / (D ln 2) (`gen_jax.data.levels.bits_per_dim`).

Data enter as stored: images as integer levels x in {0, ..., L-1} (uint8 [B, H, W, C]), which the
networks see as the bin centres 2 x / (L - 1) - 1 in [-1, 1] (`gen_jax.data.levels.levels_to_centres`);
vectors as float32 [B, D], seen as they are.
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import checks
from gen_jax.data import levels
from gen_jax.distributions import gaussian
from gen_jax.distributions import likelihoods as likelihoods_lib
from gen_jax.models.vae.networks import ARCHITECTURES, check_conv_resolution, make_encoder_decoder


def check_finite(values, name: str = "ELBO") -> None:
  """Raises FloatingPointError if a concrete array (or dict of arrays) has non-finite entries.

  A no-op for tracers: under `jit` the caller checks the returned values (the training loop stops on a
  non-finite loss, `gen_jax.eval.likelihood` on a non-finite estimate).
  """
  for key, value in (values.items() if isinstance(values, dict) else [("", values)]):
    if checks.is_concrete(value) and not np.all(np.isfinite(np.asarray(value))):
      label = f"{name} ({key})" if key else name
      raise FloatingPointError(f"{label} is not finite ({int(np.sum(~np.isfinite(np.asarray(value))))} "
                               "non-finite entries): check the inputs and the parameters")


def largest_divisor_at_most(k: int, limit: int) -> int:
  """The largest divisor of k that is <= limit (the default chunk of an IWAE bound over k samples)."""
  return max(d for d in range(1, min(k, limit) + 1) if k % d == 0)


def check_num_samples(k: int, chunk_size: int | None) -> int:
  """Checks k > 0 and that chunk_size (default k) divides it; returns the chunk size."""
  checks.check_positive_int(k, "k (importance samples)")
  if chunk_size is None:
    return k
  checks.check_positive_int(chunk_size, "chunk_size")
  if k % chunk_size:
    raise ValueError(f"chunk_size must divide k (the samples are drawn in k / chunk_size equal chunks), "
                     f"got k={k}, chunk_size={chunk_size}")
  return chunk_size


class VAE(nn.Module):
  """VAE with a diagonal-Gaussian posterior, a standard-normal prior and a chosen likelihood.

  Attributes:
    event_shape: (D,) for vectors or (H, W, C) for images.
    latent_dim: dimensions of z.
    likelihood: a name from `likelihoods.LIKELIHOODS` (default options), or a likelihood instance
      (e.g. `Gaussian(log_std=-1.0)`, `DiscretizedLogisticMixture(256, 10)`, `get_likelihood(...)`).
    num_levels: L of discrete images (required for images, None for vectors).
    architecture: 'mlp' (vectors or flattened images) or 'conv' (images).
    hidden_sizes: MLP widths of the encoder (the decoder's are reversed); () makes both affine.
    channels: conv widths, one per halving of the resolution.
    num_res_blocks: residual blocks per resolution of the conv nets.

  Methods (with `model.apply(variables, ..., method=...)`; `model.init(rng, x, rng)` runs `elbo`):
    encode(x) -> (mean, log_std) [B, latent_dim];  decode(z) -> the likelihood's `out`;
    decode_mean(z) -> E[x | z];  elbo(x, rng) -> dict of [B] terms;  iwae_bound(x, rng, k) -> [B];
    log_prob_estimate(x, rng, k=5000) -> [B];  sample(rng, num) / sample_mean(rng, num);
    reconstruct(x, rng) / reconstruct_mean(x).
  """
  event_shape: tuple
  latent_dim: int
  likelihood: str | likelihoods_lib.Likelihood = "bernoulli"
  num_levels: int | None = None
  architecture: str = "mlp"
  hidden_sizes: Sequence[int] = (256, 256)
  channels: Sequence[int] = (32, 64)
  num_res_blocks: int = 0

  def __post_init__(self):
    shape = tuple(self.event_shape)
    if len(shape) not in (1, 3) or not all(isinstance(n, (int, np.integer)) and n > 0 for n in shape):
      raise ValueError(f"event_shape must be (D,) for vectors or (H, W, C) for images with positive "
                       f"integer sizes, got {self.event_shape!r}")
    object.__setattr__(self, "event_shape", tuple(int(n) for n in shape))
    object.__setattr__(self, "hidden_sizes", tuple(self.hidden_sizes))
    object.__setattr__(self, "channels", tuple(self.channels))
    checks.check_positive_int(self.latent_dim, "latent_dim")
    if self.is_image and (self.num_levels is None or not 2 <= self.num_levels <= 256):
      raise ValueError(f"images need num_levels, an integer in [2, 256], got {self.num_levels!r}")
    if not self.is_image and self.num_levels is not None:
      raise ValueError(f"vectors are continuous data: num_levels must be None, got {self.num_levels!r}")
    if self.architecture not in ARCHITECTURES:
      raise ValueError(f"unknown VAE architecture {self.architecture!r}: expected one of {list(ARCHITECTURES)}")
    if self.architecture == "conv":
      check_conv_resolution(self.event_shape, self.channels)
    observation = self.observation
    if self.is_image and isinstance(observation, likelihoods_lib.Gaussian):
      raise ValueError("images are discrete levels: use a discrete likelihood (bernoulli for num_levels=2, "
                       "discretized_logistic(_mixture)), not a Gaussian density")
    super().__post_init__()

  @property
  def is_image(self) -> bool:
    return len(self.event_shape) == 3

  @property
  def observation(self) -> likelihoods_lib.Likelihood:
    """The likelihood p(x | z) as an object (`likelihood` resolved from its name)."""
    return likelihoods_lib.resolve_likelihood(self.likelihood, self.is_image, self.num_levels)

  def setup(self):
    self.encoder, self.decoder = make_encoder_decoder(
        self.architecture, self.event_shape, self.latent_dim, self.observation.params_per_dim,
        self.hidden_sizes, self.channels, self.num_res_blocks)

  def network_input(self, x: jax.Array) -> jax.Array:
    """x as the networks see it: bin centres in [-1, 1] for images, the float32 vector otherwise."""
    checks.check_event_shape(x, self.event_shape, "x")
    if self.is_image:
      levels.check_levels(x, self.num_levels)
      return levels.levels_to_centres(x, self.num_levels)
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise ValueError(f"vectors x must be float32, got dtype {x.dtype}")
    return x.astype(jnp.float32)

  def encode(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """q(z | x): (mean, log_std), each [B, latent_dim]."""
    return self.encoder(self.network_input(x))

  def decode(self, z: jax.Array) -> jax.Array:
    """z [B, latent_dim] -> the likelihood's parameters `out` ([B, H, W, C * P] or [B, D * P])."""
    checks.check_event_shape(z, (self.latent_dim,), "z")
    return self.decoder(z)

  def decode_mean(self, z: jax.Array) -> jax.Array:
    """E[x | z], float32 in data scale (levels for images): [B, *event_shape]."""
    return self.observation.mean(self.decode(z))

  def posterior_mean(self, x: jax.Array) -> jax.Array:
    """E_q[z | x] [B, latent_dim]: the latent that reconstructions and interpolations start from."""
    return self.encode(x)[0]

  def elbo(self, x: jax.Array, rng: jax.Array) -> dict[str, jax.Array]:
    """The ELBO and its parts in nats per example, one posterior sample.

    Returns:
      {"elbo": [B], "reconstruction": [B] log p(x | z), "kl": [B] KL(q(z | x) || N(0, I)),
       "kl_per_dim": [B, latent_dim], "posterior_mean": [B, latent_dim] E_q[z | x] (for
       `latent_space.active_units`)}; elbo = reconstruction - kl.

    Raises:
      FloatingPointError: on non-finite values when called outside `jit` (see `check_finite`).
    """
    mean, log_std = self.encode(x)
    z = gaussian.reparameterize(rng, mean, log_std)
    reconstruction = self.observation.log_prob(self.decoder(z), x)
    kl_per_dim = gaussian.kl_to_standard_normal(mean, log_std)
    kl = jnp.sum(kl_per_dim, axis=-1)
    terms = {"elbo": reconstruction - kl, "reconstruction": reconstruction, "kl": kl,
             "kl_per_dim": kl_per_dim, "posterior_mean": mean}
    check_finite(terms)
    return terms

  def __call__(self, x: jax.Array, rng: jax.Array) -> dict[str, jax.Array]:
    return self.elbo(x, rng)

  def _chunk_log_weights(self, x, mean, log_std, rng, start, chunk_size):
    """log p(x, z_i) - log q(z_i | x) for i in [start, start + chunk_size): [chunk_size, B].

    Sample i uses the noise eps_i = normal(fold_in(rng, i)), so the samples do not depend on the
    chunking. The draws are a `lax.map` (a loop), not a vmap: "rbg" keys give other bits under vmap.
    """
    indices = start + jnp.arange(chunk_size)
    eps = jax.lax.map(lambda i: jax.random.normal(jax.random.fold_in(rng, i), mean.shape, mean.dtype), indices)
    z = mean + jnp.exp(log_std) * eps                                       # [chunk, B, latent]
    batch = x.shape[0]
    out = self.decoder(z.reshape(chunk_size * batch, self.latent_dim))
    x_repeated = jnp.broadcast_to(x, (chunk_size,) + x.shape).reshape((chunk_size * batch,) + x.shape[1:])
    log_likelihood = self.observation.log_prob(out, x_repeated).reshape(chunk_size, batch)
    log_prior = jnp.sum(gaussian.standard_normal_log_prob(z), axis=-1)
    log_posterior = jnp.sum(gaussian.standard_normal_log_prob(eps) - log_std, axis=-1)
    return log_likelihood + log_prior - log_posterior

  def iwae_bound(self, x: jax.Array, rng: jax.Array, k: int, chunk_size: int | None = None) -> jax.Array:
    """The importance-weighted bound log (1/k) sum_i p(x, z_i) / q(z_i | x) in nats, [B].

    Memory-safe: the k samples are drawn in k / chunk_size chunks by a scan that keeps a running
    log-sum-exp, so memory grows with chunk_size * B, not k * B. The value does not depend on
    chunk_size (sample i's noise comes from fold_in(rng, i)).

    Args:
      x: a batch [B, *event_shape].
      rng: a `jax.random` key.
      k: number of importance samples, > 0 (k = 1 is the ELBO with the KL estimated by its sample).
      chunk_size: samples per chunk, a divisor of k (default: k, one chunk).

    Raises:
      ValueError: k <= 0 or chunk_size not a positive divisor of k.
      FloatingPointError: non-finite values outside `jit`.
    """
    chunk_size = check_num_samples(k, chunk_size)
    mean, log_std = self.encode(x)

    def add_chunk(vae, log_sum, start):
      log_weights = vae._chunk_log_weights(x, mean, log_std, rng, start, chunk_size)
      return jnp.logaddexp(log_sum, jax.nn.logsumexp(log_weights, axis=0)), None

    scan = nn.scan(add_chunk, variable_broadcast="params", split_rngs={"params": False})
    starts = jnp.arange(0, k, chunk_size)
    log_sum, _ = scan(self, jnp.full(x.shape[:1], -jnp.inf, jnp.float32), starts)
    bound = log_sum - math.log(k)
    check_finite(bound, "IWAE bound")
    return bound

  def log_prob_estimate(self, x: jax.Array, rng: jax.Array, k: int = 5000,
                        chunk_size: int | None = None) -> jax.Array:
    """log p(x) estimated by importance sampling with many samples: `iwae_bound` with k = 5000.

    A stochastic lower bound (its expectation is <= log p(x)) that converges to log p(x) as k grows;
    papers report test NLL this way (Burda et al. 2016). chunk_size defaults to the largest divisor
    of k that is <= 100.
    """
    checks.check_positive_int(k, "k (importance samples)")
    if chunk_size is None:
      chunk_size = largest_divisor_at_most(k, 100)
    return self.iwae_bound(x, rng, k, chunk_size)

  def _prior_sample(self, rng: jax.Array, num: int) -> jax.Array:
    checks.check_positive_int(num, "num")
    return jax.random.normal(rng, (num, self.latent_dim), jnp.float32)

  def sample(self, rng: jax.Array, num: int) -> jax.Array:
    """`num` samples x ~ p(x | z), z ~ N(0, I), in data space (uint8 levels for images)."""
    z_rng, x_rng = jax.random.split(rng)
    return self.observation.sample(x_rng, self.decode(self._prior_sample(z_rng, num)))

  def sample_mean(self, rng: jax.Array, num: int) -> jax.Array:
    """E[x | z] for `num` draws z ~ N(0, I): float32 in data scale (the usual sample grids)."""
    return self.decode_mean(self._prior_sample(rng, num))

  def reconstruct(self, x: jax.Array, rng: jax.Array) -> jax.Array:
    """x' ~ p(x | z), z ~ q(z | x), in data space."""
    z_rng, x_rng = jax.random.split(rng)
    z = gaussian.reparameterize(z_rng, *self.encode(x))
    return self.observation.sample(x_rng, self.decode(z))

  def reconstruct_mean(self, x: jax.Array) -> jax.Array:
    """E[x | z] at z = the posterior mean, float32 in data scale."""
    return self.decode_mean(self.encode(x)[0])
