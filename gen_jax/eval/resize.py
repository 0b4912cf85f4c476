"""Resizing images to the Inception network's 299 x 299, in the named modes the FID literature uses.

How images are resized changes FID by more than many reported improvements (Parmar et al. 2022,
"On Aliased Resizing and Surprising Subtleties in GAN Evaluation"). Every mode maps uint8
[N, H, W, C] images to float32 [N, 299, 299, 3] in [0, 255]; `inception_input` then applies the
network's (x - 128) / 128. Grey images (C = 1) are repeated to RGB.

Modes:
  clean:             PIL's bicubic filter on each channel as a float32 image, then clipped to
                     [0, 255] (clean-fid's default; antialiased when shrinking).
  legacy_pytorch:    bilinear, align_corners=False, no antialiasing (torch.nn.functional.interpolate,
                     as pytorch-fid and StyleGAN2-ADA resize inside the network).
  legacy_tensorflow: TF1's tf.image.resize_bilinear (align_corners=False, no half-pixel centres):
                     source coordinate = destination * in / out (TTUR's original graph).
"""
import jax.numpy as jnp
import numpy as np
from PIL import Image

from gen_jax import checks

INCEPTION_SIZE = 299
RESIZE_MODES = ("clean", "legacy_pytorch", "legacy_tensorflow")


def check_images(images):
  """Checks uint8 [N, H, W, C] images with C in {1, 3}; returns them as a NumPy array."""
  images = np.asarray(images)
  if images.dtype != np.uint8:
    raise ValueError(f"images must be uint8 in [0, 255] (as [N, H, W, C]), got dtype {images.dtype}")
  checks.check_rank(images, 4, "images [N, H, W, C]")
  if images.shape[-1] not in (1, 3):
    raise ValueError(f"images must have 1 (grey) or 3 (RGB) channels, got shape {images.shape}")
  return images


def bilinear_matrix(in_size, out_size, half_pixel_centers):
  """The [out, in] matrix of 1-D bilinear interpolation weights (no antialiasing).

  half_pixel_centers=True:  src = max((dst + 0.5) * in / out - 0.5, 0)   (torch, align_corners=False)
  half_pixel_centers=False: src = dst * in / out                         (TF1 resize_bilinear)
  """
  # float32 coordinates, as torch and TF compute them for float32 images.
  scale = np.float32(in_size / out_size)
  dst = np.arange(out_size, dtype=np.float32)
  src = np.maximum((dst + np.float32(0.5)) * scale - np.float32(0.5), np.float32(0)) if half_pixel_centers \
      else dst * scale
  low = np.minimum(np.floor(src).astype(np.int64), in_size - 1)
  high = np.minimum(low + 1, in_size - 1)
  frac = (src - low).astype(np.float64)
  matrix = np.zeros((out_size, in_size), np.float64)
  np.add.at(matrix, (np.arange(out_size), low), 1.0 - frac)
  np.add.at(matrix, (np.arange(out_size), high), frac)
  return matrix.astype(np.float32)


def _bilinear(images, half_pixel_centers, size):
  rows = bilinear_matrix(images.shape[1], size, half_pixel_centers)
  cols = bilinear_matrix(images.shape[2], size, half_pixel_centers)
  x = jnp.asarray(images, jnp.float32)
  return jnp.einsum("oh,nhwc,pw->nopc", rows, x, cols, precision="highest")


def _pil_bicubic(images, size):
  out = np.empty(images.shape[:1] + (size, size) + images.shape[3:], np.float32)
  for n, image in enumerate(images):
    for c in range(image.shape[-1]):
      channel = Image.fromarray(image[..., c].astype(np.float32))  # mode "F"
      out[n, ..., c] = np.asarray(channel.resize((size, size), resample=Image.BICUBIC))
  return np.clip(out, 0.0, 255.0)


def resize_images(images, mode="clean", size=INCEPTION_SIZE):
  """uint8 [N, H, W, C] -> float32 [N, size, size, 3] in [0, 255] (see the module docstring)."""
  images = check_images(images)
  if mode not in RESIZE_MODES:
    raise ValueError(f"unknown resize mode '{mode}': expected one of {RESIZE_MODES}")
  if images.shape[-1] == 1:
    images = np.repeat(images, 3, axis=-1)
  if mode == "clean":
    return jnp.asarray(_pil_bicubic(images, size))
  return _bilinear(images, half_pixel_centers=(mode == "legacy_pytorch"), size=size)


def inception_input(images, mode="clean"):
  """uint8 [N, H, W, C] -> the network's input: (resized - 128) / 128, [N, 299, 299, 3]."""
  return (resize_images(images, mode) - 128.0) / 128.0
