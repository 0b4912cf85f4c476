"""Variational autoencoders: the VAE, the hierarchical VAE, their encoder / decoder networks.

  VAE                 encode / decode / elbo / iwae_bound / log_prob_estimate / sample (vae.py)
  HierarchicalVAE     a ladder of latent layers with a top-down prior (hierarchical.py)
  networks            MLP and conv encoders / decoders
  vae_task            their `Task` (task.py); figures in figures.py

Shared pieces live below the families: the decoder likelihoods p(x | z) and the diagonal-Gaussian
helpers in `gen_jax.distributions`, interpolations, traversals and posterior-collapse diagnostics in
`gen_jax.latent_space`, the level <-> [-1, 1] map in `gen_jax.data.levels`.
"""
from gen_jax.models.vae.networks import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder
from gen_jax.models.vae.vae import VAE, check_finite
from gen_jax.models.vae.hierarchical import HierarchicalVAE

__all__ = ["ConvDecoder", "ConvEncoder", "HierarchicalVAE", "MLPDecoder", "MLPEncoder", "VAE", "check_finite"]
