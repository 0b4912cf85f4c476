"""Multi-scale Neural Spline Flow on the MNIST split (the 10k official test images, 8000/2000). `--config=experiments/configs/nsf_mnist.py[:cpu]`."""
from experiments.configs.base import mnist_config


def get_config(arg: str | None = None):
  config, variants = mnist_config(arg)
  config.model.name = "nsf"
  config.model.num_scales = 2
  config.model.num_layers = 8
  config.model.num_bins = 8
  config.model.hidden = 128
  config.model.depth = 2
  if "cpu" in variants:
    config.model.num_layers = 4
    config.model.hidden = 32
    config.model.depth = 1
  return config
