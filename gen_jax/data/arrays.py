"""A researcher's own arrays as a `Dataset`, and the `npz:PATH` dataset name that trains on them from
the command line.

    train = dataset_from_arrays(images_uint8)                      # [N, H, W, C] uint8: 256 levels
    train = dataset_from_arrays(images, num_levels=17)             # levels 0..16
    train = dataset_from_arrays(points_float32)                    # [N, D] continuous vectors
    gen_jax.drivers.loop.train_and_evaluate(config, workdir, train_data=train, test_data=test)

    python -m experiments.main --config=... --config.data.name=npz:/data/mine.npz

An `.npz` holds `train` and `test` arrays in the form above, optionally `train_labels` / `test_labels`
(integers [N]) and `num_levels` (a scalar; default 256 for images). Nothing is converted: floats for
images or integers for vectors are refused with what was expected, since a silent rescale would change
the units every likelihood is reported in.
"""
from __future__ import annotations

import os

import numpy as np

from gen_jax.data.spec import DataSpec, Dataset

NPZ_PREFIX = "npz:"
DEFAULT_NUM_LEVELS = 256


def dataset_from_arrays(data, labels=None, num_levels: int | None = None, name: str = "arrays") -> Dataset:
  """`data` uint8 [N, H, W, C] images (levels 0..num_levels-1, default 256) or float32 [N, D] vectors.

  Raises:
    ValueError: another rank or dtype (the message names the expected ones), levels out of range,
      non-finite vectors, labels that are not integers [N], or num_levels given for vectors.
  """
  data = np.asarray(data)
  if data.ndim == 4:
    if data.dtype != np.uint8:
      raise ValueError(f"{name}: images must be uint8 levels [N, H, W, C], got dtype {data.dtype}; quantize "
                       "them first (e.g. np.round(x * 255).astype(np.uint8) for floats in [0, 1])")
    spec = DataSpec(name, data.shape[1:], DEFAULT_NUM_LEVELS if num_levels is None else int(num_levels), "image")
  elif data.ndim == 2:
    if data.dtype != np.float32:
      raise ValueError(f"{name}: vectors must be float32 [N, D], got dtype {data.dtype}")
    if num_levels is not None:
      raise ValueError(f"{name}: num_levels is for images (uint8 [N, H, W, C]); vectors [N, D] are continuous")
    spec = DataSpec(name, data.shape[1:], None, "vector")
  else:
    raise ValueError(f"{name}: expected uint8 images [N, H, W, C] or float32 vectors [N, D], got shape "
                     f"{data.shape}")
  if labels is not None:
    labels = np.asarray(labels)
    if not np.issubdtype(labels.dtype, np.integer):
      raise ValueError(f"{name}: labels must be integers [N], got dtype {labels.dtype}")
    labels = labels.astype(np.int64)
  return Dataset(data=data, labels=labels, spec=spec)  # checks shapes, level range, finiteness


def load_npz_split(name: str, split: str) -> Dataset:
  """Split `split` ('train' / 'test') of the dataset named `npz:PATH`."""
  path = name[len(NPZ_PREFIX):]
  if not os.path.isfile(path):
    raise FileNotFoundError(f"dataset {name!r}: expected an .npz file at {path!r} (arrays 'train', 'test', "
                            "optional 'train_labels', 'test_labels', 'num_levels')")
  with np.load(path) as archive:
    if split not in archive.files:
      raise ValueError(f"dataset {name!r} has no array {split!r}; it holds {sorted(archive.files)}")
    labels = archive[f"{split}_labels"] if f"{split}_labels" in archive.files else None
    num_levels = int(archive["num_levels"]) if "num_levels" in archive.files else None
    return dataset_from_arrays(archive[split], labels, num_levels, name=name)
