"""DDPM (Ho et al. 2020) on the MNIST split (256 levels): linear betas, T = 1000, eps prediction,
L_simple, a U-Net (28 -> 14 -> 7) with attention at 7x7; ancestral sampling over all 1000 states.
`--config=experiments/configs/ddpm_mnist.py[:cpu][,metrics][,conditional]`."""
from experiments.configs.base import mnist_config
from experiments.configs.ddpm_digits import diffusion_data_config, set_ddpm


def get_config(arg: str | None = None):
  config, variants = diffusion_data_config(mnist_config, arg)
  set_ddpm(config, variants, channel_multipliers=(1, 2, 2), attention_resolutions=(7,))
  if "cpu" in variants:  # the run's sample grids and figures from 100 of the 1000 states (DDPM's full
    config.diffusion.sample_steps = 100  # chain costs ~20 min per figure on 2 cores; score it with --set)
  return config
