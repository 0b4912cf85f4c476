"""EDM (Karras et al. 2022, "Elucidating the Design Space of Diffusion-Based Generative Models") on the
8x8 digits (17 levels): DDPM's U-Net under EDM's preconditioning (prediction "edm", sigma_data 0.5),
trained on EDM's loss (ln sigma ~ N(-1.2, 1.2^2), weight (sigma^2 + sigma_d^2) / (sigma sigma_d)^2),
sampled by EDM's Heun sampler on its rho = 7 noise levels from sigma_max = 80 to sigma_min = 0.002
(log-SNR -2 ln sigma: 12.43 ... -8.76), 18 steps (35 network evaluations, EDM's CIFAR-10 setting).
`--config=experiments/configs/edm_digits.py[:cpu][,metrics][,conditional]`."""
import math

import ml_collections

from experiments.configs.base import digits_config
from experiments.configs.ddpm_digits import diffusion_data_config, set_ddpm

SIGMA_MIN, SIGMA_MAX = 0.002, 80.0


def to_edm(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A DDPM config turned into EDM's parameterization, objective and sampler (edm_digits, edm_mnist)."""
  config.model.prediction = "edm"
  config.model.sigma_data = 0.5
  config.model.schedule = "edm_log_snr"
  config.model.log_snr_max = -2 * math.log(SIGMA_MIN)
  config.model.log_snr_min = -2 * math.log(SIGMA_MAX)
  config.model.num_timesteps = 0
  config.diffusion.objective = "edm"
  config.diffusion.log_sigma_mean = -1.2
  config.diffusion.log_sigma_std = 1.2
  config.diffusion.sampler = "edm_heun"
  config.diffusion.sample_steps = 18
  config.diffusion.sample_eta = None
  return config


def get_config(arg: str | None = None):
  config, variants = diffusion_data_config(digits_config, arg)
  set_ddpm(config, variants, channel_multipliers=(1, 2), attention_resolutions=(4,))
  return to_edm(config)
