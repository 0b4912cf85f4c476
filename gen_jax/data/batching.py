"""Step-indexed, resumable batch sampling, and padded batches for evaluation.

Training batches are a pure function of (seed, step): example j of batch `step` is global stream
position i = step * batch_size + j, in epoch e = i // N at position i % N of that epoch's
permutation perm_e = np.random.default_rng([seed, e]).permutation(N). Every epoch visits every
example once, and a run resumed at any step (on any number of devices) sees the same batches.

Evaluation uses `padded_batches`: the last partial batch is padded and masked, never dropped or
duplicated (score_sde's users found mismatched FIDs from exactly that).
"""
from __future__ import annotations

import functools
from typing import Any, Iterator

import jax
import numpy as np

from gen_jax import checks


@functools.lru_cache(maxsize=4)
def _epoch_permutation(seed: int, epoch: int, num_examples: int) -> np.ndarray:
  perm = np.random.default_rng([seed, epoch]).permutation(num_examples)
  perm.flags.writeable = False
  return perm


def batch_indices(step: int, batch_size: int, num_examples: int, seed: int) -> np.ndarray:
  """Example indices (int64 [batch_size]) of training batch `step`; see the module docstring.

  Args:
    step: the training step, >= 0.
    batch_size: examples per batch (may exceed num_examples: the batch then spans epochs).
    num_examples: N, the size of the training set.
    seed: the run's data seed, a non-negative int.
  """
  if isinstance(step, bool) or not isinstance(step, (int, np.integer)) or step < 0:
    raise ValueError(f"step must be a non-negative integer, got {step!r}")
  if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
    raise ValueError(f"seed must be a non-negative integer, got {seed!r}")
  checks.check_positive_int(batch_size, "batch_size")
  checks.check_positive_int(num_examples, "num_examples")
  positions = int(step) * batch_size + np.arange(batch_size, dtype=np.int64)
  epochs, offsets = np.divmod(positions, num_examples)
  out = np.empty(batch_size, np.int64)
  for epoch in np.unique(epochs):
    sel = epochs == epoch
    out[sel] = _epoch_permutation(int(seed), int(epoch), int(num_examples))[offsets[sel]]
  return out


def padded_batches(data: Any, batch_size: int, rows: slice | None = None) -> Iterator[tuple[Any, np.ndarray]]:
  """Yields (batch, mask) over `data` in order, every example exactly once.

  Args:
    data: an array [N, ...] or a pytree of arrays sharing the leading dimension N.
    batch_size: rows per batch; every yielded batch has exactly this many.
    rows: only these rows [start, stop) of each batch are read and yielded (one process's share of a
      global batch, `gen_jax.train.sharding.process_rows`); by default all.

  Yields:
    batch: `data[start:start + batch_size][rows]`, padded with zeros where the batch runs past N.
    mask: float32 [batch_size], 1 for real examples and 0 for padding (sum of masks == N), always the
      whole batch's mask.
  """
  checks.check_positive_int(batch_size, "batch_size")
  leaves = jax.tree.leaves(data)
  if not leaves:
    raise ValueError("data must hold at least one array")
  num = leaves[0].shape[0]
  if any(leaf.shape[0] != num for leaf in leaves):
    raise ValueError(f"all arrays in data must share the leading dimension, got "
                     f"{[leaf.shape for leaf in leaves]}")
  lo, hi, _ = (rows or slice(0, batch_size)).indices(batch_size)
  for start in range(0, num, batch_size):
    size = min(batch_size, num - start)
    mask = np.zeros(batch_size, np.float32)
    mask[:size] = 1.0
    real = max(0, min(size, hi) - lo)  # of the rows read, how many are examples (the rest pad)

    def pad(a, start=start, real=real):
      a = np.asarray(a[start + lo:start + lo + real])
      if real == hi - lo:
        return a
      return np.concatenate([a, np.zeros((hi - lo - real,) + a.shape[1:], a.dtype)])

    yield jax.tree.map(pad, data), mask
