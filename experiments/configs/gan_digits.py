"""A DCGAN-style GAN on the 8x8 digits (17 levels).
`--config=experiments/configs/gan_digits.py[:cpu][,metrics][,ns|minimax|wgan_gp|hinge_sn]`."""
from experiments.configs import gan_base
from experiments.configs.base import digits_config


def get_config(arg: str | None = None):
  return gan_base.image_gan_config(digits_config, arg, latent_dim=64)
