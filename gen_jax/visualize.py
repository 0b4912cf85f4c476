"""Sample grids and scatter plots written by runs and notebooks."""
from __future__ import annotations

import math
import os

import numpy as np
from PIL import Image


def image_grid(images: np.ndarray, num_levels: int, columns: int | None = None, pad: int = 1) -> np.ndarray:
  """Tiles images of discrete levels [N, H, W, C] (values 0..num_levels-1) into one uint8 [0, 255] image."""
  images = np.asarray(images)
  if images.ndim != 4 or images.shape[-1] not in (1, 3):
    raise ValueError(f"images must be [N, H, W, C] with C in (1, 3), got shape {images.shape}")
  if images.min() < 0 or images.max() >= num_levels:
    raise ValueError(f"image values must lie in [0, {num_levels - 1}], got [{images.min()}, {images.max()}]")
  n, h, w, c = images.shape
  columns = columns or math.ceil(math.sqrt(n))
  rows = math.ceil(n / columns)
  scaled = np.round(images.astype(np.float64) * 255.0 / (num_levels - 1)).astype(np.uint8)
  grid = np.full((rows * (h + pad) + pad, columns * (w + pad) + pad, c), 255, np.uint8)
  for i, img in enumerate(scaled):
    r, col = divmod(i, columns)
    grid[pad + r * (h + pad):pad + r * (h + pad) + h, pad + col * (w + pad):pad + col * (w + pad) + w] = img
  return grid


def save_image_grid(path: str, images: np.ndarray, num_levels: int, upscale: int = 1) -> None:
  save_image(path, image_grid(images, num_levels), upscale)


def save_image(path: str, grid: np.ndarray, upscale: int = 1) -> None:
  """Writes a uint8 [H, W, C] image (e.g. an `image_grid`) as a PNG, upscaled by pixel repetition."""
  grid = np.asarray(grid)
  if grid.dtype != np.uint8 or grid.ndim != 3 or grid.shape[-1] not in (1, 3):
    raise ValueError(f"expected a uint8 [H, W, 1 or 3] image, got {grid.dtype} {grid.shape}")
  img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
  if upscale > 1:
    img = img.resize((img.width * upscale, img.height * upscale), Image.NEAREST)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  img.save(path)


def save_scatter(path: str, points: np.ndarray, reference: np.ndarray | None = None,
                 limit: float | None = None) -> None:
  """Scatter plot of 2-D samples, beside reference data when given."""
  panels = [("samples", points)] + ([("data", reference)] if reference is not None else [])
  save_scatter_panels(path, panels, limit)


def save_scatter_panels(path: str, panels: list[tuple[str, np.ndarray]], limit: float | None = None) -> None:
  """Side-by-side scatter plots of 2-D point sets, one titled panel per (title, [N, 2] points)."""
  import matplotlib
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt
  fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
  for ax, (title, pts) in zip(axes[0], panels):
    ax.scatter(pts[:, 0], pts[:, 1], s=1, alpha=0.5)
    ax.set_title(title)
    ax.set_aspect("equal")
    if limit:
      ax.set_xlim(-limit, limit)
      ax.set_ylim(-limit, limit)
  os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
  fig.savefig(path, dpi=80, bbox_inches="tight")
  plt.close(fig)
