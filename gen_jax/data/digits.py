"""TFDS builder `digits`: scikit-learn's bundled 8x8 handwritten digits (no download needed).

The data is the test set of the UCI "Optical Recognition of Handwritten Digits" dataset (Alpaydin &
Kaynak 1998) as shipped by `sklearn.datasets.load_digits`: 1797 images of 8x8 pixels, each pixel
the count of "on" pixels in a 4x4 block of a 32x32 bitmap, so values are integers 0..16
(17 grey levels, `NUM_LEVELS = 17`), and labels 0..9.

Split (fixed and deterministic): `np.random.default_rng(0).permutation(1797)`; its first 1500
indices are 'train', the remaining 297 are 'test'. Each example keeps `index`, its position in
`load_digits()` ordering.

Features are `tfds.features.Tensor` (image uint8 [8, 8, 1], label int64, index int64) and the files
are array_record, so building and reading need no tensorflow:

  builder = Digits(data_dir=...); builder.download_and_prepare(file_format='array_record')
  source = tfds.data_source('digits', split='train', data_dir=...)   # random access
"""
from __future__ import annotations

from etils import epath
import numpy as np
import tensorflow_datasets as tfds

NUM_LEVELS = 17
NUM_EXAMPLES = 1797
NUM_TRAIN = 1500
SPLIT_SEED = 0


def split_indices() -> dict[str, np.ndarray]:
  """The positions (in `load_digits()` ordering) of each split; sorted, disjoint, covering all."""
  perm = np.random.default_rng(SPLIT_SEED).permutation(NUM_EXAMPLES)
  return {"train": np.sort(perm[:NUM_TRAIN]), "test": np.sort(perm[NUM_TRAIN:])}


class Digits(tfds.core.GeneratorBasedBuilder):
  """sklearn's 8x8 digits, 17 grey levels, 1500 train / 297 test (seeded permutation)."""

  VERSION = tfds.core.Version("1.0.0")
  RELEASE_NOTES = {"1.0.0": "Initial release: uint8 Tensor features, seeded 1500/297 split."}
  NUM_LEVELS = NUM_LEVELS
  # TFDS derives this through `importlib_resources`, a package it does not install on Python >= 3.9.
  code_path = epath.Path(__file__)

  def _info(self) -> tfds.core.DatasetInfo:
    return tfds.core.DatasetInfo(
        builder=self,
        description=__doc__,
        features=tfds.features.FeaturesDict({
            "image": tfds.features.Tensor(shape=(8, 8, 1), dtype=np.uint8),
            "label": tfds.features.Tensor(shape=(), dtype=np.int64),
            "index": tfds.features.Tensor(shape=(), dtype=np.int64),
        }),
        supervised_keys=("image", "label"),
        homepage="https://archive.ics.uci.edu/dataset/80/optical+recognition+of+handwritten+digits",
        citation="Alpaydin, E. and Kaynak, C. (1998). Optical Recognition of Handwritten Digits. "
        "UCI Machine Learning Repository.",
    )

  def _split_generators(self, dl_manager):
    del dl_manager  # The data ships with scikit-learn.
    from sklearn.datasets import load_digits  # pylint: disable=g-import-not-at-top

    bunch = load_digits()
    images = bunch.images  # float64 [1797, 8, 8], integer values 0..16
    if images.shape != (NUM_EXAMPLES, 8, 8) or images.max() != NUM_LEVELS - 1:
      raise ValueError(f"sklearn load_digits returned images of shape {images.shape} and max "
                       f"{images.max()}, expected ({NUM_EXAMPLES}, 8, 8) and max {NUM_LEVELS - 1}")
    images = images.astype(np.uint8)[..., None]
    labels = bunch.target.astype(np.int64)
    return {split: self._generate_examples(images, labels, idx) for split, idx in split_indices().items()}

  def _generate_examples(self, images, labels, indices):
    for i in indices:
      yield int(i), {"image": images[i], "label": labels[i], "index": int(i)}
