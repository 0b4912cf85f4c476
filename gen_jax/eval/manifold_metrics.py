"""Precision, recall, density and coverage: fidelity and diversity from k-nearest-neighbour balls.

Each real feature vector r_i gets the ball B(r_i, rho_i) whose radius rho_i is the distance to its
k-th nearest other real vector (likewise fake f_j gets sigma_j among the fakes). With N real and M
fake vectors:

  precision = (1/M) sum_j 1[exists i: f_j in B(r_i, rho_i)]     (Kynkaanniemi et al. 2019, "Improved
  recall    = (1/N) sum_i 1[exists j: r_i in B(f_j, sigma_j)]    precision and recall metric for
                                                                  assessing generative models")
  density   = 1/(k M) sum_j sum_i 1[f_j in B(r_i, rho_i)]        (Naeem et al. 2020, "Reliable
  coverage  = (1/N) sum_i 1[exists j: f_j in B(r_i, rho_i)]      fidelity and diversity metrics
                                                                  for generative models")

with open balls (strict <), as `prdc.compute_prdc` (prdc 0.2, Naeem et al.'s code) computes them; the
k-th neighbour is counted with the point itself at distance 0 as the first (its (k+1)-th smallest
distance). Density is not bounded by 1; coverage is recall with the fake balls replaced by the real
ones, so it is not fooled by fake outliers.

torch-fidelity 0.4.0's `metric_prc.py` gives the same precision and recall up to its conventions:
closed balls (<=, which differs only on ties), argument order (its first input is the generated
set), distances by `torch.cdist`, a default k of 3 (prdc's paper recommends 5), an F-score in place
of density and coverage.

Only comparisons of distances enter, so squared distances are compared: ||x||^2 - 2 x.y + ||y||^2,
after subtracting the real mean from both sets (distances do not change; the cancellation in that
formula does), in JAX with `Precision.HIGHEST` products, in float32 (float64 where JAX has 64-bit
types enabled, `jax.enable_x64`). prdc compares sklearn's distances (for float32 features computed
in float64 and rounded to float32), so a point within round-off (~1e-7 relative) of a ball's radius
can be counted on the other side: with continuous features such near ties are rare. Distances are formed `block_size` rows of
one set at a time against all of the other set, so memory is block_size x max(N, M), not N x M.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import checks


def _squared_distances(x: jax.Array, y: jax.Array) -> jax.Array:
  """||x_i - y_j||^2 between the rows of x [B, D] and y [M, D]: [B, M], clipped at 0 (round-off)."""
  dot = jnp.matmul(x, y.T, precision=jax.lax.Precision.HIGHEST)
  squared = jnp.sum(x * x, axis=1)[:, None] - 2 * dot + jnp.sum(y * y, axis=1)[None, :]
  return jnp.maximum(squared, 0.0)


def _row_blocks(x: jax.Array, block_size: int) -> jax.Array:
  """x [N, D] zero-padded to a multiple of block_size rows, as [num_blocks, block_size, D]."""
  num_blocks = -(-len(x) // block_size)
  padded = jnp.pad(x, ((0, num_blocks * block_size - len(x)), (0, 0)))
  return padded.reshape(num_blocks, block_size, x.shape[1])


@functools.partial(jax.jit, static_argnames=("nearest_k", "block_size"))
def _kth_neighbour_squared_radii(x: jax.Array, nearest_k: int, block_size: int) -> jax.Array:
  """[N]: squared distance of each row of x to its nearest_k-th nearest other row."""
  def block_radii(block):
    smallest, _ = jax.lax.top_k(-_squared_distances(block, x), nearest_k + 1)  # itself first
    return -smallest[:, -1]
  return jax.lax.map(block_radii, _row_blocks(x, block_size)).reshape(-1)[:len(x)]


@functools.partial(jax.jit, static_argnames="block_size")
def _ball_memberships(real, fake, real_radii, fake_radii, block_size):
  """Counts of real balls holding each fake [M]; per real: in some fake ball, ball holds a fake [N]."""
  num_real = len(real)
  real_blocks = _row_blocks(real, block_size)
  # Padding rows get radius -1: no squared distance is below it, so they count for nothing.
  radii_blocks = jnp.pad(real_radii, (0, real_blocks.shape[0] * block_size - num_real),
                         constant_values=-1.0).reshape(-1, block_size)

  def scan_block(counts, block_and_radii):
    block, radii = block_and_radii
    squared = _squared_distances(block, fake)  # [block_size, M]
    counts = counts + jnp.sum(squared < radii[:, None], axis=0)
    in_fake_ball = jnp.any(squared < fake_radii[None, :], axis=1)
    ball_holds_fake = jnp.min(squared, axis=1) < radii
    return counts, (in_fake_ball, ball_holds_fake)

  counts, (in_fake_ball, ball_holds_fake) = jax.lax.scan(
      scan_block, jnp.zeros(len(fake), jnp.int32), (real_blocks, radii_blocks))
  return counts, in_fake_ball.reshape(-1)[:num_real], ball_holds_fake.reshape(-1)[:num_real]


def precision_recall_density_coverage(real, fake, nearest_k: int, *,
                                      block_size: int = 1024) -> dict[str, float]:
  """Precision, recall (Kynkaanniemi et al. 2019), density and coverage (Naeem et al. 2020).

  Args:
    real: [N, D] features of real samples.
    fake: [M, D] features of generated samples.
    nearest_k: k of the k-nearest-neighbour radii; less than N and M (prdc's paper uses 5).
    block_size: rows of distances formed at once (memory block_size x max(N, M) floats).

  Returns:
    {'precision', 'recall', 'density', 'coverage'}: Python floats, as `prdc.compute_prdc` returns.
  """
  real = np.asarray(real)
  fake = np.asarray(fake)
  checks.check_rank(real, 2, "real", "[N, D]")
  checks.check_rank(fake, 2, "fake", "[M, D]")
  if real.shape[1] != fake.shape[1]:
    raise ValueError(f"real and fake must have the same feature dimension D, got {real.shape} and {fake.shape}")
  checks.check_positive_int(nearest_k, "nearest_k")
  checks.check_positive_int(block_size, "block_size")
  if nearest_k >= min(len(real), len(fake)):
    raise ValueError(f"nearest_k must be less than the number of real and of fake samples "
                     f"(N = {len(real)}, M = {len(fake)}), got {nearest_k}")
  dtype = jax.dtypes.canonicalize_dtype(np.float64)  # float64 under jax.enable_x64, else float32
  centre = real.mean(axis=0, dtype=np.float64)
  real = jnp.asarray(real - centre, dtype)
  fake = jnp.asarray(fake - centre, dtype)
  real_radii = _kth_neighbour_squared_radii(real, nearest_k, min(block_size, len(real)))
  fake_radii = _kth_neighbour_squared_radii(fake, nearest_k, min(block_size, len(fake)))
  counts, in_fake_ball, ball_holds_fake = _ball_memberships(real, fake, real_radii, fake_radii,
                                                            min(block_size, len(real)))
  counts, in_fake_ball, ball_holds_fake = map(np.asarray, (counts, in_fake_ball, ball_holds_fake))
  return {
      "precision": float(np.mean(counts > 0)),
      "recall": float(np.mean(in_fake_ball)),
      "density": float(np.mean(counts) / nearest_k),
      "coverage": float(np.mean(ball_holds_fake)),
  }
