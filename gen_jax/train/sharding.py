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


def put_global_batch(batch, sharding: NamedSharding, example_axis: int = 0):
  """Places a global batch (the same numpy array, or pytree of arrays, on every process) sharded over the mesh.

  Each process contributes only its own rows, so this also works on many hosts.
  """
  n_proc, proc = jax.process_count(), jax.process_index()

  def put(array: np.ndarray) -> jax.Array:
    rows = array.shape[example_axis] // n_proc
    local = np.take(array, np.arange(proc * rows, (proc + 1) * rows), axis=example_axis)
    return jax.make_array_from_process_local_data(sharding, local, array.shape)

  return jax.tree.map(put, batch)
