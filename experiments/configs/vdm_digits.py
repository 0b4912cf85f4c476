"""VDM (Kingma et al. 2021) on the 8x8 digits (17 levels): continuous time, learned monotone
log-SNR schedule (initial range [-5, 13.3], its shape trained to minimise the bound's variance),
trained on the ELBO itself, DDPM's U-Net as the denoiser; 100-step ancestral sampling.
`--config=experiments/configs/vdm_digits.py[:cpu][,metrics]`."""
import ml_collections

from experiments.configs import ddpm_digits


def to_vdm(config: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
  """A DDPM config turned into VDM's objective and schedule (shared by vdm_digits and vdm_mnist)."""
  config.model.schedule = "learned_log_snr"
  config.model.log_snr_max = 13.3
  config.model.log_snr_min = -5.0
  config.model.num_timesteps = 0
  config.loss.objective = "elbo"
  config.sampler.num_steps = 100
  return config


def get_config(arg: str | None = None):
  return to_vdm(ddpm_digits.get_config(arg))
