"""Generative adversarial networks: generators, discriminators, losses, penalties, mode coverage.

  networks        MLP, DCGAN (Radford et al. 2016) and ResNet (SNGAN / WGAN-GP) generators and
                  discriminators; `module.apply(variables, x, train=..., mutable=['batch_stats'])`
  gan             the GAN module: generator + discriminator; generator_output_to_levels
  losses          minimax / non-saturating (Goodfellow et al. 2014), Wasserstein, hinge; WGAN-GP
                  gradient penalty, R1 penalty; discriminator accuracy; critic input-gradient norms
  mode_coverage   modes captured and high-quality fraction on Gaussian mixtures (VEEGAN / PacGAN)
  task            their `Task` (one compiled two-player step); figures in figures.py

Spectral norm lives in `gen_jax.nn.spectral_norm` (the EBMs use it too), the level <-> [-1, 1] map
in `gen_jax.data.levels`.
"""
from gen_jax.models.gan.gan import GAN, generator_output_to_levels
from gen_jax.models.gan.losses import (LOSSES, critic_input_gradient_norms, critic_input_gradients,
                                       discriminator_accuracy, get_losses, gradient_penalty,
                                       hinge_discriminator_loss, hinge_generator_loss,
                                       minimax_discriminator_loss, minimax_generator_loss,
                                       non_saturating_generator_loss, r1_penalty,
                                       random_interpolates, wasserstein_discriminator_loss,
                                       wasserstein_generator_loss)
from gen_jax.models.gan.mode_coverage import mode_coverage, toy2d_mode_coverage
from gen_jax.models.gan.networks import (NORMS, DCGANDiscriminator, DCGANGenerator, MLPDiscriminator,
                                         MLPGenerator, ResNetDiscriminator, ResNetGenerator,
                                         count_params, resolution_plan)
from gen_jax.nn.spectral_norm import STATE_COLLECTION, maybe_spectral_norm, spectral_sigmas

__all__ = [
    "DCGANDiscriminator", "DCGANGenerator", "GAN", "LOSSES", "MLPDiscriminator", "MLPGenerator", "NORMS",
    "ResNetDiscriminator", "ResNetGenerator", "STATE_COLLECTION", "count_params",
    "critic_input_gradient_norms", "critic_input_gradients", "discriminator_accuracy",
    "generator_output_to_levels", "get_losses", "gradient_penalty", "hinge_discriminator_loss",
    "hinge_generator_loss", "maybe_spectral_norm", "minimax_discriminator_loss",
    "minimax_generator_loss", "mode_coverage", "non_saturating_generator_loss", "r1_penalty",
    "random_interpolates", "resolution_plan", "spectral_sigmas", "toy2d_mode_coverage",
    "wasserstein_discriminator_loss", "wasserstein_generator_loss",
]
