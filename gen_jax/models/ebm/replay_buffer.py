"""The replay buffer of persistent Langevin chains (Du & Mordatch 2019, "Implicit generation and
generalization in energy-based models", section 3.1), as a pure array [N, ...] in the train state.

Each train step draws B chain states from the buffer without replacement, restarts each from uniform
noise on the domain with probability `reinit_prob` (5% in the paper), runs Langevin from them and
writes the results back at the same indices. The buffer is an entry of the params dict (the loop
checkpoints it with them), so a resumed run continues exactly the same chains.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp

from gen_jax.models.ebm.langevin import uniform_on_box


def init_replay_buffer(rng: jax.Array, size: int, event_shape, domain: tuple[float, float]) -> jax.Array:
  """[size, *event_shape] chain states drawn uniformly on the domain."""
  return uniform_on_box(rng, (size, *event_shape), domain)


def draw_chain_starts(buffer: jax.Array, rng: jax.Array, num: int, reinit_prob: float,
                      domain: tuple[float, float]) -> tuple[jax.Array, jax.Array]:
  """(starts [num, ...], their buffer indices [num]); a fraction `reinit_prob` restarted from noise."""
  if num > buffer.shape[0]:
    raise ValueError(f"cannot draw {num} chains from a replay buffer of {buffer.shape[0]}: expected "
                     "buffer_size >= batch_size")
  index_rng, reset_rng, noise_rng = jax.random.split(rng, 3)
  indices = jax.random.choice(index_rng, buffer.shape[0], (num,), replace=False)
  reset = jax.random.bernoulli(reset_rng, reinit_prob, (num,) + (1,) * (buffer.ndim - 1))
  starts = jnp.where(reset, uniform_on_box(noise_rng, (num, *buffer.shape[1:]), domain), buffer[indices])
  return starts, indices


def store_chains(buffer: jax.Array, indices: jax.Array, chains: jax.Array) -> jax.Array:
  """The buffer with `chains` written at `indices` (distinct, from `draw_chain_starts`)."""
  return buffer.at[indices].set(chains.astype(buffer.dtype))
