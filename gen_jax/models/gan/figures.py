"""The GAN family's figures: latent interpolations and traversals, as uint8 image grids."""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import latent_space
from gen_jax import visualize
from gen_jax.data.levels import centres_to_levels


def interpolations_and_traversals(model, variables, rng, num_levels: int) -> dict[str, np.ndarray]:
  """8 spherical interpolations between pairs of z ~ N(0, I) (one per row), and a traversal of the first
  8 latent dimensions of one z over [-2.5, 2.5] (one dimension per row), decoded in eval mode."""
  levels = lambda z: np.asarray(centres_to_levels(model.apply(variables, z, False, method=model.decode),
                                                  num_levels))
  z = jax.random.normal(rng, (16, model.latent_dim))
  path = jnp.concatenate([latent_space.spherical_interpolation(z[i], z[8 + i], 8) for i in range(8)])
  dims = list(range(min(8, model.latent_dim)))
  traversal = latent_space.latent_traversal(z[0], dims, np.linspace(-2.5, 2.5, 8))
  return {"interpolations": visualize.image_grid(levels(path), num_levels, columns=8),
          "traversals": visualize.image_grid(levels(traversal), num_levels, columns=8)}
