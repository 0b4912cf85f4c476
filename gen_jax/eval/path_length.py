"""Perceptual path length: how smoothly the outputs change along paths in a generator's latent space.

Karras, Laine & Aila (2019, "A Style-Based Generator Architecture for Generative Adversarial
Networks", sec. 3.2) measure the expected squared output distance between two nearby points of a
latent path, divided by the squared step,

  l = E_{z1, z2 ~ p(z), t ~ U(0, 1)} [ d(G(path(z1, z2; t)), G(path(z1, z2; t + eps))) / eps^2 ],

with d the LPIPS distance (itself a squared distance between normalized VGG16 features), eps = 1e-4,
path the straight line for W (lerp: z1 + t (z2 - z1)) and slerp for Z. As d is squared, d / eps^2
tends to the squared speed ||J_G(z(t)) z'(t)||^2 of the outputs along the path as eps -> 0, and for a
linear G(z) = A z on lines it equals ||A (z2 - z1)||^2 exactly: E = 2 tr(A^T A) for z ~ N(0, I).

StyleGAN's code (`metrics/perceptual_path_length.py`) slerps on the unit sphere: both endpoints are
normalized, a = z1 / |z1|, b = z2 / |z2|, and path(t) = a cos(t w) + c sin(t w) with cos w = <a, b> and c
the unit vector along b - <a, b> a (its generator normalizes z first, so it is blind to the norm).
`path="spherical"` is that same unit-sphere path: a generator that is not norm-invariant should rescale
in `generate` (by sqrt(latent_dim) for a N(0, I) prior). Its speed on the sphere is w, so for G(z) = z
d / eps^2 -> w^2; two independent Gaussian directions in 2-D have w uniform on [0, pi], E = pi^2 / 3.

The code also rejects outliers before averaging: it keeps the values between the 1st percentile
(`np.percentile(..., 1, interpolation='lower')`) and the 99th (`'higher'`), both included, which
`filter_outliers=True` (the default, as StyleGAN's reported numbers) repeats; False is the plain mean,
the expectation above.

`distance(a, b)` takes two output batches and returns [B] distances (LPIPS, say); the default is the
squared Euclidean distance between `features(a)` and `features(b)` (each flattened per example),
`features` defaulting to the outputs themselves. `endpoint_distances` gives d(G(z1), G(z2)) for the same pairs; the ratio of the mean path length to
the mean endpoint distance is at least 1 for a squared distance (per pair, by Cauchy-Schwarz,
E_t ||v(t)||^2 >= (E_t ||v(t)||)^2 >= ||G(z2) - G(z1)||^2 on a line) and 1 where the outputs move
straight at constant speed (a linear G): a scale-free measure of how much the path bends in feature
space, comparable across latent spaces of different sizes, where the PPL itself is not.

All latents and t are drawn from `rng` at once
(`sample_latents(key, num)` for z1 and for z2: N(0, I) in Z, or the mapping of it in W) and fed in
batches of `batch_size` pairs, the last one padded and cut, so the result depends on rng alone.
"""
from __future__ import annotations

from typing import Callable, Optional

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import checks


def _unit(v: jax.Array) -> jax.Array:
  return v / jnp.maximum(jnp.linalg.norm(v, axis=-1, keepdims=True), 1e-30)


def unit_sphere_slerp(z1: jax.Array, z2: jax.Array, t: jax.Array) -> jax.Array:
  """StyleGAN's slerp: the great circle from z1 / |z1| towards z2 / |z2| at angles t w, [B, ..., D].

  `t` [B] may leave [0, 1] (t + eps): the circle goes on. Unit-norm output, over the last axis.
  """
  a, b = _unit(z1), _unit(z2)
  cos_omega = jnp.clip(jnp.sum(a * b, axis=-1, keepdims=True), -1.0, 1.0)
  angle = t.reshape(t.shape + (1,) * (z1.ndim - 1)) * jnp.arccos(cos_omega)
  return _unit(a * jnp.cos(angle) + _unit(b - cos_omega * a) * jnp.sin(angle))


def _linear_path(z1: jax.Array, z2: jax.Array, t: jax.Array) -> jax.Array:
  return z1 + t.reshape(t.shape + (1,) * (z1.ndim - 1)) * (z2 - z1)


def _squared_feature_distance(features: Callable) -> Callable:
  def distance(a, b):
    fa, fb = jnp.asarray(features(a)), jnp.asarray(features(b))
    return jnp.sum(jnp.square(fa - fb).reshape(fa.shape[0], -1), axis=1)
  return distance


def percentile_filtered_mean(values) -> float:
  """Mean of the values between the 1st ('lower') and 99th ('higher') percentiles, both included."""
  values = np.asarray(values, np.float64).ravel()
  if not values.size:
    raise ValueError("percentile_filtered_mean needs at least one value")
  low = np.percentile(values, 1, method="lower")
  high = np.percentile(values, 99, method="higher")
  return float(values[(low <= values) & (values <= high)].mean())


def path_lengths(generate: Callable, sample_latents: Callable, rng: jax.Array, num_samples: int, *,
                 path: str = "linear", epsilon: float = 1e-4, distance: Optional[Callable] = None,
                 features: Optional[Callable] = None, batch_size: int = 256) -> np.ndarray:
  """d(G(path(t)), G(path(t + eps))) / eps^2 for `num_samples` draws of (z1, z2, t): [num_samples].

  Args:
    generate: latents [B, ...] -> outputs [B, ...].
    sample_latents: (key, num) -> [num, ...] latents (e.g. `jax.random.normal(key, (num, dim))`).
    rng: a `jax.random` key.
    num_samples: how many (z1, z2, t) to draw.
    path: "linear" (z1 + t (z2 - z1)) or "spherical" (`unit_sphere_slerp`, StyleGAN's in Z).
    epsilon: the step eps (StyleGAN's 1e-4).
    distance: (outputs a, outputs b) -> [B]; default squared Euclidean between features.
    features: outputs [B, ...] -> features [B, ...] for the default distance (default: the outputs).
    batch_size: pairs of latents per `generate` call (it sees 2 * batch_size latents).

  Returns:
    [num_samples] float64 path lengths.
  """
  checks.check_positive_int(num_samples, "num_samples")
  checks.check_positive_int(batch_size, "batch_size")
  paths = {"linear": _linear_path, "spherical": unit_sphere_slerp}
  if path not in paths:
    raise ValueError(f"path must be one of {sorted(paths)}, got {path!r}")
  if not (np.isfinite(epsilon) and epsilon > 0):
    raise ValueError(f"epsilon must be a positive step, got {epsilon!r}")
  if distance is not None and features is not None:
    raise ValueError("pass either distance (a, b) -> [B] or features for the default squared Euclidean "
                     "distance, not both")
  if distance is None:
    distance = _squared_feature_distance(features if features is not None else (lambda x: x))
  key1, key2, key_t = jax.random.split(rng, 3)
  z1, z2 = jnp.asarray(sample_latents(key1, num_samples)), jnp.asarray(sample_latents(key2, num_samples))
  if z1.ndim < 2 or z1.shape[0] != num_samples or z2.shape != z1.shape:
    raise ValueError(f"sample_latents(key, {num_samples}) must return latents [{num_samples}, ...] of one "
                     f"shape, got {z1.shape} and {z2.shape}")
  t = jax.random.uniform(key_t, (num_samples,), z1.dtype)
  batch_size = min(batch_size, num_samples)
  num_batches = -(-num_samples // batch_size)
  pad = ((0, num_batches * batch_size - num_samples),) + ((0, 0),) * (z1.ndim - 1)
  z1, z2, t = jnp.pad(z1, pad), jnp.pad(z2, pad), jnp.pad(t, pad[0])
  lengths = []
  for i in range(num_batches):
    rows = slice(i * batch_size, (i + 1) * batch_size)
    start = paths[path](z1[rows], z2[rows], t[rows])
    end = paths[path](z1[rows], z2[rows], t[rows] + epsilon)
    outputs = generate(jnp.concatenate([start, end]))
    if outputs.shape[0] != 2 * batch_size:
      raise ValueError(f"generate must map latents [B, ...] to outputs [B, ...], got {2 * batch_size} "
                       f"latents -> outputs {outputs.shape}")
    batch = jnp.asarray(distance(outputs[:batch_size], outputs[batch_size:]))
    if batch.shape != (batch_size,):
      raise ValueError(f"distance(a, b) must return one distance per example, [{batch_size}], got {batch.shape}")
    lengths.append(np.asarray(batch, np.float64) / epsilon ** 2)
  return np.concatenate(lengths)[:num_samples]


def endpoint_distances(generate: Callable, sample_latents: Callable, rng: jax.Array, num_samples: int, *,
                       distance: Optional[Callable] = None, features: Optional[Callable] = None,
                       batch_size: int = 256) -> np.ndarray:
  """d(G(z1), G(z2)) for the pairs `path_lengths` draws from the same `rng` (its arguments): [num_samples]."""
  checks.check_positive_int(num_samples, "num_samples")
  checks.check_positive_int(batch_size, "batch_size")
  if distance is not None and features is not None:
    raise ValueError("pass either distance (a, b) -> [B] or features for the default squared Euclidean "
                     "distance, not both")
  if distance is None:
    distance = _squared_feature_distance(features if features is not None else (lambda x: x))
  key1, key2, _ = jax.random.split(rng, 3)
  z1, z2 = jnp.asarray(sample_latents(key1, num_samples)), jnp.asarray(sample_latents(key2, num_samples))
  out = []
  for i in range(0, num_samples, batch_size):
    rows = slice(i, i + batch_size)
    outputs = generate(jnp.concatenate([z1[rows], z2[rows]]))
    n = z1[rows].shape[0]
    out.append(np.asarray(distance(outputs[:n], outputs[n:]), np.float64))
  return np.concatenate(out)


def perceptual_path_length(generate: Callable, sample_latents: Callable, rng: jax.Array, num_samples: int,
                           *, filter_outliers: bool = True, **kwargs) -> float:
  """Perceptual path length (Karras et al. 2019): the mean of `path_lengths` (same arguments).

  filter_outliers: average only between the 1st and 99th percentiles, as StyleGAN's code
  (`percentile_filtered_mean`); False gives the plain Monte-Carlo mean of the expectation.
  """
  lengths = path_lengths(generate, sample_latents, rng, num_samples, **kwargs)
  return percentile_filtered_mean(lengths) if filter_outliers else float(lengths.mean())
