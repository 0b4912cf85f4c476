"""EDM (Karras et al. 2022) on the MNIST split (256 levels), as edm_digits: DDPM's U-Net (28 -> 14 -> 7)
under EDM's preconditioning and loss, 18 Heun steps.
`--config=experiments/configs/edm_mnist.py[:cpu][,metrics][,conditional]`."""
from experiments.configs.base import mnist_config
from experiments.configs.ddpm_digits import diffusion_data_config, set_ddpm
from experiments.configs.edm_digits import to_edm


def get_config(arg: str | None = None):
  config, variants = diffusion_data_config(mnist_config, arg)
  set_ddpm(config, variants, channel_multipliers=(1, 2, 2), attention_resolutions=(7,))
  return to_edm(config)
