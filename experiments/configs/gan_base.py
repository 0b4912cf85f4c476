"""GAN objective variants shared by the GAN configs: `ns` (non-saturating, Adam(2e-4, 0.5, 0.999) as
DCGAN), `minimax`, `wgan_gp` (Wasserstein + gradient penalty 10, 5 critic steps per generator step,
Adam(1e-4, 0, 0.9) as Gulrajani et al. 2017), `hinge_sn` (hinge loss + spectral norm in D,
Adam(2e-4, 0, 0.9) as Miyato et al. 2018)."""
import ml_collections

from experiments.configs.base import parse_variant

LOSS_VARIANTS = ("ns", "minimax", "wgan_gp", "hinge_sn")


def set_gan_objective(config: ml_collections.ConfigDict, variants: set[str]) -> None:
  chosen = variants & set(LOSS_VARIANTS)
  if len(chosen) > 1:
    raise ValueError(f"choose one GAN objective, got {sorted(chosen)}")
  name = chosen.pop() if chosen else "ns"
  config.gan_variant = name
  config.gan = ml_collections.ConfigDict({"loss": "non_saturating", "n_critic": 1, "gradient_penalty": 0.0,
                                          "r1_penalty": 0.0})
  # Each player has its own learning rate; constant, no warm-up, no clipping (as DCGAN, WGAN-GP, SNGAN).
  del config.optim.learning_rate
  config.optim.update(generator_learning_rate=2e-4, discriminator_learning_rate=2e-4, b1=0.5, b2=0.999,
                      warmup_steps=0, schedule="constant", grad_clip_norm=0.0)
  config.model.spectral_norm = False
  if name == "minimax":
    config.gan.loss = "minimax"
  elif name == "wgan_gp":
    config.gan.update(loss="wasserstein", n_critic=5, gradient_penalty=10.0)
    config.optim.update(generator_learning_rate=1e-4, discriminator_learning_rate=1e-4, b1=0.0, b2=0.9)
    config.model.discriminator_norm = "layer"  # no BatchNorm in a gradient-penalised critic (WGAN-GP)
  elif name == "hinge_sn":
    config.gan.loss = "hinge"
    config.model.spectral_norm = True
    config.model.discriminator_norm = "none"  # SNGAN's DCGAN-style D: spectral norm only, no BatchNorm
    config.optim.update(b1=0.0, b2=0.9)


def image_gan_config(data_config, arg: str | None, latent_dim: int) -> ml_collections.ConfigDict:
  """A DCGAN on an image data config (`digits_config` / `mnist_config`), the objective by variant."""
  variants = parse_variant(arg, ("cpu", "metrics") + LOSS_VARIANTS)
  config, _ = data_config(",".join(sorted(variants - set(LOSS_VARIANTS))))
  config.model.name = "gan"
  config.model.architecture = "dcgan"
  config.model.latent_dim = latent_dim
  config.model.channels = 64
  config.model.discriminator_norm = "batch"
  set_gan_objective(config, variants)
  if "cpu" in variants:
    config.model.channels = 32
  equal_generator_updates(config)
  return config


def equal_generator_updates(config: ml_collections.ConfigDict) -> None:
  """Scales the schedule by n_critic, so every objective gets the config's number of generator updates
  (a train step is one discriminator update); log windows hold whole generator updates."""
  n = config.gan.n_critic
  t = config.train
  t.update(num_steps=t.num_steps * n, eval_every=t.eval_every * n, sample_every=t.sample_every * n,
           save_every=t.save_every * n, log_every=t.log_every * n)
