"""An MLP GAN on 2-D mixtures (eight_gaussians, grid25), for the mode-collapse measures.
`--config=experiments/configs/gan_toy2d.py:DENSITY[,cpu][,ns|minimax|wgan_gp|hinge_sn]`."""
from experiments.configs import gan_base
from experiments.configs.base import parse_variant, set_schedule, toy2d_config
from gen_jax.data import toy2d


def get_config(arg: str | None = None):
  variants = parse_variant(arg, toy2d.NAMES + ("cpu",) + gan_base.LOSS_VARIANTS)
  config, _ = toy2d_config(",".join(sorted(variants - set(gan_base.LOSS_VARIANTS))))
  config.model.name = "gan"
  config.model.architecture = "mlp"
  config.model.latent_dim = 2
  config.model.hidden_sizes = (128, 128, 128)
  gan_base.set_gan_objective(config, variants)
  # The 2-D problem: small batches and a larger step than the image GANs' (notebooks/gan.ipynb: at
  # latent 16, batch 512, lr 2e-4 and 5000 steps the non-saturating GAN still drew lines between modes
  # and put 6% of its samples near one; at these settings it reaches 20 of 25 modes and ~75%).
  config.train.batch_size = 64
  config.optim.update(generator_learning_rate=1e-3, discriminator_learning_rate=1e-3)
  generator_steps = 10_000 if "cpu" in variants else 20_000
  set_schedule(config, num_steps=generator_steps, every=generator_steps // 2)
  gan_base.equal_generator_updates(config)
  if config.gan.loss == "wasserstein":
    # Gulrajani et al.'s own toy-data code uses lambda = 0.1, not the images' 10; on grid25 at 10 the
    # critic stays weak and the generator spreads over the plane (8 of 25 modes, 0.5% high quality).
    config.gan.gradient_penalty = 0.1
  config.train.ema_decay = 0.0  # evaluate the generator as trained (the mode-collapse tables' convention)
  return config
