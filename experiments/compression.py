"""The models as lossless compressors of their test split, next to their NLL and the usual codecs.

  python -m experiments.compression --runs runs/pixelcnn_digits,runs/vae_digits --out docs/results/compression_digits.json

For each run: every test image encoded and decoded (`gen_jax.compress.measure`: bit-exact round trip,
bits/dim of the whole file and net of the header and initial bits, images/s each way), the model's own
test NLL in bits/dim by its first estimator (exact for a PixelCNN, the ELBO for a VAE), and the same
images through PNG (the images tiled into one 8-bit grey image, Pillow's optimize=True), WebP lossless
(method 6), bzip2 (level 9) and xz (preset 9 extreme) of the raw uint8 array: bits/dim = 8 bytes / dims.
Prints a markdown table; `--out` writes the numbers as JSON.
"""
from __future__ import annotations

import argparse
import bz2
import io
import json
import lzma
import math

import numpy as np
from PIL import Image

import gen_jax
from gen_jax import compress
from gen_jax.data import load_dataset


def grid(images: np.ndarray) -> np.ndarray:
  """uint8 [N, H, W, 1] -> one grey image of ceil(sqrt(N)) columns (the empty cells zero)."""
  n, h, w = images.shape[:3]
  columns = math.ceil(math.sqrt(n))
  rows = -(-n // columns)
  canvas = np.zeros((rows * h, columns * w), np.uint8)
  for i, image in enumerate(images[..., 0]):
    canvas[(i // columns) * h:(i // columns + 1) * h, (i % columns) * w:(i % columns + 1) * w] = image
  return canvas


def codec_bits_per_dim(images: np.ndarray) -> dict[str, float]:
  """Bits/dim of the usual lossless codecs on the same images (their levels as 8-bit values)."""
  dims = images.size
  sizes = {}
  for name, options in (("PNG (optimized)", dict(format="PNG", optimize=True)),
                        ("WebP lossless", dict(format="WEBP", lossless=True, quality=100, method=6))):
    buffer = io.BytesIO()
    Image.fromarray(grid(images)).save(buffer, **options)
    sizes[name] = len(buffer.getvalue())
  raw = np.ascontiguousarray(images).tobytes()
  sizes["bzip2 -9"] = len(bz2.compress(raw, 9))
  sizes["xz -9e"] = len(lzma.compress(raw, preset=9 | lzma.PRESET_EXTREME))
  return {name: 8 * size / dims for name, size in sizes.items()}


def measure_run(workdir: str) -> dict:
  run = gen_jax.load_run(workdir)
  images = load_dataset(run.config.data.name, "test", run.config.data.data_dir).data
  estimator = run.estimators[0]
  log_p = np.concatenate([np.asarray(run.log_likelihood(images[i:i + 500], estimator))
                          for i in range(0, len(images), 500)])
  result = compress.measure(run, images)
  return {"run": workdir, "model": run.config.model.name, "data": run.config.data.name, "step": run.step,
          "estimator": estimator, "nll_bits_per_dim": float(-log_p.mean() / (math.log(2) * math.prod(images.shape[1:]))),
          **result, "codecs": codec_bits_per_dim(images)}


def table(results: list[dict]) -> str:
  codecs = list(results[0]["codecs"])
  lines = ["| data | model (coder) | test NLL, bits/dim | coded, bits/dim (net) | gap | " + " | ".join(codecs)
           + " | encode / decode images/s | exact |",
           "|---|---|---:|---:|---:|" + "---:|" * len(codecs) + "---:|---|"]
  for r in results:
    lines.append(f"| {r['data']} ({r['num_images']} test images) | {r['model']} ({r['coder']}) | "
                 f"{r['nll_bits_per_dim']:.4f} ({r['estimator']}) | {r['bits_per_dim']:.4f} ({r['net_bits_per_dim']:.4f}) | "
                 f"{r['net_bits_per_dim'] - r['nll_bits_per_dim']:+.4f} | "
                 + " | ".join(f"{r['codecs'][c]:.3f}" for c in codecs)
                 + f" | {r['encode_images_per_s']:.1f} / {r['decode_images_per_s']:.1f} | {'yes' if r['exact'] else 'NO'} |")
  return "\n".join(lines)


def main() -> None:
  parser = argparse.ArgumentParser(prog="python -m experiments.compression", description=__doc__,
                                   formatter_class=argparse.RawDescriptionHelpFormatter)
  parser.add_argument("--runs", required=True, help="comma-separated run directories")
  parser.add_argument("--out", default=None, help="write the numbers as JSON here")
  args = parser.parse_args()
  results = [measure_run(w) for w in args.runs.split(",")]
  print(table(results))
  if args.out:
    with open(args.out, "w") as f:
      json.dump(results, f, indent=2)


if __name__ == "__main__":
  main()
