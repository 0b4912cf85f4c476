"""A DCGAN-style GAN on the 8x8 digits (17 levels).
`--config=experiments/configs/gan_digits.py[:cpu][,metrics][,ns|minimax|wgan_gp|hinge_sn]`."""
from experiments.configs import gan_base
from experiments.configs.base import digits_config, parse_variant


def get_config(arg: str | None = None):
  variants = parse_variant(arg, ("cpu", "metrics") + gan_base.LOSS_VARIANTS)
  config, _ = digits_config(",".join(sorted(variants - set(gan_base.LOSS_VARIANTS))))
  config.model.name = "gan"
  config.model.architecture = "dcgan"
  config.model.num_levels = 17
  config.model.latent_dim = 64
  config.model.channels = 64
  config.model.discriminator_norm = "batch"
  gan_base.set_gan_objective(config, variants)
  if "cpu" in variants:
    config.model.channels = 32
  return config
