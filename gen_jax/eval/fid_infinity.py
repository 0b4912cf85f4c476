"""FID at several sample counts, and its extrapolation to infinitely many samples (FID-infinity).

FID from N generated samples is biased upwards, by an amount that depends on the model as well as on
N, so two models scored at one N can rank differently at another. Chong & Forsyth (2020,
"Effectively Unbiased FID and Inception Score and where to find them", sec. 3) show that the
estimator is, to first order, linear in 1/N,

  E[FID_N] = FID_inf + k / N + O(1 / N^2),

and estimate the bias-free FID_inf as the intercept of the least-squares line through
(1 / N_p, FID_{N_p}) at P sample counts N_p: their code evaluates FID_N at 15 counts evenly spaced
from 5,000 to 50,000 (`np.linspace(5000, 50000, 15).astype('int32')`), each on the first N_p rows of
a fresh shuffle of the 50,000 generated features (a subset without replacement), against the
statistics of all the real features, and fits `LinearRegression` of FID on 1/N. Given M < 50,000
generated features, both ends are scaled by M / 50,000 here (so the counts span a factor of 10 up to
all of them); callers can also pass their own counts. The real statistics' own bias (from a finite
real set) is a constant, left in FID_inf as in the paper. The line is a first-order model: it needs
counts well above the feature dimension D (the paper's 5,000 is ~2.4 D for Inception's 2,048).
"""
from __future__ import annotations

from typing import NamedTuple, Optional, Sequence

import numpy as np

from gen_jax import checks
from gen_jax.eval.frechet import frechet_distance_from_statistics
from gen_jax.eval.statistics import statistics_of


class FIDInfinity(NamedTuple):
  """FID-infinity and the line it came from.

  Attributes:
    fid_infinity: intercept of the least-squares line FID_N = fid_infinity + slope / N.
    slope: its slope k (positive for the usual upward bias).
    counts: [P] int sample counts N at which FID was evaluated, increasing.
    fids: [P] FID_N at those counts.
  """
  fid_infinity: float
  slope: float
  counts: np.ndarray
  fids: np.ndarray


def _check_features(real, fake) -> tuple[np.ndarray, np.ndarray]:
  real, fake = np.asarray(real), np.asarray(fake)
  checks.check_rank(real, 2, "real", "[N, D]")
  checks.check_rank(fake, 2, "fake", "[M, D]")
  if real.shape[1] != fake.shape[1]:
    raise ValueError(f"real and fake must have the same feature dimension D, got {real.shape} and {fake.shape}")
  if len(real) < 2:
    raise ValueError(f"real needs at least 2 feature vectors for a covariance, got {len(real)}")
  return real, fake


def _check_counts(counts, num_fake: int) -> np.ndarray:
  counts = np.asarray(counts)
  if counts.ndim != 1 or not np.issubdtype(counts.dtype, np.integer):
    raise ValueError(f"counts must be a 1-D sequence of integers, got {counts!r}")
  if counts.size == 0 or counts.min() < 2 or counts.max() > num_fake:
    raise ValueError(f"every count must lie in [2, M = {num_fake}] (the fake features; 2 for a covariance), "
                     f"got {counts.tolist()}")
  return counts.astype(np.int64)


def fid_at_sample_counts(real, fake, counts: Sequence[int], rng=0) -> np.ndarray:
  """FID of random subsets of `fake` against all of `real`, one subset size per count.

  Args:
    real: [N, D] features of real samples (their statistics are computed once, from all of them).
    fake: [M, D] features of generated samples.
    counts: sample counts, each in [2, M].
    rng: `np.random.Generator` or an int seed: each count takes the first rows of a fresh permutation.

  Returns:
    [len(counts)] float64 FIDs, in the order of `counts`.
  """
  real, fake = _check_features(real, fake)
  counts = _check_counts(counts, len(fake))
  rng = np.random.default_rng(rng)
  real_statistics = statistics_of(real)
  return np.array([frechet_distance_from_statistics(real_statistics,
                                                    statistics_of(fake[rng.permutation(len(fake))[:num]]))
                   for num in counts])


def fid_infinity(real, fake, rng=0, *, counts: Optional[Sequence[int]] = None, num_points: int = 15,
                 min_count: int = 5000, max_count: int = 50000) -> FIDInfinity:
  """FID-infinity (Chong & Forsyth 2020): the intercept of FID_N against 1/N.

  Args:
    real: [N, D] features of real samples.
    fake: [M, D] features of generated samples (the paper uses M = 50,000).
    rng: `np.random.Generator` or an int seed for the subsets.
    counts: the sample counts to evaluate FID at (at least 2 distinct, each in [2, M]); default
      `num_points` counts evenly spaced from min_count to max_count, both scaled by M / max_count when
      M < max_count.
    num_points, min_count, max_count: the default counts (the paper's 15, 5,000 and 50,000).

  Returns:
    `FIDInfinity(fid_infinity, slope, counts, fids)`.
  """
  real, fake = _check_features(real, fake)
  if counts is None:
    checks.check_positive_int(num_points, "num_points")
    checks.check_positive_int(min_count, "min_count")
    checks.check_positive_int(max_count, "max_count")
    if not (num_points >= 2 and min_count < max_count):
      raise ValueError(f"need num_points >= 2 and min_count < max_count, got {num_points}, {min_count}, "
                       f"{max_count}")
    scale = min(1.0, len(fake) / max_count)
    counts = np.linspace(max(2, int(min_count * scale)), int(max_count * scale), num_points).astype(np.int64)
  counts = np.unique(_check_counts(counts, len(fake)))
  if counts.size < 2:
    raise ValueError(f"a line through FID_N needs at least 2 distinct counts, got {counts.tolist()} "
                     f"(M = {len(fake)} fake features)")
  fids = fid_at_sample_counts(real, fake, counts, rng)
  slope, intercept = np.polyfit(1.0 / counts, fids, 1)
  return FIDInfinity(float(intercept), float(slope), counts, fids)
