"""Multi-scale RealNVP on the MNIST split (the 10k official test images, 8000/2000). `--config=experiments/configs/realnvp_mnist.py[:cpu]`."""
from experiments.configs.base import mnist_config


def get_config(arg: str | None = None):
  config, variants = mnist_config(arg)
  config.model.name = "realnvp"
  config.model.num_scales = 2
  config.model.num_couplings_per_scale = 3
  config.model.hidden = 64
  config.model.depth = 4
  if "cpu" in variants:
    config.model.hidden = 32
    config.model.depth = 1
  return config
