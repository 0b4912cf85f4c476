"""DDPM (Ho et al. 2020) on the MNIST split (256 levels): linear betas, T = 1000, eps prediction,
L_simple, a U-Net with attention at 7x7; ancestral sampling over all 1000 states.
`--config=experiments/configs/ddpm_mnist.py[:cpu][,metrics]`."""
import ml_collections

from experiments.configs.base import mnist_config


def get_config(arg: str | None = None):
  config, variants = mnist_config(arg)
  config.model.name = "diffusion"
  config.model.num_levels = 256
  config.model.denoiser = "unet"
  config.model.channels = 64
  config.model.channel_multipliers = (1, 2, 2)
  config.model.num_res_blocks = 2
  config.model.attention_resolutions = (7,)
  config.model.dropout = 0.1
  config.model.num_groups = 32
  config.model.schedule = "linear_betas"
  config.model.num_timesteps = 1000
  config.model.prediction = "eps"
  config.optim.learning_rate = 2e-4
  config.loss = ml_collections.ConfigDict({"objective": "simple"})
  config.sampler = ml_collections.ConfigDict({"num_steps": None, "eta": 1.0})  # None: all 999 steps
  if "cpu" in variants:
    config.model.channels = 32
    config.model.num_res_blocks = 1
    config.model.num_groups = 8
    config.optim.learning_rate = 1e-3
  return config
