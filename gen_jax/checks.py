"""Input validation that fails early and names what was expected.

Shape and dtype checks are static and always run (also under `jit`). Value checks (range, finiteness)
need concrete values: they run on concrete arrays (eager calls, data entering the pipeline) and are
skipped for tracers, where the pipeline has already checked the data before it was placed on device.
"""
from __future__ import annotations

from typing import Sequence

import jax
import numpy as np


def is_concrete(x) -> bool:
  return not isinstance(x, jax.core.Tracer)


def check_rank(x, rank: int, name: str = "x", layout: str = "") -> None:
  if x.ndim != rank:
    hint = f" {layout}" if layout else ""
    raise ValueError(f"{name} must have rank {rank}{hint}, got shape {tuple(x.shape)}")


def check_vector_or_image(x, name: str = "x") -> None:
  """Checks `x` is a batch of vectors [B, D] or of images [B, H, W, C]."""
  if x.ndim not in (2, 4):
    raise ValueError(f"{name} must have rank 2 [B, D] or rank 4 [B, H, W, C], got shape {tuple(x.shape)}")


def check_event_shape(x, event_shape: Sequence[int], name: str = "x") -> None:
  """Checks `x` is [batch, *event_shape]."""
  event_shape = tuple(event_shape)
  expected = ("batch",) + event_shape
  if x.ndim != len(event_shape) + 1:
    raise ValueError(f"{name} must have shape {expected} (rank {len(expected)}), got {tuple(x.shape)}")
  if tuple(x.shape[1:]) != event_shape:
    raise ValueError(f"{name} must have shape {expected}, got {tuple(x.shape)}")


def check_range(x, low: float, high: float, name: str = "x") -> None:
  """Checks low <= x <= high when `x` is concrete."""
  if not is_concrete(x) or x.size == 0:
    return
  x = np.asarray(x)
  lo, hi = float(x.min()), float(x.max())
  if not (low <= lo and hi <= high):
    raise ValueError(f"{name} must lie in [{low}, {high}], got values in [{lo}, {hi}]")


def check_positive_int(n, name: str = "num") -> None:
  if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
    raise ValueError(f"{name} must be a positive integer, got {n!r}")
