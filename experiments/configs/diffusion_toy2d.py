"""A continuous-time diffusion model (VDM-style, linear log-SNR in [-8, 10], eps prediction, MLP
denoiser) on 2-D toy data. With a linear log-SNR, lambda' is constant and the "simple" loss is the
continuous-time bound's diffusion term up to a constant factor.
`--config=experiments/configs/diffusion_toy2d.py:DENSITY[,cpu]`."""
import ml_collections

from experiments.configs.base import toy2d_config


def get_config(arg: str | None = None):
  config, variants = toy2d_config(arg)
  config.model.name = "diffusion"
  config.model.denoiser = "mlp"
  config.model.hidden_sizes = (256, 256, 256)
  config.model.embedding_dim = 64
  config.model.schedule = "linear_log_snr"
  config.model.log_snr_max = 10.0
  config.model.log_snr_min = -8.0
  config.model.num_timesteps = 0
  config.model.prediction = "eps"
  config.diffusion = ml_collections.ConfigDict({"objective": "simple", "sample_steps": 200, "sample_eta": 1.0,
                                               "sampler": "ddim"})
  del variants  # the cpu variant changes only the schedule
  return config
