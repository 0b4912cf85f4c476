"""An MLP GAN on 2-D mixtures (eight_gaussians, grid25), for the mode-collapse measures.
`--config=experiments/configs/gan_toy2d.py:DENSITY[,cpu][,ns|minimax|wgan_gp|hinge_sn]`."""
from experiments.configs import gan_base
from experiments.configs.base import parse_variant, toy2d_config
from gen_jax.data import toy2d


def get_config(arg: str | None = None):
  variants = parse_variant(arg, toy2d.NAMES + ("cpu",) + gan_base.LOSS_VARIANTS)
  config, _ = toy2d_config(",".join(sorted(variants - set(gan_base.LOSS_VARIANTS))))
  config.model.name = "gan"
  config.model.architecture = "mlp"
  config.model.latent_dim = 16
  config.model.hidden_sizes = (256, 256, 256)
  gan_base.set_gan_objective(config, variants)
  config.train.ema_decay = 0.0  # evaluate the generator as trained (the mode-collapse tables' convention)
  return config
