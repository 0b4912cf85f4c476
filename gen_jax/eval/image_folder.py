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


def write_image_folder(folder, images):
  """Writes uint8 [N, H, W, C] images as PNGs 000000.png, ... (C = 1 is written as grey)."""
  images = np.asarray(images)
  if images.dtype != np.uint8 or images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"expected uint8 [N, H, W, 1 or 3] images, got {images.dtype} {images.shape}")
  os.makedirs(folder, exist_ok=True)
  width = max(6, len(str(len(images) - 1)))
  for i, image in enumerate(images):
    Image.fromarray(image[..., 0] if image.shape[-1] == 1 else image).save(
        os.path.join(folder, f"{i:0{width}d}.png"))
