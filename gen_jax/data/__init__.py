"""Data: TFDS-based image datasets, toy 2-D densities with known log-density, dequantization.

  load_dataset(name, split, data_dir=None, in_memory=True) -> Dataset   the one entry point for training
                                                             (in_memory=False: records read on indexing)
  dataset_from_arrays(data, labels, num_levels) -> Dataset   a researcher's own arrays (also 'npz:PATH')
  DataSpec, Dataset                                          static spec / arrays (or records.RecordColumn)
  batch_indices, padded_batches                              resumable sampling / masked eval batches
  levels (module): discrete levels <-> model spaces ([-1, 1] centres, [0, 1] bins), bits_per_dim
  dequantize (module): uniform_dequantize, discrete_log_likelihood, ...
  toy2d (module): sample, log_prob, true_nll, entropy

Importing this package registers the TFDS builders 'digits' and 'mnist_split'.
"""
from gen_jax.data import dequantize
from gen_jax.data.arrays import dataset_from_arrays
from gen_jax.data import toy2d
from gen_jax.data.batching import batch_indices, padded_batches
from gen_jax.data import levels
from gen_jax.data.dequantize import (
    VariationalDequantizer,
    discrete_log_likelihood,
    uniform_dequantize,
    variational_discrete_log_likelihood,
)
from gen_jax.data.digits import Digits
from gen_jax.data.levels import bits_per_dim
from gen_jax.data.load import known_names, load_dataset
from gen_jax.data.mnist_split import MnistSplit, find_mnist_dir
from gen_jax.data.spec import DataSpec, Dataset, check_images

__all__ = [
    "DataSpec", "Dataset", "Digits", "MnistSplit", "VariationalDequantizer", "batch_indices",
    "bits_per_dim", "check_images", "dataset_from_arrays", "dequantize", "discrete_log_likelihood", "find_mnist_dir",
    "known_names", "levels", "load_dataset", "padded_batches", "toy2d", "uniform_dequantize",
    "variational_discrete_log_likelihood",
]
