"""Glow (L=2, K=16) on the MNIST split (the 10k official test images, 8000/2000). `--config=experiments/configs/glow_mnist.py[:cpu]`."""
from experiments.configs.base import mnist_config


def get_config(arg: str | None = None):
  config, variants = mnist_config(arg)
  config.model.name = "glow"
  config.model.num_scales = 2
  config.model.num_steps = 16
  config.model.hidden_channels = 256
  if "cpu" in variants:
    config.model.num_steps = 4
    config.model.hidden_channels = 64
  return config
