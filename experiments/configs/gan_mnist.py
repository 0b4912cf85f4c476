"""A DCGAN-style GAN on the MNIST split (256 levels).
`--config=experiments/configs/gan_mnist.py[:cpu][,metrics][,ns|minimax|wgan_gp|hinge_sn]`."""
from experiments.configs import gan_base
from experiments.configs.base import mnist_config, parse_variant


def get_config(arg: str | None = None):
  variants = parse_variant(arg, ("cpu", "metrics") + gan_base.LOSS_VARIANTS)
  config, _ = mnist_config(",".join(sorted(variants - set(gan_base.LOSS_VARIANTS))))
  config.model.name = "gan"
  config.model.architecture = "dcgan"
  config.model.num_levels = 256
  config.model.latent_dim = 100
  config.model.channels = 64
  config.model.discriminator_norm = "batch"
  gan_base.set_gan_objective(config, variants)
  if "cpu" in variants:
    config.model.channels = 32
  return config
