"""`load_dataset`: the one function training and evaluation use to get a split into memory.

Names:
  'digits'            sklearn's 8x8 digits, 17 levels, 1500 train / 297 test (`digits.py`)
  'mnist_split'       MNIST's 10k official TEST images split 8000 / 2000 (`mnist_split.py`)
  'toy2d/<density>'   fixed seeded samples of a toy 2-D density (`toy2d.py`): train 50k
                      (seed 0), validation 10k (seed 1), test 10k (seed 2)
  'npz:<path>'        a researcher's own arrays in an .npz (`arrays.py`)
  any TFDS name       e.g. 'mnist', 'cifar10', via `tfds.data_source` (array_record, see
                      `tfds_images.py`); 8-bit images, 256 levels

TFDS data lives in `data_dir`, default TFDS's own: $TFDS_DATA_DIR, else ~/tensorflow_datasets. The
local builders are prepared there on first use.
"""
from __future__ import annotations

import jax
import numpy as np
import tensorflow_datasets as tfds

from gen_jax.data import arrays
from gen_jax.data import digits as digits_lib  # registers the 'digits' builder
from gen_jax.data import mnist_split as mnist_split_lib  # registers the 'mnist_split' builder
from gen_jax.data import tfds_images
from gen_jax.data import toy2d
from gen_jax.data.spec import DataSpec, Dataset

LOCAL_BUILDERS = {"digits": digits_lib.Digits, "mnist_split": mnist_split_lib.MnistSplit}
TOY2D_SPLITS = {"train": (0, 50_000), "validation": (1, 10_000), "test": (2, 10_000)}
DEFAULT_NUM_LEVELS = 256  # 8-bit images from TFDS


def known_names() -> list[str]:
  """Names `load_dataset` knows without TFDS's registry (which adds every TFDS builder)."""
  return sorted(LOCAL_BUILDERS) + [f"toy2d/{n}" for n in toy2d.NAMES] + [f"{arrays.NPZ_PREFIX}<path>"]


def _load_toy2d(name: str, density: str, split: str) -> Dataset:
  if density not in toy2d.NAMES:
    raise ValueError(f"unknown toy2d density {density!r} in {name!r}; expected one of "
                     f"{[f'toy2d/{n}' for n in toy2d.NAMES]}")
  if split not in TOY2D_SPLITS:
    raise ValueError(f"unknown split {split!r} for {name}; expected one of {list(TOY2D_SPLITS)}")
  seed, num = TOY2D_SPLITS[split]
  data = np.asarray(toy2d.sample(density, jax.random.key(seed), num))
  return Dataset(data=data, labels=None, spec=DataSpec(name, (2,), None, "vector"))


def _load_tfds_images(name: str, split: str, data_dir: str | None, in_memory: bool | None) -> Dataset:
  base = name.split("/")[0].split(":")[0]
  if base not in LOCAL_BUILDERS and base not in tfds.list_builders(with_community_datasets=False):
    raise ValueError(f"unknown dataset {name!r}; expected one of {known_names()} or a TFDS dataset "
                     "name (tfds.list_builders(), e.g. 'mnist', 'cifar10')")
  num_levels = getattr(tfds.builder_cls(base), "NUM_LEVELS", DEFAULT_NUM_LEVELS)
  images, labels, _ = tfds_images.read_image_split(name, split, data_dir, in_memory=in_memory)
  spec = DataSpec(name, images.shape[1:], num_levels, "image")
  return Dataset(data=images, labels=labels, spec=spec)  # Dataset checks dtype, rank and range


def load_dataset(name: str, split: str, data_dir: str | None = None, in_memory: bool | None = True) -> Dataset:
  """Loads split `split` of dataset `name` into memory (or, for TFDS images, opens it record by record).

  Args:
    name: 'digits', 'mnist_split', 'toy2d/<density>', 'npz:<path>' or any TFDS image dataset name.
    split: 'train' / 'test' (TFDS slicing such as 'train[:10%]' works for TFDS datasets; toy2d
      also has 'validation').
    data_dir: TFDS data dir; None for TFDS's default ($TFDS_DATA_DIR or ~/tensorflow_datasets).
      Unused for toy2d.
    in_memory: for TFDS images: True reads the split into memory; False gives `data` and `labels`
      as `records.RecordColumn`s that read only the records indexed (one process's rows of a batch);
      None chooses records on a multi-process job or for a split over 4 GiB. toy2d and npz data are
      in memory in any case.

  Returns:
    A `Dataset`: uint8 [N, H, W, C] images with int64 labels (checked: values < num_levels), or
    float32 [N, 2] toy vectors without labels.

  Raises:
    ValueError: unknown name (the message lists the known ones) or split, or data that fails the
      checks.
  """
  if not isinstance(name, str) or not name:
    raise ValueError(f"dataset name must be a non-empty string, got {name!r}")
  if name.startswith("toy2d/") or name == "toy2d":
    return _load_toy2d(name, name[len("toy2d/"):], split)
  if name.startswith(arrays.NPZ_PREFIX):
    return arrays.load_npz_split(name, split)
  return _load_tfds_images(name, split, data_dir, in_memory)
