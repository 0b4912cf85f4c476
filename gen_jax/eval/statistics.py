"""Mean and covariance of feature arrays, accumulated in batches, and pytorch-fid's `.npz` files.

The Frechet distance (`frechet.py`) compares two sets of features through their sample mean and
covariance,

  mu = (1/n) sum_i x_i,    Sigma = 1/(n-1) sum_i (x_i - mu)(x_i - mu)^T,

the unbiased estimate that `np.cov(features, rowvar=False)` computes. 50k Inception features need
not sit in memory at once: batches are folded into a running (count, mean, centred sum of outer
products M2) with the pairwise update of Chan, Golub & LeVeque (1979, "Updating formulae and a
pairwise algorithm for computing sample variances"). For a running set a and a batch b,

  n = n_a + n_b,   delta = mean_b - mean_a,   mean = mean_a + delta n_b / n,
  M2 = M2_a + M2_b + delta delta^T n_a n_b / n,

where M2_b is the batch's own centred sum. Every sum is over centred values, so no precision is
lost to large means (as it would be in sum(x x^T) - n mu mu^T). All of it is float64 NumPy: the
statistics of 2048-dimensional features take 32 MB and one [D, D] matrix product per batch.
"""
from __future__ import annotations

from typing import NamedTuple, Optional

import numpy as np

from gen_jax import checks


class FeatureStatistics(NamedTuple):
  """Sample mean and unbiased covariance of a set of feature vectors.

  Attributes:
    mu: [D] float64 mean.
    sigma: [D, D] float64 covariance (divided by num - 1).
    num: number of feature vectors; None when the file they came from did not record it
      (pytorch-fid writes only `mu` and `sigma`).
  """
  mu: np.ndarray
  sigma: np.ndarray
  num: Optional[int]


class StatisticsState(NamedTuple):
  """Running statistics: count, mean [D] and centred sum of outer products M2 [D, D], float64."""
  num: int
  mean: np.ndarray
  m2: np.ndarray


def init_statistics(dim: int) -> StatisticsState:
  """The statistics of no features of dimension `dim`."""
  checks.check_positive_int(dim, "dim")
  return StatisticsState(num=0, mean=np.zeros(dim), m2=np.zeros((dim, dim)))


def update_statistics(stats_state: StatisticsState, features_batch) -> StatisticsState:
  """Folds a batch [B, D] of features into the running statistics (a new state; nothing is mutated)."""
  batch = np.asarray(features_batch, dtype=np.float64)
  checks.check_rank(batch, 2, "features_batch", "[B, D]")
  dim = stats_state.mean.shape[0]
  if batch.shape[1] != dim:
    raise ValueError(f"features_batch must have shape [B, {dim}] (the statistics' dimension), "
                     f"got {batch.shape}")
  num_batch = batch.shape[0]
  if num_batch == 0:
    return stats_state
  mean_batch = batch.mean(axis=0)
  centred = batch - mean_batch
  m2_batch = centred.T @ centred
  num = stats_state.num + num_batch
  delta = mean_batch - stats_state.mean
  mean = stats_state.mean + delta * (num_batch / num)
  m2 = stats_state.m2 + m2_batch + np.outer(delta, delta) * (stats_state.num * num_batch / num)
  return StatisticsState(num=num, mean=mean, m2=m2)


def finalize_statistics(stats_state: StatisticsState) -> FeatureStatistics:
  """Mean and unbiased covariance of everything folded in; needs at least 2 feature vectors."""
  if stats_state.num < 2:
    raise ValueError(f"the covariance needs at least 2 feature vectors, got {stats_state.num}")
  sigma = stats_state.m2 / (stats_state.num - 1)
  return FeatureStatistics(mu=stats_state.mean, sigma=sigma, num=stats_state.num)


def statistics_of(features) -> FeatureStatistics:
  """Mean and unbiased covariance of features [N, D] held in memory at once."""
  features = np.asarray(features)
  checks.check_rank(features, 2, "features", "[N, D]")
  return finalize_statistics(update_statistics(init_statistics(features.shape[1]), features))


def save_statistics(path, stats: FeatureStatistics) -> None:
  """Writes `stats` to `path` exactly (no `.npz` appended) as pytorch-fid's files: keys mu, sigma (+ num)."""
  arrays = {"mu": np.asarray(stats.mu, np.float64), "sigma": np.asarray(stats.sigma, np.float64)}
  if stats.num is not None:
    arrays["num"] = np.asarray(stats.num, np.int64)
  with open(path, "wb") as f:
    np.savez(f, **arrays)


def load_statistics(path) -> FeatureStatistics:
  """Reads a `.npz` of `save_statistics` or pytorch-fid (`np.savez(path, mu=mu, sigma=sigma)`)."""
  with np.load(path, allow_pickle=False) as f:
    missing = {"mu", "sigma"} - set(f.files)
    if missing:
      raise ValueError(f"{path} must hold arrays 'mu' [D] and 'sigma' [D, D] (pytorch-fid's format); "
                       f"it lacks {sorted(missing)} and holds {sorted(f.files)}")
    mu = np.asarray(f["mu"], np.float64)
    sigma = np.asarray(f["sigma"], np.float64)
    num = int(f["num"]) if "num" in f.files else None
  if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
    raise ValueError(f"{path} must hold mu [D] and sigma [D, D] of the same D, got mu {mu.shape} "
                     f"and sigma {sigma.shape}")
  return FeatureStatistics(mu=mu, sigma=sigma, num=num)
