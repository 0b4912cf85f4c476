"""The diffusion family's figures: a denoising chain and inpainting, as uint8 image grids."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import visualize
from gen_jax.data.levels import centres_to_levels


def denoising_and_inpainting(model, variables, rng, examples, num_levels: int, sample_steps, sample_eta,
                             null_label: int | None = None) -> dict:
  """8 samples' chains from noise to data (8 columns along the sampler's steps), and the test
  `examples` [8, H, W, C] (uint8) with their top half kept and the bottom half inpainted (by a
  class-conditional model's null label `null_label`, the unconditional model; None: unconditional)."""
  event_shape = tuple(examples.shape[1:])
  sample_rng, edit_rng = jax.random.split(rng)
  _, trajectory = model.apply(variables, sample_rng, 8, sample_steps, sample_eta,
                              return_trajectory=True, method=model.sample)  # [steps, 8, ...]
  columns = np.round(np.linspace(0, trajectory.shape[0] - 1, 8)).astype(int)
  chain = np.swapaxes(np.asarray(centres_to_levels(trajectory[columns], num_levels)), 0, 1).reshape(-1, *event_shape)
  mask = np.zeros(examples.shape, np.float32)
  mask[:, : event_shape[0] // 2] = 1.0  # top half known
  labels = None if null_label is None else jnp.full((examples.shape[0],), null_label, jnp.int32)
  inpainted = model.apply(variables, edit_rng, examples, 1.0, sample_steps, jnp.asarray(mask), sample_eta,
                          labels=labels, method=model.edit)
  rows = np.concatenate([np.asarray(examples), (np.asarray(examples) * mask).astype(np.uint8),
                         np.asarray(inpainted)])
  return {"denoising": visualize.image_grid(chain, num_levels, columns=8),
          "inpainting": visualize.image_grid(rows, num_levels, columns=8)}
