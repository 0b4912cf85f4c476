"""The latent space of a VAE: interpolations, traversals, their image grids, and posterior-collapse
diagnostics. Pure functions of arrays (and of a `decode_mean` callable for the grids).

  linear_interpolation:     z(t) = (1 - t) z0 + t z1
  spherical_interpolation:  z(t) = sin((1 - t) w) / sin w z0 + sin(t w) / sin w z1,
                            cos w = <z0, z1> / (|z0| |z1|)   (slerp; Shoemake 1985, White 2016)
    Under a N(0, I) prior in many dimensions samples concentrate near the sphere of radius
    sqrt(latent_dim); the straight line between two of them passes closer to the origin, where the
    prior puts little of its mass in high dimension, and slerp stays near the sphere (White 2016,
    "Sampling generative networks").
  latent_traversal:         vary one dimension over `values`, hold the others (Higgins et al. 2017).
  active_units:             A_u = #{d : Cov_x(E_q[z_d | x]) > threshold}, threshold 0.01
                            (Burda et al. 2016, sec. 5.2): dimensions whose posterior mean does not
                            move with x carry no information (posterior collapse).
  mean_kl_per_dim:          E_x KL(q(z_d | x) || p(z_d)) per dimension d; ~0 for collapsed ones.
"""
from __future__ import annotations

from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import checks
from gen_jax.visualize import image_grid


def _check_endpoints(z0: jax.Array, z1: jax.Array, num: int) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Checks z0 and z1 have one shape, returns (z0, z1, t [num, 1, ...]) with t from 0 to 1."""
  checks.check_positive_int(num, "num")
  z0, z1 = jnp.asarray(z0, jnp.float32), jnp.asarray(z1, jnp.float32)
  if z0.shape != z1.shape or z0.ndim == 0:
    raise ValueError(f"z0 and z1 must have one shape [..., latent_dim], got {z0.shape} and {z1.shape}")
  t = jnp.linspace(0.0, 1.0, num).reshape((num,) + (1,) * z0.ndim)
  return z0, z1, t


def linear_interpolation(z0: jax.Array, z1: jax.Array, num: int) -> jax.Array:
  """`num` points from z0 to z1 on the straight line: [num, *z0.shape] (endpoints included)."""
  z0, z1, t = _check_endpoints(z0, z1, num)
  return (1.0 - t) * z0 + t * z1


def spherical_interpolation(z0: jax.Array, z1: jax.Array, num: int) -> jax.Array:
  """`num` points from z0 to z1 by slerp over the last axis: [num, *z0.shape] (endpoints included).

  Where z0 and z1 are (nearly) parallel, sin w -> 0 and slerp's limit, the straight line, is used;
  also where one of them is zero (no angle).
  """
  z0, z1, t = _check_endpoints(z0, z1, num)
  norms = jnp.linalg.norm(z0, axis=-1, keepdims=True) * jnp.linalg.norm(z1, axis=-1, keepdims=True)
  cos_omega = jnp.clip(jnp.sum(z0 * z1, axis=-1, keepdims=True) / jnp.maximum(norms, 1e-30), -1.0, 1.0)
  omega = jnp.arccos(cos_omega)
  sin_omega = jnp.sin(omega)
  parallel = (sin_omega < 1e-6) | (norms < 1e-30)
  safe_sin = jnp.where(parallel, 1.0, sin_omega)
  w0 = jnp.where(parallel, 1.0 - t, jnp.sin((1.0 - t) * omega) / safe_sin)
  w1 = jnp.where(parallel, t, jnp.sin(t * omega) / safe_sin)
  return w0 * z0 + w1 * z1


def latent_traversal(z: jax.Array, dims: Sequence[int], values: Sequence[float]) -> jax.Array:
  """Copies of z [latent_dim] with z[d] set to each value: [len(dims) * len(values), latent_dim].

  Row r = i * len(values) + j has dimension dims[i] set to values[j] (one grid row per dimension).
  """
  z = jnp.asarray(z, jnp.float32)
  checks.check_rank(z, 1, "z", layout="[latent_dim]")
  dims = [int(d) for d in dims]
  if not dims or not all(0 <= d < z.shape[0] for d in dims):
    raise ValueError(f"dims must be a non-empty list of latent dimensions in [0, {z.shape[0] - 1}], "
                     f"got {dims}")
  values = jnp.asarray(values, jnp.float32)
  checks.check_rank(values, 1, "values", layout="[num_values]")
  rows = jnp.tile(z, (len(dims), values.shape[0], 1))                      # [dims, values, latent]
  rows = rows.at[jnp.arange(len(dims)), :, jnp.asarray(dims)].set(values)
  return rows.reshape(-1, z.shape[0])


def images_to_grid(images: np.ndarray, num_levels: int, columns: int) -> np.ndarray:
  """Tiles images in data scale [N, H, W, C] into one uint8 [0, 255] grid (`visualize.image_grid`).

  Integer images are levels in {0, ..., L-1}. Float images (decoded means E[x | z]) must lie in
  [0, L-1] and are shown at 256 grey levels: round(x * 255 / (L - 1)).
  """
  images = np.asarray(images)
  if np.issubdtype(images.dtype, np.integer):
    return image_grid(images, num_levels, columns)
  checks.check_range(images, 0.0, num_levels - 1, f"decoded means (num_levels={num_levels})")
  return image_grid(np.round(images * (255.0 / (num_levels - 1))).astype(np.uint8), 256, columns)


def decode_grid(decode_mean: Callable[[jax.Array], jax.Array], latents: jax.Array, num_levels: int,
                columns: int) -> np.ndarray:
  """Decodes latents [N, latent_dim] with `decode_mean` (z -> images in data scale) into a grid."""
  return images_to_grid(np.asarray(decode_mean(latents)), num_levels, columns)


def interpolation_grid(decode_mean: Callable[[jax.Array], jax.Array], z0: jax.Array, z1: jax.Array,
                       num: int, num_levels: int, spherical: bool = True) -> np.ndarray:
  """One grid row per pair (z0[i], z1[i]) ([P, latent_dim] each), `num` interpolation steps across."""
  checks.check_rank(jnp.asarray(z0), 2, "z0", layout="[pairs, latent_dim]")
  interpolate = spherical_interpolation if spherical else linear_interpolation
  path = interpolate(z0, z1, num)                                      # [num, pairs, latent]
  latents = jnp.swapaxes(path, 0, 1).reshape(-1, path.shape[-1])
  return decode_grid(decode_mean, latents, num_levels, columns=num)


def traversal_grid(decode_mean: Callable[[jax.Array], jax.Array], z: jax.Array, dims: Sequence[int],
                   values: Sequence[float], num_levels: int) -> np.ndarray:
  """One grid row per dimension in `dims`, its value swept over `values` (see `latent_traversal`)."""
  latents = latent_traversal(z, dims, values)
  return decode_grid(decode_mean, latents, num_levels, columns=len(values))


def posterior_mean_variance(posterior_means: jax.Array) -> jax.Array:
  """Cov_x(E_q[z_d | x]) per dimension d from posterior means [N, latent_dim]: [latent_dim]."""
  checks.check_rank(posterior_means, 2, "posterior_means", layout="[N, latent_dim]")
  return jnp.var(jnp.asarray(posterior_means, jnp.float32), axis=0)


def active_units(posterior_means: jax.Array, threshold: float = 1e-2) -> jax.Array:
  """Number of active latent dimensions (Burda et al. 2016): Cov_x(E_q[z_d | x]) > threshold.

  Args:
    posterior_means: the encoder means E_q[z | x] of N data examples, [N, latent_dim] (N >= 2).
    threshold: 0.01 in Burda et al.

  Returns:
    An int32 scalar in [0, latent_dim].
  """
  if posterior_means.shape[0] < 2:
    raise ValueError(f"active_units needs posterior means of N >= 2 examples, got shape "
                     f"{tuple(posterior_means.shape)}")
  return jnp.sum(posterior_mean_variance(posterior_means) > threshold).astype(jnp.int32)


def mean_kl_per_dim(kl_per_dim: jax.Array, mask: jax.Array | None = None) -> jax.Array:
  """E_x KL(q(z_d | x) || p(z_d)) per dimension, [latent_dim], from per-example KLs [N, latent_dim].

  `mask` [N] (1 for real examples, 0 for padding) restricts the mean to the real ones.
  """
  checks.check_rank(kl_per_dim, 2, "kl_per_dim", layout="[N, latent_dim]")
  if mask is None:
    return jnp.mean(kl_per_dim, axis=0)
  mask = jnp.asarray(mask, jnp.float32)
  if mask.shape != kl_per_dim.shape[:1]:
    raise ValueError(f"mask must have shape {kl_per_dim.shape[:1]} (one entry per example), got {mask.shape}")
  return jnp.sum(kl_per_dim * mask[:, None], axis=0) / jnp.maximum(jnp.sum(mask), 1.0)
