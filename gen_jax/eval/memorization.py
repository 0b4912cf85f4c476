"""Memorization: does a model copy its training data? The data-copying test C_T and authenticity.

Data-copying test (Meehan, Chaudhuri & Dasgupta 2020, "A Non-Parametric Test to Detect Data-Copying in
Generative Models", sec. 3). With training set T, held-out test set P_n (n points) and generated
set Q_m (m points) of one law, the distance to the nearest training point, L(x) = min_{t in T} d(x, t),
is as large for a generated point as for a test point when the model does not copy. Feature space is
cut into k cells pi by k-means on T; in each cell the Mann-Whitney U statistic of L(Q_m(pi)) against
L(P_n(pi)) (the number of pairs in which the generated point is the farther, ties half) is z-scored
under the null of one law,

  Z_U(pi) = (U - n_pi m_pi / 2) / sqrt(n_pi m_pi (n_pi + m_pi + 1) / 12),

and averaged over the cells Pi_tau holding at least a fraction tau of the generated points, weighted
by the test points' share P_n(pi):

  C_T = sum_{pi in Pi_tau} P_n(pi) Z_U(pi) / sum_{pi in Pi_tau} P_n(pi).

C_T << 0: generated points sit closer to the training points than fresh data does (copying); ~0: no
evidence of copying; >> 0: they sit farther (underfitting). As the authors' code (`data-copying-test`,
`C_T`) does, the nearest training point is taken among the training points of the same cell, cells
come from `KMeans` fitted on T, and tau defaults to 20 / m (the paper's 20 generated points a cell);
a cell is kept when it holds >= tau m generated points (the paper's Q_m(pi) >= tau; the code's `>`).
Their z-score subtracts a continuity correction of 1/2 from U; here U is the AUROC of the two sets of
distances times n_pi m_pi (`outlier.auroc`), uncorrected, which moves Z_U by 1/(2 sigma) < 0.01 for
cells of 20 points or more.

Authenticity (Alaa, van Breugel, Saveliev & van der Schaar 2022, "How Faithful is your Synthetic
Data? Sample-level Metrics for Evaluating and Auditing Generative Models", sec. 3.3): a generated point
g with nearest training point t* is unauthentic when it lies closer to t* than any other training
point does, d(g, t*) < min_{t in T, t != t*} d(t*, t); authenticity is the fraction of generated points
that are not. Copies of training points (d = 0) are all unauthentic: authenticity 0. For g drawn from
the training law itself, g is unauthentic exactly when g and t* are each other's nearest neighbours in
T + {g}; for n -> inf (a locally Poisson sample of any continuous density in D dimensions) that has
probability 1 / (2 - c_D), c_D the fraction of a ball covered by an equal ball centred on its boundary
(Henze 1987, "On the fraction of random points with specified nearest-neighbour interrelations"):
authenticity -> 1 - 1/(2 - c_D) = 1/3 in 1-D, 0.379 in 2-D, towards 1/2 in high dimension. The
authors' code (`compute_alpha_precision`) evaluates the comparison per real point instead, indexing
real-to-real distances by the index of each real point's nearest synthetic point; this module follows
the paper's definition per generated point.

Nearest neighbours are found on squared Euclidean distances (the comparisons and ranks are the same)
`block_size` rows at a time, as in `manifold_metrics.py`, after centring on the training mean.
"""
from __future__ import annotations

import functools
from typing import NamedTuple, Optional

import jax
import jax.numpy as jnp
import numpy as np
import sklearn.cluster

from gen_jax import checks
from gen_jax.eval.manifold_metrics import _row_blocks, _squared_distances
from gen_jax.eval.outlier import auroc


class DataCopying(NamedTuple):
  """The data-copying statistic and its parts.

  Attributes:
    statistic: C_T (<< 0: copying; ~0: fresh samples; >> 0: underfitting).
    cell_z_scores: [k] Z_U per cell, NaN for the cells left out.
    cells_used: how many cells entered C_T (held >= tau m generated points and a test point).
    num_cells: k.
  """
  statistic: float
  cell_z_scores: np.ndarray
  cells_used: int
  num_cells: int


@functools.partial(jax.jit, static_argnames="block_size")
def _nearest_in_cell(x, y, x_cells, y_cells, x_rows_in_y, block_size: int):
  """Squared distance [N] and index [N] of each row of x's nearest row of y within the same cell.

  x_rows_in_y [N]: the row of y that is x_i itself, left out (its nearest *other* row), or -1. A min
  with that mask, rather than `manifold_metrics`' top_k of k + 1, ~20x slower on XLA:CPU (4000 x 4000).
  """
  blocks = _row_blocks(x, block_size)
  padding = (0, blocks.shape[0] * block_size - len(x))
  cell_blocks = jnp.pad(x_cells, padding).reshape(-1, block_size)
  self_blocks = jnp.pad(x_rows_in_y, padding, constant_values=-1).reshape(-1, block_size)
  columns = jnp.arange(len(y))

  def nearest(block_cells_rows):
    block, cells, rows = block_cells_rows
    candidate = (cells[:, None] == y_cells[None, :]) & (rows[:, None] != columns[None, :])
    squared = jnp.where(candidate, _squared_distances(block, y), jnp.inf)
    return jnp.min(squared, axis=1), jnp.argmin(squared, axis=1)

  squared, index = jax.lax.map(nearest, (blocks, cell_blocks, self_blocks))
  return squared.reshape(-1)[:len(x)], index.reshape(-1)[:len(x)]


def _nearest(x, y, block_size: int, x_cells=None, y_cells=None, x_rows_in_y=None):
  """`_nearest_in_cell` with one cell and no row left out by default; block_size capped at len(x)."""
  x_cells = jnp.zeros(len(x), jnp.int32) if x_cells is None else jnp.asarray(x_cells, jnp.int32)
  y_cells = jnp.zeros(len(y), jnp.int32) if y_cells is None else jnp.asarray(y_cells, jnp.int32)
  x_rows_in_y = jnp.full(len(x), -1, jnp.int32) if x_rows_in_y is None else jnp.asarray(x_rows_in_y, jnp.int32)
  return _nearest_in_cell(x, y, x_cells, y_cells, x_rows_in_y, min(block_size, len(x)))


def _check_sets(train, **others) -> tuple[np.ndarray, list[np.ndarray]]:
  train = np.asarray(train)
  checks.check_rank(train, 2, "train", "[N_train, D]")
  arrays = []
  for name, array in others.items():
    array = np.asarray(array)
    checks.check_rank(array, 2, name, "[N, D]")
    if array.shape[1] != train.shape[1] or not len(array):
      raise ValueError(f"{name} must be [N >= 1, D = {train.shape[1]}] (D from train), got {array.shape}")
    arrays.append(array)
  return train, arrays


def _centred(train, *arrays):
  """Every array minus the training mean, as JAX arrays of the widest float type JAX allows."""
  dtype = jax.dtypes.canonicalize_dtype(np.float64)  # float64 under jax.enable_x64, else float32
  centre = train.mean(axis=0, dtype=np.float64)
  return [jnp.asarray(a - centre, dtype) for a in (train, *arrays)]


def data_copying_test(train, test, generated, num_cells: int = 10, *, tau: Optional[float] = None,
                      seed: int = 0, block_size: int = 1024) -> DataCopying:
  """The data-copying test statistic C_T of Meehan et al. 2020 (see the module doc).

  Args:
    train: [N_train, D] features of the model's training data.
    test: [n, D] features of held-out data of the same law.
    generated: [m, D] features of generated samples.
    num_cells: k, the k-means cells (at most N_train); the paper chooses k so that cells hold enough
      test and generated points.
    tau: the least fraction of the generated points a cell must hold to count, in (0, 1]; default
      20 / m.
    seed: `KMeans`'s random_state.
    block_size: rows of distances formed at once.

  Returns:
    `DataCopying(statistic, cell_z_scores, cells_used, num_cells)`.
  """
  train, (test, generated) = _check_sets(train, test=test, generated=generated)
  checks.check_positive_int(num_cells, "num_cells")
  checks.check_positive_int(block_size, "block_size")
  if num_cells > len(train):
    raise ValueError(f"num_cells must be at most the number of training points ({len(train)}), got {num_cells}")
  tau = 20.0 / len(generated) if tau is None else float(tau)
  if not 0.0 < tau <= 1.0:
    raise ValueError(f"tau must be a fraction of the generated points in (0, 1], got {tau}")
  kmeans = sklearn.cluster.KMeans(num_cells, n_init=10, random_state=seed).fit(train)
  train_cells = kmeans.labels_
  test_cells, generated_cells = kmeans.predict(test), kmeans.predict(generated)
  train_j, test_j, generated_j = _centred(train, test, generated)
  test_distances = np.asarray(_nearest(test_j, train_j, block_size, test_cells, train_cells)[0])
  generated_distances = np.asarray(_nearest(generated_j, train_j, block_size, generated_cells, train_cells)[0])
  z_scores = np.full(num_cells, np.nan)
  test_share = np.bincount(test_cells, minlength=num_cells) / len(test)
  for cell in range(num_cells):
    in_test, in_generated = test_distances[test_cells == cell], generated_distances[generated_cells == cell]
    n, m = len(in_test), len(in_generated)
    if n and m >= tau * len(generated):
      u = auroc(in_test, in_generated) * n * m  # pairs with the generated point farther
      z_scores[cell] = (u - n * m / 2.0) / np.sqrt(n * m * (n + m + 1) / 12.0)
  used = ~np.isnan(z_scores)
  if not used.any():
    raise ValueError(f"no cell holds both a test point and at least tau m = {tau * len(generated):.3g} "
                     f"generated points: lower num_cells or tau, or pass more samples")
  statistic = np.sum(test_share[used] * z_scores[used]) / np.sum(test_share[used])
  return DataCopying(float(statistic), z_scores, int(used.sum()), num_cells)


def authenticity(train, generated, *, block_size: int = 1024) -> float:
  """Fraction of generated points that are authentic (Alaa et al. 2022; see the module doc).

  Args:
    train: [N_train, D] features of the training data (N_train >= 2).
    generated: [m, D] features of generated samples.
    block_size: rows of distances formed at once.

  Returns:
    The fraction of generated g with d(g, t*) >= the distance from t* (g's nearest training point)
    to its own nearest other training point: 0 for copies, ~0.38 (2-D) to 0.5 for fresh draws.
  """
  train, (generated,) = _check_sets(train, generated=generated)
  checks.check_positive_int(block_size, "block_size")
  if len(train) < 2:
    raise ValueError(f"authenticity needs at least 2 training points (a nearest other one), got {len(train)}")
  train_j, generated_j = _centred(train, generated)
  train_radii, _ = _nearest(train_j, train_j, block_size, x_rows_in_y=np.arange(len(train)))
  squared, nearest = _nearest(generated_j, train_j, block_size)
  return float(np.mean(np.asarray(squared >= train_radii[nearest])))
