"""A conv VAE on the 8x8 digits (17 grey levels), discretized-logistic decoder, so its ELBO bounds the
discrete likelihood. `--config=experiments/configs/vae_digits.py[:cpu][,metrics]`."""
import ml_collections

from experiments.configs.base import digits_config


def get_config(arg: str | None = None):
  config, variants = digits_config(arg)
  config.model.name = "vae"
  config.model.latent_dim = 16
  config.model.likelihood = "discretized_logistic"
  config.model.architecture = "conv"
  config.model.channels = (64, 128)
  config.model.num_res_blocks = 1
  config.vae = ml_collections.ConfigDict({"beta": 1.0, "kl_warmup_steps": 2000})
  if "cpu" in variants:
    config.model.channels = (32, 64)
    config.model.num_res_blocks = 0
    config.vae.kl_warmup_steps = 500
  return config
