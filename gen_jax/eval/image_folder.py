"""Images from a folder, as the FID command-line tools read them: sorted files, RGB uint8.

As pytorch-fid: files with an image extension directly in the folder (not sub-folders), in sorted
order, each opened with PIL and converted to RGB. Consecutive images of the same size are grouped
into chunks, so a folder of any size streams through a feature network a chunk at a time.

pytorch-fid, clean-fid and torch-fidelity all read `Image.open(path).convert("RGB")`: right for
modes of 8 bits a channel (1, L, P, RGB; PIL's formulas for CMYK, YCbCr, ...), and so here too, but
16-bit grey (mode I;16) is clipped at 255, so nearly every pixel of a 16-bit PNG turns white.
Here, instead:
  16-bit grey (I;16*, and I from a PNG)  v -> v >> 8 = floor(v / 256), the reduction PIL itself
      applies to 16-bit RGB and RGBA PNGs (libpng's strip_16), so a picture stored as 16-bit grey
      or as 16-bit RGB reads the same; 8-bit values stored as 16 bits (v * 257) come back exactly.
  32-bit integer or float grey (I, F) and any other mode  refused: their range in 8 bits is not known.
  alpha or a transparent colour (LA, PA, RGBA, P or RGB with a transparency key)  the alpha is
      dropped only when every pixel is opaque; a transparent pixel is refused, not composited.
Every failure is an `ImageReadError` that names the file (and its mode, where that is the reason).
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


EIGHT_BIT_MODES = ("1", "L", "P", "RGB", "RGBX", "CMYK", "YCbCr", "LAB", "HSV")  # read with PIL's convert("RGB")
SIXTEEN_BIT_GREY_MODES = ("I;16", "I;16L", "I;16B", "I;16N")
ALPHA_MODES = ("LA", "La", "PA", "RGBA", "RGBa")


class ImageReadError(ValueError):
  """An image file that cannot be read, or has no faithful 8-bit RGB form; the message names the file."""


def _rgb8(image, path):
  """uint8 [H, W, 3] of an open PIL image, by the rules of the module docstring."""
  mode = image.mode
  if mode in SIXTEEN_BIT_GREY_MODES or (mode == "I" and image.format == "PNG"):
    grey = np.asarray(image).astype(np.int64)  # [H, W] in [0, 65535]
    return np.repeat((grey >> 8).astype(np.uint8)[..., None], 3, axis=-1)
  if mode in ALPHA_MODES or "transparency" in image.info:
    rgba = np.asarray(image.convert("RGBA"))
    transparent = int((rgba[..., 3] < 255).sum())
    if transparent:
      raise ImageReadError(f"{path} (mode {mode}) has {transparent} of {rgba[..., 3].size} pixels transparent "
                           f"(alpha < 255): expected opaque images, as Inception sees no alpha; composite them "
                           f"onto a background first")
    return np.ascontiguousarray(rgba[..., :3])
  if mode not in EIGHT_BIT_MODES:  # I (32-bit integer), F (float), I;16S, ...: no known range in 8 bits
    raise ImageReadError(f"{path} has mode {mode}, which has no known 8-bit range: expected an 8-bit mode "
                         f"{EIGHT_BIT_MODES}, 16-bit grey or opaque alpha; convert it to 8 bits first")
  return np.asarray(image.convert("RGB"), dtype=np.uint8)


def read_image(path):
  """uint8 [H, W, 3] of the image file `path` (see the module docstring); ImageReadError naming it otherwise."""
  try:
    with Image.open(path) as image:
      return _rgb8(image, path)
  except ImageReadError:
    raise
  except Exception as error:  # PIL raises OSError, SyntaxError, ValueError, zlib.error, ... (truncated, corrupt)
    raise ImageReadError(f"cannot read the image {path}: {type(error).__name__}: {error}") from error


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
