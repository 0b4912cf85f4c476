"""TFDS builder `mnist_split`: the 10k OFFICIAL MNIST TEST images, split into train 8000 / test 2000.

Use it where only MNIST's test files are at hand (as on machines without network). Numbers obtained
on it are NOT comparable with published MNIST results, which train on the official 60k training set:
both of this builder's splits come from the official *test* set (LeCun et al. 1998).

Split: the official test set's two halves were written by different populations (first 5k mostly
Census Bureau employees, last 5k mostly high-school students), so splitting by index would shift
the distribution between train and test. Instead, with `perm = np.random.default_rng(0)
.permutation(N)` over the N official test images, 'train' is `perm[:round(0.8 N)]` (8000 for
N = 10000) and 'test' the rest (2000). Each example keeps `index`, its position in the official test
file. If the official training files are in the folder too, they become the extra split
'official_train' (60000 images, the real MNIST training set).

Files read (IDX format, raw or gzip; see `idx.py`), in the first folder found of:
  1. `mnist_dir=` passed to the builder;
  2. the TFDS manual dir (`download_config=tfds.download.DownloadConfig(manual_dir=...)`), if it
     holds the files;
  3. `$GEN_JAX_MNIST_DIR`;
  4. `<repository root>/../shared/data/mnist`.
Needed: `t10k-images-idx3-ubyte[.gz]`, `t10k-labels-idx1-ubyte[.gz]`; optional:
`train-images-idx3-ubyte[.gz]`, `train-labels-idx1-ubyte[.gz]`.
"""
from __future__ import annotations

import os
import pathlib

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

from gen_jax.data import idx

NUM_LEVELS = 256
TRAIN_FRACTION = 0.8
SPLIT_SEED = 0
ENV_VAR = "GEN_JAX_MNIST_DIR"
DEFAULT_DIR = pathlib.Path(__file__).resolve().parents[2].parent / "shared" / "data" / "mnist"

_INSTRUCTIONS = (
    "Put MNIST's IDX files t10k-images-idx3-ubyte.gz and t10k-labels-idx1-ubyte.gz (optionally the "
    "train-* files; gzip or raw) in one folder, and point to it with the environment variable "
    f"{ENV_VAR}, or pass mnist_dir= to the builder, or place the folder at {DEFAULT_DIR}.")


def _find_file(folder: pathlib.Path, prefix: str, kind: str) -> pathlib.Path | None:
  """`prefix`-`kind` file in folder, e.g. t10k-images-idx3-ubyte(.gz), or None."""
  suffix = {"images": "idx3-ubyte", "labels": "idx1-ubyte"}[kind]
  for sep in ("-", "."):
    for ext in ("", ".gz"):
      path = folder / f"{prefix}-{kind}{sep}{suffix}{ext}"
      if path.is_file():
        return path
  return None


def has_mnist_test_files(folder: str | os.PathLike | None) -> bool:
  if folder is None:
    return False
  folder = pathlib.Path(folder)
  return all(_find_file(folder, "t10k", k) is not None for k in ("images", "labels"))


def find_mnist_dir(mnist_dir: str | os.PathLike | None = None) -> pathlib.Path:
  """The folder holding MNIST's IDX test files: `mnist_dir`, else $GEN_JAX_MNIST_DIR, else default.

  Raises:
    FileNotFoundError: saying which folders were tried and where to put the files.
  """
  tried = []
  candidates = [mnist_dir] if mnist_dir is not None else [os.environ.get(ENV_VAR), DEFAULT_DIR]
  for folder in candidates:
    if folder is None:
      continue
    tried.append(str(folder))
    if has_mnist_test_files(folder):
      return pathlib.Path(folder)
  raise FileNotFoundError(f"No MNIST IDX test files found (tried: {tried}). {_INSTRUCTIONS}")


def read_mnist(folder: str | os.PathLike, prefix: str) -> tuple[np.ndarray, np.ndarray]:
  """Reads `prefix` ('t10k' or 'train') images uint8 [N, 28, 28, 1] and labels int64 [N]."""
  folder = pathlib.Path(folder)
  paths = {k: _find_file(folder, prefix, k) for k in ("images", "labels")}
  for kind, path in paths.items():
    if path is None:
      raise FileNotFoundError(f"No {prefix}-{kind} IDX file in {folder}. {_INSTRUCTIONS}")
  images = idx.read_idx(paths["images"], expected_magic=idx.IMAGES_MAGIC)
  labels = idx.read_idx(paths["labels"], expected_magic=idx.LABELS_MAGIC)
  if images.shape[1:] != (28, 28):
    raise ValueError(f"{paths['images']} holds images of shape {images.shape[1:]}, expected (28, 28)")
  if labels.shape[0] != images.shape[0]:
    raise ValueError(f"{paths['labels']} has {labels.shape[0]} labels but {paths['images']} has "
                     f"{images.shape[0]} images; expected equal counts")
  if labels.size and labels.max() > 9:
    raise ValueError(f"{paths['labels']} has label {labels.max()}, expected labels in 0..9")
  return images[..., None], labels.astype(np.int64)


def split_indices(num_examples: int) -> dict[str, np.ndarray]:
  """Positions (in the official test file) of 'train' and 'test'; sorted, disjoint, covering all."""
  perm = np.random.default_rng(SPLIT_SEED).permutation(num_examples)
  num_train = int(round(TRAIN_FRACTION * num_examples))
  return {"train": np.sort(perm[:num_train]), "test": np.sort(perm[num_train:])}


class MnistSplit(tfds.core.GeneratorBasedBuilder):
  """MNIST's 10k official test images split 8000 / 2000 by a seeded permutation (see module doc)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: official t10k images, seeded 80/20 split."}
  MANUAL_DOWNLOAD_INSTRUCTIONS = _INSTRUCTIONS
  NUM_LEVELS = NUM_LEVELS
  # TFDS derives this through `importlib_resources`, a package it does not install on Python >= 3.9.
  code_path = epath.Path(__file__)

  def __init__(self, *, mnist_dir: str | os.PathLike | None = None, **kwargs):
    self._mnist_dir = mnist_dir
    super().__init__(**kwargs)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(28, 28, 1), dtype=np.uint8),
            "label": tfds.features.Tensor(shape=(), dtype=np.int64),
            "index": tfds.features.Tensor(shape=(), dtype=np.int64),
        }),
        supervised_keys=("image", "label"),
        homepage="http://yann.lecun.com/exdb/mnist/",
        citation="LeCun, Y., Bottou, L., Bengio, Y. and Haffner, P. (1998). Gradient-based learning "
        "applied to document recognition. Proceedings of the IEEE 86(11).",
    )

  def _source_dir(self, dl_manager) -> pathlib.Path:
    if self._mnist_dir is not None:
      return find_mnist_dir(self._mnist_dir)
    try:
      manual = dl_manager.manual_dir  # raises AssertionError when missing or empty
    except AssertionError:
      manual = None
    if has_mnist_test_files(manual):
      return pathlib.Path(manual)
    return find_mnist_dir()

  def _split_generators(self, dl_manager):
    folder = self._source_dir(dl_manager)
    images, labels = read_mnist(folder, "t10k")
    splits = {name: self._generate_examples(images, labels, indices)
              for name, indices in split_indices(images.shape[0]).items()}
    if all(_find_file(folder, "train", k) is not None for k in ("images", "labels")):
      train_images, train_labels = read_mnist(folder, "train")
      splits["official_train"] = self._generate_examples(
          train_images, train_labels, np.arange(train_images.shape[0]))
    return splits

  def _generate_examples(self, images, labels, indices):
    for i in indices:
      yield int(i), {"image": images[i], "label": labels[i], "index": int(i)}
