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

import zipfile
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
  if batch.shape[0] == 0:
    return stats_state
  mean_batch = batch.mean(axis=0)
  centred = batch - mean_batch
  return merge_statistics(stats_state, StatisticsState(num=batch.shape[0], mean=mean_batch, m2=centred.T @ centred))


def merge_statistics(a: StatisticsState, b: StatisticsState) -> StatisticsState:
  """The running statistics of two sets of features together (the pairwise update above)."""
  if a.mean.shape != b.mean.shape:
    raise ValueError(f"only statistics of features of one dimension merge, got means of shape {a.mean.shape} "
                     f"and {b.mean.shape}")
  num = a.num + b.num
  if num == 0:
    return a
  delta = b.mean - a.mean
  mean = a.mean + delta * (b.num / num)
  m2 = a.m2 + b.m2 + np.outer(delta, delta) * (a.num * b.num / num)
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


_EXPECTED_FILE = "an npz archive of arrays 'mu' [D] and 'sigma' [D, D] (pytorch-fid's format)"


def _read_array(archive, path, name):
  """One finite real float64 array of an open npz archive; a ValueError naming the file otherwise."""
  try:
    array = archive[name]
  except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:  # an object array, a corrupt member
    raise ValueError(f"{path}: cannot read array '{name}' ({type(error).__name__}): expected "
                     f"{_EXPECTED_FILE} of numbers, saved without pickling") from error
  if not isinstance(array, np.ndarray) or not (np.issubdtype(array.dtype, np.integer)
                                               or np.issubdtype(array.dtype, np.floating)):
    raise ValueError(f"{path}: '{name}' is {getattr(array, 'dtype', type(array).__name__)}, expected real numbers")
  array = array.astype(np.float64)
  non_finite = int(array.size - np.isfinite(array).sum())
  if non_finite:
    raise ValueError(f"{path}: '{name}' has {non_finite} of {array.size} values non-finite (NaN or inf): "
                     f"expected finite statistics (were they computed from features that held NaN?)")
  return array


def load_statistics(path) -> FeatureStatistics:
  """Reads a `.npz` of `save_statistics` or pytorch-fid (`np.savez(path, mu=mu, sigma=sigma)`).

  Anything else is a ValueError that names the file: not an npz archive (a text, `.npy` or pickle
  file, a broken zip), a missing or unreadable array, wrong shapes, NaN or inf in `mu` or `sigma`.
  Pickled arrays are never loaded.
  """
  if not zipfile.is_zipfile(path):  # np.load would read it as .npy or, refused, as a pickle
    raise ValueError(f"{path} is not {_EXPECTED_FILE}: it is not a zip archive")
  try:
    archive = np.load(path, allow_pickle=False)
  except (ValueError, OSError, EOFError, zipfile.BadZipFile) as error:
    raise ValueError(f"{path} is not {_EXPECTED_FILE}: {type(error).__name__}: {error}") from error
  with archive as f:
    missing = {"mu", "sigma"} - set(f.files)
    if missing:
      raise ValueError(f"{path} must hold arrays 'mu' [D] and 'sigma' [D, D] (pytorch-fid's format); "
                       f"it lacks {sorted(missing)} and holds {sorted(f.files)}")
    mu, sigma = _read_array(f, path, "mu"), _read_array(f, path, "sigma")
    num = _read_array(f, path, "num") if "num" in f.files else None
  if mu.ndim != 1 or sigma.shape != (mu.shape[0], mu.shape[0]):
    raise ValueError(f"{path} must hold mu [D] and sigma [D, D] of the same D, got mu {mu.shape} "
                     f"and sigma {sigma.shape}")
  if num is not None and (num.shape != () or num != int(num) or num < 2):
    raise ValueError(f"{path}: 'num' must be the number of feature vectors (an integer >= 2), got {num}")
  return FeatureStatistics(mu=mu, sigma=sigma, num=None if num is None else int(num))
