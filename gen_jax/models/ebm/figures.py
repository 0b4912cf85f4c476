"""The EBM family's figures: the persistent chains' current states."""
from __future__ import annotations

import numpy as np

from gen_jax import visualize
from gen_jax.data.levels import unit_to_levels


def replay_buffer_grid(buffer, num_levels: int) -> dict[str, np.ndarray]:
  """The first 64 states of the replay buffer (points in [0, 1]^D) as a uint8 image grid."""
  states = np.asarray(unit_to_levels(buffer[:64], num_levels))
  return {"replay_buffer": visualize.image_grid(states, num_levels, columns=8)}
