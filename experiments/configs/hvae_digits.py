"""A two-layer hierarchical VAE (top-down inference, NVAE-style residual posteriors; latents 2x2 and
4x4) on the 8x8 digits, discretized-logistic decoder. KL warm-up matters: without it both layers
collapsed in a trial run. `--config=experiments/configs/hvae_digits.py[:cpu][,metrics]`."""
import ml_collections

from experiments.configs.base import digits_config


def get_config(arg: str | None = None):
  config, variants = digits_config(arg)
  config.model.name = "hvae"
  config.model.likelihood = "discretized_logistic"
  config.model.num_latent_layers = 2
  config.model.latent_channels = 8
  config.model.hidden_channels = 64
  config.model.num_blocks = 2
  config.vae = ml_collections.ConfigDict({"beta": 1.0, "kl_warmup_steps": 5000})
  if "cpu" in variants:
    config.model.hidden_channels = 64
    config.model.num_blocks = 1
    config.vae.kl_warmup_steps = 1500
  return config
