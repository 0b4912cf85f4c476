"""Evaluation work shared out over the processes of a multi-process JAX job and gathered once.

After `jax.distributed.initialize()` every host runs the same program. An evaluation over N items
(samples to draw, images to featurize) is cut into C chunks of a fixed size; chunk c is computed by
process c mod P, with whatever randomness it uses keyed by c (`fold_in(key, c)`), and one
`process_allgather` (an XLA all-gather over every process's devices: no collective of our own) hands
every process all C results in chunk order. The result is therefore the same for any number of
processes P, and on one process nothing is gathered.

Streaming statistics (`gen_jax.eval.statistics`) are reduced the same way: each process folds its
own chunks into a running (count, mean, M2), and the P states are gathered once and merged in
process order (Chan et al.'s pairwise update), so 50k features never sit in one process's memory.

JAX gathers 32-bit values unless `jax_enable_x64` is set; float64 statistics travel as their raw
bytes (viewed as uint32 pairs), so they arrive bit-exact either way.

Every process must make the same calls in the same order (each gather is a collective).
"""
from __future__ import annotations

from typing import Callable

import jax
import numpy as np
from jax.experimental import multihost_utils

from gen_jax.eval import statistics as statistics_lib


def own_chunks(num_chunks: int) -> range:
  """The chunks this process computes: c = process_index, process_index + P, ... below num_chunks."""
  return range(jax.process_index(), num_chunks, jax.process_count())


def _to_wire(a: np.ndarray) -> np.ndarray:
  """`a` as 32-bit-or-narrower values that `process_allgather` carries unchanged (8-byte items as uint32 pairs)."""
  a = np.array(a, order="C", copy=None)  # not ascontiguousarray: it makes a 0-d array 1-d
  if a.dtype == np.bool_:
    return a.view(np.uint8)
  if a.dtype.itemsize == 8:
    return a.reshape(a.shape + (1,)).view(np.uint32)
  return a


def _from_wire(a: np.ndarray, like: np.ndarray) -> np.ndarray:
  if like.dtype == np.bool_:
    return a.view(np.bool_)
  if like.dtype.itemsize == 8:
    return np.array(a, order="C", copy=None).view(like.dtype)[..., 0]
  return a


def _allgather(tree):
  """Every process's `tree` (numpy leaves of equal shapes on every process), stacked on a new leading axis."""
  leaves, treedef = jax.tree.flatten(tree)
  leaves = [np.asarray(leaf) for leaf in leaves]
  gathered = multihost_utils.process_allgather([_to_wire(leaf) for leaf in leaves])
  return jax.tree.unflatten(treedef, [_from_wire(np.asarray(g), leaf) for g, leaf in zip(gathered, leaves)])


def map_chunks(fn: Callable[[int], object], num_chunks: int) -> list:
  """`[fn(c) for c in range(num_chunks)]`, each `fn(c)` computed by process c mod P and gathered on every process.

  `fn(c)` returns a pytree of numpy arrays whose shapes are the same for every c. A process with no chunk
  (num_chunks < P) computes chunk 0 as the shape of what it sends, then discards it.
  """
  if num_chunks < 1:
    raise ValueError(f"num_chunks must be a positive integer, got {num_chunks}")
  count = jax.process_count()
  if count == 1:
    return [fn(c) for c in range(num_chunks)]
  mine = [jax.tree.map(np.asarray, fn(c)) for c in own_chunks(num_chunks)]
  per_process = -(-num_chunks // count)
  filler = mine[0] if mine else jax.tree.map(np.asarray, fn(0))
  slots = mine + [jax.tree.map(np.zeros_like, filler)] * (per_process - len(mine))
  stacked = jax.tree.map(lambda *leaves: np.stack(leaves), *slots)  # [per_process, ...]
  gathered = _allgather(stacked)  # [P, per_process, ...]
  return [jax.tree.map(lambda g, c=c: g[c % count, c // count], gathered) for c in range(num_chunks)]


def gather_statistics(state: statistics_lib.StatisticsState) -> statistics_lib.StatisticsState:
  """Every process's running statistics merged into those of all their features (in process order)."""
  if jax.process_count() == 1:
    return state
  gathered = _allgather({"num": np.int64(state.num), "mean": state.mean, "m2": state.m2})
  merged = statistics_lib.init_statistics(state.mean.shape[0])
  for p in range(jax.process_count()):
    merged = statistics_lib.merge_statistics(merged, statistics_lib.StatisticsState(
        int(gathered["num"][p]), gathered["mean"][p], gathered["m2"][p]))
  return merged


def any_process(flag: bool) -> bool:
  """Whether `flag` holds on any process (e.g. a local failure every process must act on together)."""
  if jax.process_count() == 1:
    return bool(flag)
  return bool(np.any(_allgather(np.bool_(flag))))
