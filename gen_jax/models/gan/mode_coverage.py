"""Mode collapse on Gaussian mixtures with known modes: modes captured and high-quality samples.

The protocol of VEEGAN (Srivastava et al. 2017, sec. 5.1, the 2D Ring and 2D Grid of Table 1) and
PacGAN (Lin et al. 2018, Table 1), as PacGAN's released code computes it (`MetricLogger` in
fjxmlzn/PacGAN, synthetic_data_experiments/PacGAN/pacgan/extensions.py):

  1. assign every sample x to its nearest mode k(x) = argmin_k ||x - c_k|| (all modes share one
     isotropic std s, so PacGAN's per-mode Mahalanobis distance ranks modes the same way);
  2. x is *high quality* if ||x - c_k(x)|| < 3 s (strictly; `num_std`);
  3. n_k = number of high-quality samples assigned to mode k;
     modes captured = #{k : n_k >= min_count}, with min_count = 1 in PacGAN's code (a mode with a
     single high-quality sample counts); high-quality fraction = sum_k n_k / N.
  4. (PacGAN's code also logs the histogram's divergence from uniform.) Here
     KL(p || u) = sum_k p_k log(K p_k), p_k = n_k / sum_j n_j, u_k = 1 / K: 0 when the high-quality
     samples spread evenly, log K when they all sit on one mode; NaN without high-quality samples.

Both papers draw 2,500 samples; with min_count = 1 the count of captured modes grows with N (a
generator that puts 1% of its mass on a mode captures it almost surely at N = 2,500), so compare
numbers only at one N. Samples drawn from the mixture itself are high quality with probability
P(chi^2_2 < 9) = 1 - exp(-9/2) = 0.98889 (the squared distance of a 2-D standard normal is chi^2_2),
slightly more where modes lie within 6 s of each other.

`toy2d_mode_coverage(name, samples)` reads centres and std from `gen_jax.data.toy2d.mixture_modes`:
eight_gaussians (FFJORD's ring, K = 8, radius 2.83, s = 0.354; not the Unrolled-GAN / VEEGAN ring of
radius 2 and s = 0.02) and grid25 (VEEGAN / PacGAN's grid, K = 25, s = 0.05).
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import checks
from gen_jax.data import toy2d


def mode_coverage(samples: jax.Array, centres: jax.Array, std: float, num_std: float = 3.0,
                  min_count: int = 1) -> dict[str, jax.Array]:
  """Modes captured, high-quality fraction, per-mode counts and KL(counts || uniform); see above.

  Args:
    samples: [N, D] generated samples.
    centres: [K, D] mode centres.
    std: the modes' common isotropic standard deviation s.
    num_std: a sample is high quality within num_std * s of its nearest mode (3 in the papers).
    min_count: high-quality samples a mode needs to count as captured (1 in PacGAN's code).

  Returns:
    dict of 'modes_captured' (int32 []), 'high_quality_fraction' ([]), 'mode_counts' (int32 [K]:
    high-quality samples per mode), 'kl_to_uniform' ([], nats).
  """
  samples, centres = jnp.asarray(samples), jnp.asarray(centres)
  checks.check_rank(samples, 2, "samples", "[N, D]")
  if centres.ndim != 2 or centres.shape[1] != samples.shape[1]:
    raise ValueError(f"centres must have shape [K, D={samples.shape[1]}] (the samples' D), got "
                     f"{tuple(centres.shape)}")
  if not std > 0:
    raise ValueError(f"std must be positive, got {std}")
  checks.check_positive_int(min_count, "min_count")
  return _mode_coverage(samples, centres, std, num_std, min_count)


@jax.jit
def _mode_coverage(samples, centres, std, num_std, min_count):
  num_modes = centres.shape[0]
  dist2 = jnp.sum(jnp.square(samples[:, None, :] - centres[None, :, :]), axis=-1)  # [N, K]
  nearest = jnp.argmin(dist2, axis=-1)
  high_quality = jnp.sqrt(jnp.min(dist2, axis=-1)) < num_std * std
  counts = jnp.zeros(num_modes, jnp.int32).at[nearest].add(high_quality.astype(jnp.int32))
  p = counts / jnp.sum(counts)
  kl = jnp.sum(jnp.where(counts > 0, p * jnp.log(jnp.where(counts > 0, p * num_modes, 1.0)), 0.0))
  return {
      "modes_captured": jnp.sum(counts >= min_count).astype(jnp.int32),
      "high_quality_fraction": jnp.mean(high_quality.astype(jnp.float32)),
      "mode_counts": counts,
      "kl_to_uniform": jnp.where(jnp.sum(counts) > 0, kl, jnp.nan),
  }


def toy2d_mode_coverage(name: str, samples: jax.Array, num_std: float = 3.0,
                        min_count: int = 1) -> dict[str, jax.Array]:
  """`mode_coverage` against the modes of toy2d mixture `name` ('eight_gaussians' or 'grid25')."""
  centres, std = toy2d.mixture_modes(name)
  return mode_coverage(samples, np.asarray(centres, np.float32), std, num_std, min_count)
