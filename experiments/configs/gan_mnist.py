"""A DCGAN-style GAN on the MNIST split (256 levels).
`--config=experiments/configs/gan_mnist.py[:cpu][,metrics][,ns|minimax|wgan_gp|hinge_sn]`."""
from experiments.configs import gan_base
from experiments.configs.base import mnist_config


def get_config(arg: str | None = None):
  return gan_base.image_gan_config(mnist_config, arg, latent_dim=100)
