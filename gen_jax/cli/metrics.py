"""Every sample-quality metric between two folders of images, from the command line.

  python -m gen_jax.cli.metrics REAL_FOLDER FAKE_FOLDER [--metrics fid,kid,prdc,sfid,is]
      [--weights FILE] [--resize MODE] [--batch-size N] [--classifier RUN_DIR] [--nearest-k K]
      [--kid-subsets S] [--kid-subset-size M] [--is-splits S] [--seed SEED]

Prints one `NAME: value` line per number (see sample_quality.py for the names). The feature network
is the FID Inception network, or with `--classifier RUN_DIR` a domain classifier trained by gen_jax
(experiments/configs/classifier_*.py), whose features suit small grey datasets where Inception's
ImageNet features do not; its folders hold 8-bit images of that dataset (levels scaled to 0..255 by
`image_folder.levels_to_8bit`, as `write_image_folder(..., num_levels=L)` writes them). The Inception
Score needs logits: Inception weights with a head (NVIDIA's or pytorch-fid's file), or a classifier.

Every argument is checked before any image is read or the network built (both folders, the
weights' head for `is`, the sample counts, `--batch-size` against the device count as in fid.py,
the positive counts, `--kid-subset-size` >= 2, a `--seed` numpy's RandomState takes): a problem is
one line on stderr and exit status 2, as is an image that cannot be read (naming its file); sample
counts that make a metric unreliable (FID with n <= 2048, ...) are `warning:` lines on stderr.
The folders stream through the network a batch at a time: only the features are kept.
"""
import argparse
import sys

import jax

from gen_jax import checks
from gen_jax.cli import fid
from gen_jax.cli import preflight
from gen_jax.drivers import scoring
from gen_jax.eval import features
from gen_jax.eval import image_folder
from gen_jax.eval import sample_quality


def feature_network(weights=None, resize="clean", classifier=None):
  """(the Inception network or a gen_jax run's domain classifier, its data spec or None, its output sizes)."""
  if classifier is not None:
    loaded = scoring.load_domain_classifier(classifier)
    return loaded.feature_network(), loaded.spec, preflight.FeatureSizes(loaded.feature_dim, None, loaded.num_classes)
  return features.inception_network(weights, resize), None, preflight.INCEPTION_SIZES


def main(argv=None):
  parser = argparse.ArgumentParser(prog="python -m gen_jax.cli.metrics", description=__doc__.split("\n")[0])
  parser.add_argument("real", help="folder of real images")
  parser.add_argument("fake", help="folder of generated images")
  parser.add_argument("--metrics", default="fid,kid,prdc", help=f"comma-separated, from {sample_quality.METRICS}")
  fid.add_network_arguments(parser)
  parser.add_argument("--classifier", default=None, help="a gen_jax classifier run directory as feature network")
  parser.add_argument("--nearest-k", type=int, default=5, help="k of precision/recall/density/coverage")
  parser.add_argument("--kid-subsets", type=int, default=100)
  parser.add_argument("--kid-subset-size", type=int, default=1000, help="at least 2; capped at the smaller set's size")
  parser.add_argument("--is-splits", type=int, default=10)
  parser.add_argument("--seed", type=int, default=2020, help="seed of KID's subsets and IS's shuffle, in [0, 2**32)")
  args = parser.parse_args(argv)
  try:  # every argument before any image is read: a bad one costs a second, not a pass over the images
    metrics = sample_quality.check_metric_names([m for m in args.metrics.split(",") if m])
    for name in ("nearest_k", "kid_subsets", "kid_subset_size", "is_splits"):
      checks.check_positive_int(getattr(args, name), "--" + name.replace("_", "-"))
    if args.kid_subset_size < 2:
      raise ValueError(f"--kid-subset-size must be at least 2 (KID's estimator divides by m - 1), got "
                       f"{args.kid_subset_size}")
    if not 0 <= args.seed < 2**32:
      raise ValueError(f"--seed must lie in [0, 2**32) (a seed of numpy's RandomState), got {args.seed}")
    batch_size = fid.batch_size_for_devices(args.batch_size, jax.device_count(), sharded=args.classifier is None)
    counts = [preflight.count_images(p) for p in (args.real, args.fake)]
    if "is" in metrics and args.classifier is None:
      preflight.check_logits_head(args.weights)
    network, spec, sizes = feature_network(args.weights, args.resize, args.classifier)
    missing = sorted(set(sample_quality.needed_outputs(metrics)) - set(network.outputs))
    if missing:
      raise ValueError(f"{network.name} has no output {missing} for --metrics {','.join(metrics)}: it has "
                       f"{list(network.outputs)}")
    warnings = preflight.check_sample_sizes(metrics, *counts, sizes, nearest_k=args.nearest_k,
                                            kid_subset_size=args.kid_subset_size, is_splits=args.is_splits)
  except (OSError, ValueError) as error:  # missing folders or weights, no images, a wrong weights file
    preflight.fail(parser, error)
  for message in warnings:
    preflight.warn(parser, message)
  real, fake = (image_folder.iterate_image_folder(p, batch_size) for p in (args.real, args.fake))  # lazy
  if spec is not None:  # the classifier takes its dataset's levels: grey, 0..L-1
    convert = lambda chunk: image_folder.eight_bit_to_levels(
        image_folder.to_grey(chunk) if spec.event_shape[-1] == 1 else chunk, spec.num_levels)
    real, fake = map(convert, real), map(convert, fake)
  try:
    results = sample_quality.sample_quality(
        network, real, fake, metrics, batch_size=batch_size, nearest_k=args.nearest_k,
        kid_subsets=args.kid_subsets, kid_subset_size=args.kid_subset_size, is_splits=args.is_splits,
        seed=args.seed)
  except image_folder.ImageReadError as error:  # a truncated file, a mode with no 8-bit form: named
    preflight.fail(parser, error)
  for name, value in results.items():
    print(f"{name.upper()}: {value}")
  return 0


if __name__ == "__main__":
  sys.exit(main())
