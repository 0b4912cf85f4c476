"""The VAE family's figures: reconstructions and latent interpolations, as uint8 image grids."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import latent_space
from gen_jax import visualize


def reconstructions_and_interpolations(model, variables, examples, num_levels: int) -> dict[str, np.ndarray]:
  """Reconstructions (inputs above, decoded posterior means below) and slerp interpolations between
  posterior means, for uint8 `examples` [N, H, W, C] in `num_levels` levels; works for any latent
  pytree (a vector, or the HVAE's layer list)."""
  to_levels = lambda x: np.clip(np.round(np.asarray(x)), 0, num_levels - 1).astype(np.uint8)
  decode_mean = lambda z: model.apply(variables, z, method=model.decode_mean)
  latents = model.apply(variables, examples, method=model.posterior_mean)
  n = min(8, examples.shape[0] // 2)

  def interpolate(z):  # [B, ...] -> [n * 8, ...]: row i goes from example i to example n + i
    flat = z.reshape(z.shape[0], -1)
    path = jnp.concatenate([latent_space.spherical_interpolation(flat[i], flat[n + i], 8) for i in range(n)])
    return path.reshape(-1, *z.shape[1:])

  pairs = np.concatenate([np.asarray(examples[:16]), to_levels(decode_mean(latents)[:16])])
  return {"reconstructions": visualize.image_grid(pairs, num_levels, columns=16),
          "interpolations": visualize.image_grid(to_levels(decode_mean(jax.tree.map(interpolate, latents))),
                                                 num_levels, columns=8)}
