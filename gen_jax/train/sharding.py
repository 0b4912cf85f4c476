"""Data parallelism over every device JAX sees: a 1-D Mesh with a "data" axis.

The batch is sharded on its leading (example) axis, params and optimizer state are replicated. The same
code runs on 1 CPU, fake CPU devices (`XLA_FLAGS=--xla_force_host_platform_device_count=8`), a GPU,
or many hosts after `jax.distributed.initialize()`.
"""
from __future__ import annotations

from typing import Sequence

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec as P

DATA_AXIS = "data"


def make_mesh(devices: Sequence[jax.Device] | None = None) -> Mesh:
  devices = jax.devices() if devices is None else list(devices)
  return Mesh(np.asarray(devices), (DATA_AXIS,))


def replicated(mesh: Mesh) -> NamedSharding:
  return NamedSharding(mesh, P())


def batch_sharding(mesh: Mesh, leading_axes: int = 0) -> NamedSharding:
  """Shards the example axis, which follows `leading_axes` unsharded axes (e.g. 1 for [K, B, ...])."""
  return NamedSharding(mesh, P(*([None] * leading_axes), DATA_AXIS))


def check_divisible(batch_size: int, mesh: Mesh, name: str = "batch_size") -> None:
  n = mesh.devices.size
  if batch_size % n:
    raise ValueError(f"{name} must be a multiple of the number of devices ({n}), got {batch_size}")


def process_rows(sharding: NamedSharding, global_shape: tuple[int, ...], example_axis: int = 0) -> slice:
  """The rows [start, stop) of the example axis that this process's devices hold under `sharding`
  (all rows on one process; one contiguous block of B / process_count rows of each on many)."""
  starts, stops = set(), set()
  for index in sharding.addressable_devices_indices_map(tuple(global_shape)).values():
    start, stop, _ = index[example_axis].indices(global_shape[example_axis])
    starts.add(start), stops.add(stop)
  start, stop = min(starts), max(stops)
  return slice(start, stop)


def put_process_batch(local_batch, sharding: NamedSharding, global_size: int, example_axis: int = 0):
  """Assembles a global batch of `global_size` examples from each process's own rows (`process_rows`):
  `local_batch` is an array, or pytree of arrays, holding only this process's rows on `example_axis`."""
  def put(local: np.ndarray) -> jax.Array:
    shape = list(np.shape(local))
    shape[example_axis] = global_size
    return jax.make_array_from_process_local_data(sharding, np.asarray(local), tuple(shape))

  return jax.tree.map(put, local_batch)


def put_global_batch(batch, sharding: NamedSharding, example_axis: int = 0):
  """Places a global batch (the same numpy array, or pytree of arrays, on every process) sharded over the mesh.

  Each process contributes only its own rows (`process_rows`), so this also works on many hosts.
  """
  def put(array: np.ndarray) -> jax.Array:
    rows = process_rows(sharding, array.shape, example_axis)
    local = np.take(array, np.arange(rows.start, rows.stop), axis=example_axis)
    return jax.make_array_from_process_local_data(sharding, local, array.shape)

  return jax.tree.map(put, batch)
