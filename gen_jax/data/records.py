"""A split read record by record: each feature of a `tfds.data_source` as an array that reads only the rows asked for.

On many hosts each process needs only its rows of each global batch (`gen_jax.train.sharding.process_rows`):
batch s's example indices are the same for any process count (`batching.batch_indices`), and process p
reads records `indices[rows_p]` from the split's array_record files by random access, never the whole
split. One process with a split too large for memory reads the same way.

`RecordColumn` behaves as a read-only numpy array [N, ...] where the loop and `padded_batches` use one:
`len`, `shape`, `dtype`, `ndim`, indexing by an integer, a slice or an integer array (a new numpy array,
read then), `astype`, and `np.asarray` (reads everything). The image and label columns of a split share
one `RecordReader`, which keeps the records of its last read, so a batch's images and labels are read
and decoded once. Values are checked as they are read (`check`), since the whole split never is.

Why not grain: its `ShardByJaxProcess` gives process p a contiguous 1/P of the records to shuffle and
batch by itself, so batch s would hold other examples on another process count, and resuming a run on
more hosts would change its data stream; the index stream here keeps batch s fixed and needs from the
source only random access, which `tfds.data_source` has. Reading a 128-example batch of digits at random
indices this way took 4.2 ms on this 2-core machine (a train step of the quick start takes ~30 ms).
"""
from __future__ import annotations

from typing import Any, Callable, Sequence

import numpy as np


class RecordReader:
  """Random access to the examples of a data source (`__len__`, `__getitems__`), keeping its last read."""

  def __init__(self, source: Any):
    self.source = source
    self._last_indices: np.ndarray | None = None
    self._last_examples: Sequence[Any] = ()

  def __len__(self) -> int:
    return len(self.source)

  def read(self, indices: np.ndarray) -> Sequence[Any]:
    if self._last_indices is None or not np.array_equal(indices, self._last_indices):
      self._last_examples = self.source.__getitems__([int(i) for i in indices]) if len(indices) else []
      self._last_indices = indices
    return self._last_examples


class RecordColumn:
  """Feature `key` of every record of `reader` as an array [N, *shape] of `dtype`, read on indexing.

  Args:
    reader: the split's `RecordReader`.
    key: the feature's name in each example (e.g. 'image', 'label').
    shape: one example's shape; () for a scalar feature.
    dtype: the dtype values are cast to (exactly: a value that changes when cast is an error).
    check: called on each array read (e.g. a range check), raising ValueError.
  """

  def __init__(self, reader: RecordReader, key: str, shape: tuple[int, ...], dtype,
               check: Callable[[np.ndarray], None] | None = None):
    self.reader, self.key, self.dtype, self.check = reader, key, np.dtype(dtype), check
    self.shape = (len(reader),) + tuple(shape)

  @property
  def ndim(self) -> int:
    return len(self.shape)

  @property
  def size(self) -> int:
    return int(np.prod(self.shape))

  def __len__(self) -> int:
    return self.shape[0]

  def __repr__(self) -> str:
    return f"RecordColumn({self.key!r}, shape={self.shape}, dtype={self.dtype})"

  def astype(self, dtype) -> "RecordColumn":
    return RecordColumn(self.reader, self.key, self.shape[1:], dtype, self.check)

  def with_check(self, check: Callable[[np.ndarray], None]) -> "RecordColumn":
    return RecordColumn(self.reader, self.key, self.shape[1:], self.dtype, check)

  def _indices(self, index) -> np.ndarray:
    num = self.shape[0]
    if isinstance(index, slice):
      return np.arange(*index.indices(num))
    indices = np.asarray(index)
    if indices.ndim != 1 or not np.issubdtype(indices.dtype, np.integer):
      raise IndexError(f"a {type(self).__name__} is indexed by an integer, a slice or a 1-D integer array, "
                       f"got {index!r}")
    if indices.size and (indices.min() < -num or indices.max() >= num):
      raise IndexError(f"indices must lie in [{-num}, {num}) for {num} records, got values in "
                       f"[{indices.min()}, {indices.max()}]")
    return np.where(indices < 0, indices + num, indices)

  def __getitem__(self, index) -> np.ndarray:
    if isinstance(index, (int, np.integer)):
      return self[np.asarray([index])][0]
    indices = self._indices(index)
    values = [np.asarray(example[self.key]) for example in self.reader.read(indices)]
    out = np.stack(values) if values else np.empty((0,) + self.shape[1:], self.dtype)
    if out.shape[1:] != self.shape[1:]:
      raise ValueError(f"records' {self.key!r} have shape {out.shape[1:]}, expected {self.shape[1:]}")
    cast = out.astype(self.dtype, copy=False)
    if cast is not out and not np.array_equal(cast, out):  # compared only where a cast happened
      raise ValueError(f"records' {self.key!r} ({out.dtype}) do not fit {self.dtype} exactly")
    if self.check is not None:
      self.check(cast)
    return cast

  def __array__(self, dtype=None, copy=None) -> np.ndarray:
    out = self[:]
    return out if dtype is None else out.astype(dtype)
