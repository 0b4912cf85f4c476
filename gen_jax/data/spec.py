"""What a dataset is: `DataSpec` (static, hashable description) and `Dataset` (arrays, or records read on demand).

`DataSpec` is what models and objectives need to know about the data and is safe to close over in a
`jax.jit`-compiled step (frozen, hashable). `Dataset` holds the numpy arrays:

  kind 'image':  data uint8 [N, H, W, C] with integer values in {0, ..., num_levels - 1}
  kind 'vector': data float32 [N, D], continuous (num_levels None)
"""
from __future__ import annotations

import dataclasses
import math
from typing import Literal

import numpy as np

from gen_jax import checks
from gen_jax.data.records import RecordColumn

Kind = Literal["image", "vector"]


@dataclasses.dataclass(frozen=True)
class DataSpec:
  """Static description of a dataset.

  Attributes:
    name: the name `load_dataset` was called with (e.g. 'digits', 'mnist', 'toy2d/two_moons').
    event_shape: shape of one example, e.g. (8, 8, 1) or (2,).
    num_levels: number of discrete values per dimension L (17 for digits, 256 for 8-bit images), or
      None for continuous data. Bits/dim on discrete data use it (see `dequantize`).
    kind: 'image' (uint8 [N, H, W, C]) or 'vector' (float32 [N, D]).
  """
  name: str
  event_shape: tuple[int, ...]
  num_levels: int | None
  kind: Kind

  def __post_init__(self):
    object.__setattr__(self, "event_shape", tuple(int(d) for d in self.event_shape))
    if self.kind not in ("image", "vector"):
      raise ValueError(f"DataSpec.kind must be 'image' or 'vector', got {self.kind!r}")
    if self.kind == "image":
      if len(self.event_shape) != 3:
        raise ValueError(f"image event_shape must be (H, W, C), got {self.event_shape}")
      if self.num_levels is None or not 2 <= self.num_levels <= 256:
        raise ValueError(f"image num_levels must be an int in [2, 256] (uint8), got {self.num_levels}")
    if self.kind == "vector" and len(self.event_shape) != 1:
      raise ValueError(f"vector event_shape must be (D,), got {self.event_shape}")

  @property
  def num_dims(self) -> int:
    """D, the number of scalar dimensions of one example (the D of bits/dim)."""
    return math.prod(self.event_shape)


@dataclasses.dataclass(frozen=True, eq=False)
class Dataset:
  """Arrays of one split, in memory (or, for a large or multi-process split, records read on demand).

  Attributes:
    data: uint8 [N, H, W, C] (images) or float32 [N, D] (vectors); or a `records.RecordColumn` that
      reads the rows indexed (checked as they are read).
    labels: int64 [N] class labels (or their `RecordColumn`), or None.
    spec: the static `DataSpec`.
  """
  data: np.ndarray
  labels: np.ndarray | None
  spec: DataSpec

  def __post_init__(self):
    name = f"{self.spec.name} data"
    if isinstance(self.data, RecordColumn):  # never read whole: the values are checked as records are read
      check_examples(np.empty((0,) + self.data.shape[1:], self.data.dtype), self.spec, name)
      object.__setattr__(self, "data", self.data.with_check(lambda x: check_examples(x, self.spec, name)))
    else:
      check_examples(self.data, self.spec, name)
    checks.check_nonempty_batch(self.data, name)
    if self.labels is not None and self.labels.shape != (self.data.shape[0],):
      raise ValueError(f"{self.spec.name} labels must have shape ({self.data.shape[0]},), "
                       f"got {self.labels.shape}")

  def __len__(self) -> int:
    return self.data.shape[0]


def check_images(x: np.ndarray, num_levels: int, name: str = "images") -> None:
  """Checks `x` is uint8 [N, H, W, C] with every value < num_levels (raises ValueError otherwise)."""
  checks.check_rank(x, 4, name, layout="[N, H, W, C]")
  if x.dtype != np.uint8:
    raise ValueError(f"{name} must have dtype uint8, got {x.dtype}")
  checks.check_range(x, 0, num_levels - 1, f"{name} (num_levels={num_levels})")


def check_examples(x: np.ndarray, spec: DataSpec, name: str = "data") -> None:
  """Checks `x` is a batch of examples of `spec` (dtype, event shape and, for images, value range)."""
  if spec.kind == "image":
    check_images(x, spec.num_levels, name)
    checks.check_event_shape(x, spec.event_shape, name)
  else:
    if x.dtype != np.float32:
      raise ValueError(f"{name} must have dtype float32, got {x.dtype}")
    checks.check_event_shape(x, spec.event_shape, name)
    if x.size and not np.all(np.isfinite(x)):
      raise ValueError(f"{name} must be finite, got non-finite values")
