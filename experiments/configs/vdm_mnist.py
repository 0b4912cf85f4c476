"""VDM (Kingma et al. 2021) on the MNIST split (256 levels), as vdm_digits.
`--config=experiments/configs/vdm_mnist.py[:cpu][,metrics]`."""
from experiments.configs import ddpm_mnist
from experiments.configs.vdm_digits import to_vdm


def get_config(arg: str | None = None):
  return to_vdm(ddpm_mnist.get_config(arg))
