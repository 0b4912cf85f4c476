"""Images from a folder, as the FID command-line tools read them: sorted files, RGB uint8.

As pytorch-fid: files with an image extension directly in the folder (not sub-folders), in sorted
order, each opened with PIL and converted to RGB. Consecutive images of the same size are grouped
into chunks, so a folder of any size streams through a feature network a chunk at a time.
"""
import os

import numpy as np
from PIL import Image

IMAGE_EXTENSIONS = ("bmp", "jpg", "jpeg", "pgm", "png", "ppm", "tif", "tiff", "webp")


def list_images(folder):
  """Sorted paths of the image files directly in `folder`."""
  if not os.path.isdir(folder):
    raise FileNotFoundError(f"no folder at {folder}: expected a folder of images or a statistics .npz")
  paths = sorted(os.path.join(folder, name) for name in os.listdir(folder)
                 if name.lower().rsplit(".", 1)[-1] in IMAGE_EXTENSIONS and "." in name)
  if not paths:
    raise ValueError(f"{folder} holds no images: expected files ending in {', '.join(IMAGE_EXTENSIONS)}")
  return paths


def read_image(path):
  """uint8 [H, W, 3]."""
  with Image.open(path) as image:
    return np.asarray(image.convert("RGB"), dtype=np.uint8)


def iterate_image_folder(folder, chunk_size=50):
  """Yields uint8 [n, H, W, 3] chunks (n <= chunk_size) of same-sized consecutive images."""
  chunk = []
  for path in list_images(folder):
    image = read_image(path)
    if chunk and (len(chunk) == chunk_size or image.shape != chunk[0].shape):
      yield np.stack(chunk)
      chunk = []
    chunk.append(image)
  yield np.stack(chunk)


def write_image_folder(folder, images, num_levels=256):
  """Writes uint8 [N, H, W, C] images as PNGs 000000.png, ... (C = 1 is written as grey).

  Images with num_levels < 256 levels (e.g. 17 for digits) are scaled to 0..255 first.
  """
  images = np.asarray(images)
  if num_levels != 256:
    images = levels_to_8bit(images, num_levels)
  if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"expected uint8 [N, H, W, 1 or 3] images, got {images.dtype} {images.shape}")
  os.makedirs(folder, exist_ok=True)
  width = max(6, len(str(len(images) - 1)))
  for i, image in enumerate(images):
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
        os.path.join(folder, f"{i:0{width}d}.png"))


def levels_to_8bit(images, num_levels):
  """uint8 levels 0..L-1 -> uint8 0..255, round(x * 255 / (L - 1)); exact inverse of `eight_bit_to_levels`."""
  images = np.asarray(images)
  if images.dtype != np.uint8 or (images.size and images.max() >= num_levels):
    raise ValueError(f"expected uint8 levels in [0, {num_levels - 1}], got {images.dtype} "
                     f"with maximum {images.max() if images.size else None}")
  return np.round(images.astype(np.float64) * 255 / (num_levels - 1)).astype(np.uint8)


def eight_bit_to_levels(images, num_levels):
  """uint8 0..255 -> levels round(x * (L - 1) / 255) (images written by `levels_to_8bit` come back exactly)."""
  images = np.asarray(images)
  if images.dtype != np.uint8:
    raise ValueError(f"expected uint8 images in [0, 255], got {images.dtype}")
  return np.round(images.astype(np.float64) * (num_levels - 1) / 255).astype(np.uint8)


def to_grey(images):
  """[N, H, W, 3] images whose three channels are equal -> [N, H, W, 1]; anything else is an error."""
  images = np.asarray(images)
  if images.shape[-1] == 3:
    if not (np.array_equal(images[..., 0], images[..., 1]) and np.array_equal(images[..., 0], images[..., 2])):
      raise ValueError("expected grey images (equal R, G and B) for a single-channel feature network")
    return images[..., :1]
  return images
