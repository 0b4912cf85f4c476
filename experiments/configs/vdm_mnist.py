"""VDM (Kingma et al. 2021) on the MNIST split (256 levels): continuous time, learned monotone
log-SNR schedule (initial range [-5, 13.3], trained to minimise the bound's variance), trained on
the ELBO itself, a U-Net denoiser; 100-step ancestral sampling.
`--config=experiments/configs/vdm_mnist.py[:cpu][,metrics]`."""
import ml_collections

from experiments.configs import ddpm_mnist


def get_config(arg: str | None = None):
  config = ddpm_mnist.get_config(arg)
  config.model.schedule = "learned_log_snr"
  config.model.log_snr_max = 13.3
  config.model.log_snr_min = -5.0
  config.model.num_timesteps = 0
  config.loss.objective = "elbo"
  config.sampler.num_steps = 100
  return config
