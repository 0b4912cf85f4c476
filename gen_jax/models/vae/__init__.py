"""Variational autoencoders: the VAE, its decoder likelihoods, networks and latent-space tools.

  VAE                 encode / decode / elbo / iwae_bound / log_prob_estimate / sample (vae.py)
  likelihoods         p(x | z): Bernoulli, Gaussian, (mixtures of) discretized logistics
  networks            MLP and conv encoders / decoders
  latent_space        interpolations, traversals, their grids; active units, KL per dimension
  gaussian            diagonal-Gaussian helpers: reparameterisation, log-densities, KL terms
                      (`gaussian.standard_normal_log_prob`; `gaussian.log_prob` is exported as
                      `gaussian_log_prob`)
"""
from gen_jax.models.vae import gaussian
from gen_jax.models.vae.gaussian import kl_diag_gaussians, kl_to_standard_normal, reparameterize
from gen_jax.models.vae.gaussian import log_prob as gaussian_log_prob
from gen_jax.models.vae.latent_space import (active_units, decode_grid, images_to_grid,
                                             interpolation_grid, latent_traversal,
                                             linear_interpolation, mean_kl_per_dim,
                                             posterior_mean_variance, spherical_interpolation,
                                             traversal_grid)
from gen_jax.models.vae.likelihoods import (LIKELIHOODS, Bernoulli, DiscretizedLogistic,
                                            DiscretizedLogisticMixture, Gaussian, Likelihood,
                                            discretized_logistic_log_prob, get_likelihood,
                                            levels_to_centres, make_likelihood, split_params)
from gen_jax.models.vae.networks import ConvDecoder, ConvEncoder, MLPDecoder, MLPEncoder
from gen_jax.models.vae.vae import VAE, check_finite
from gen_jax.models.vae.hierarchical import HierarchicalVAE

__all__ = [
    "Bernoulli", "ConvDecoder", "ConvEncoder", "DiscretizedLogistic", "DiscretizedLogisticMixture",
    "Gaussian", "HierarchicalVAE", "LIKELIHOODS", "Likelihood", "MLPDecoder", "MLPEncoder", "VAE", "active_units",
    "check_finite", "decode_grid", "discretized_logistic_log_prob", "gaussian", "gaussian_log_prob",
    "get_likelihood", "images_to_grid", "interpolation_grid", "kl_diag_gaussians",
    "kl_to_standard_normal", "latent_traversal", "levels_to_centres", "linear_interpolation",
    "make_likelihood", "mean_kl_per_dim", "posterior_mean_variance", "reparameterize",
    "spherical_interpolation", "split_params", "traversal_grid",
]
