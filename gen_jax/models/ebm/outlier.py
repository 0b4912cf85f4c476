"""Outlier scores of an energy (higher = more outlying), to rank with `gen_jax.eval.outlier.auroc`.

  energy_score(x)         E(x) = -log p(x) - log Z: the NLL up to a constant, so the same ranking as
                          a normalised model's -log p (no Z needed).
  gradient_norm_score(x)  |grad_x E(x)| = |grad_x log p(x)|, the score's norm: small at the modes of the
                          data and, for a well-trained energy, larger off them (JEM, Grathwohl et al.
                          2020, use it as an outlier score).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from gen_jax.models.ebm.langevin import energy_gradient


def energy_score(energy_fn: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
  return energy_fn(x)


def gradient_norm_score(energy_fn: Callable[[jax.Array], jax.Array], x: jax.Array) -> jax.Array:
  g = energy_gradient(energy_fn)(x)
  return jnp.sqrt(jnp.sum(jnp.square(g.reshape(g.shape[0], -1)), axis=1))
