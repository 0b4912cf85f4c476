"""Compress a split of a run's data with its model, or decode a file it wrote.

  python -m gen_jax.compress --workdir runs/pixelcnn_digits --out test.gjc            # the test split
  python -m gen_jax.compress --workdir runs/pixelcnn_digits --decode test.gjc --out images.npz

Encoding prints the size in bits/dim; decoding writes the images (uint8 [N, H, W, C], key `images`)
and, with `--check`, compares them with the split they came from. Errors are one line on stderr
(exit status 2), naming the file: not a compressed file, truncated, corrupted, or written with
another model.
"""
from __future__ import annotations

import argparse
import os
import sys

import numpy as np


def main(argv=None) -> None:
  parser = argparse.ArgumentParser(prog="python -m gen_jax.compress", description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True, help="the run whose model codes the images")
  parser.add_argument("--out", required=True, help="encoding: the compressed file; decoding: an .npz of the images")
  parser.add_argument("--decode", metavar="FILE", help="decode FILE instead of encoding")
  parser.add_argument("--split", default="test", help="the split of the run's dataset to encode")
  parser.add_argument("--num", type=int, default=None, help="encode only the split's first NUM images")
  parser.add_argument("--coder", default=None, help="autoregressive or bits_back (default: the run's first)")
  parser.add_argument("--batch-size", type=int, default=None, help="images per network call")
  parser.add_argument("--check", action="store_true", help="decoding: compare with the encoded split")
  args = parser.parse_args(argv)
  if os.path.exists(args.out):
    parser.error(f"{args.out} exists; not overwriting it")
  for name in ("num", "batch_size"):
    value = getattr(args, name)
    if value is not None and value <= 0:
      parser.error(f"--{name.replace('_', '-')} must be a positive integer, got {value}")
  if args.decode is not None and not os.path.isfile(args.decode):
    parser.error(f"{args.decode}: no such file")

  import gen_jax  # after the arguments: --help and argument errors need no JAX
  from gen_jax import compress
  from gen_jax.compress import container
  from gen_jax.data import load_dataset
  try:
    run = gen_jax.load_run(args.workdir)
    if args.decode is None:
      images = load_dataset(run.config.data.name, args.split, run.config.data.data_dir).data
      images = images if args.num is None else images[:args.num]
      data = compress.encode(run, images, args.coder, args.batch_size)
      container.write_file(args.out, data)
      print(f"{args.out}: {len(images)} images, {len(data)} bytes, {8 * len(data) / images.size:.4f} bits/dim")
    else:
      with open(args.decode, "rb") as f:
        data = f.read()
      images = compress.decode(run, data, args.decode)
      tmp = f"{args.out}.tmp{os.getpid()}.npz"
      np.savez(tmp, images=images)
      os.replace(tmp, args.out)
      print(f"{args.out}: {len(images)} images decoded from {args.decode}")
      if args.check:
        split = load_dataset(run.config.data.name, args.split, run.config.data.data_dir).data[:len(images)]
        same = np.array_equal(images, split)
        print(f"{'identical to' if same else 'DIFFERENT from'} the first {len(images)} images of the {args.split} split")
        if not same:
          sys.exit(1)
  except (OSError, ValueError) as error:
    print(f"python -m gen_jax.compress: error: {error}", file=sys.stderr)
    sys.exit(2)


if __name__ == "__main__":
  main()
