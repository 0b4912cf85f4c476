"""The three training objectives on one energy E_theta; each a pure function of energies or of an energy fn.

Maximum likelihood with MCMC negatives (contrastive divergence; Hinton 2002, with Langevin negatives:
Du & Mordatch 2019, Nijkamp et al. 2019). For p = exp(-E) / Z,
  grad_theta -log p(x) = grad_theta E(x) - E_{x' ~ p}[grad_theta E(x')],
so with negatives x' from Langevin chains (held constant) the surrogate
  L = mean E(x_data) - mean E(x_neg) + alpha * mean(E(x_data)^2 + E(x_neg)^2)
has the NLL's gradient (up to the chains' bias); alpha > 0 is Du & Mordatch's energy regulariser.

Denoising score matching (Vincent 2011), no MCMC: with x~ = x + sigma eps, eps ~ N(0, I), the score
of the noised data is matched by the model's s(x~) = -grad_x E(x~):
  L_DSM = E_{x, eps} 1/2 || sigma s(x~) + eps ||^2   (= sigma^2/2 || s(x~) - (x - x~)/sigma^2 ||^2),
minimised by the score of p_data * N(0, sigma^2 I). Weighted by sigma^2 so it is O(D) at any sigma.

Noise-contrastive estimation (Gutmann & Hyvarinen 2010), no MCMC: with noise y ~ q (known density) and
log p_theta = -E - c (c a learned log-normaliser), logistic regression of data against noise on
G(x) = log p_theta(x) - log q(x), one noise sample per data sample:
  L_NCE = -mean log sigmoid(G(x)) - mean log sigmoid(-G(y)),
whose minimiser (large samples) is p_theta = p_data with c = log Z.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from gen_jax.models.ebm.langevin import energy_gradient


def maximum_likelihood_loss(energy_data: jax.Array, energy_negatives: jax.Array,
                            energy_l2: float = 0.0) -> jax.Array:
  """The contrastive-divergence surrogate above; energies [B] of data and of (stopped) negatives."""
  return (jnp.mean(energy_data) - jnp.mean(energy_negatives)
          + energy_l2 * (jnp.mean(jnp.square(energy_data)) + jnp.mean(jnp.square(energy_negatives))))


def denoising_score_matching_loss(energy_fn: Callable[[jax.Array], jax.Array], x: jax.Array, rng: jax.Array,
                                  sigma: float) -> jax.Array:
  """L_DSM above, averaged over the batch x [B, ...] (one noise draw per example)."""
  eps = jax.random.normal(rng, x.shape, x.dtype)
  score = -energy_gradient(energy_fn)(x + sigma * eps)
  return 0.5 * jnp.mean(jnp.sum(jnp.square(sigma * score + eps).reshape(x.shape[0], -1), axis=1))


def noise_contrastive_loss(log_model_data: jax.Array, log_noise_data: jax.Array, log_model_noise: jax.Array,
                           log_noise_noise: jax.Array) -> jax.Array:
  """L_NCE above, from the model's and the noise's log-densities at the data [B] and at the noise [B]."""
  return (jnp.mean(jax.nn.softplus(-(log_model_data - log_noise_data)))
          + jnp.mean(jax.nn.softplus(log_model_noise - log_noise_noise)))
