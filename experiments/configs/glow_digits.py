"""Glow (L=2, K=8) on the 8x8 digits (17 grey levels). `--config=experiments/configs/glow_digits.py[:cpu]`."""
from experiments.configs.base import digits_config


def get_config(arg: str | None = None):
  config, variants = digits_config(arg)
  config.model.name = "glow"
  config.model.num_scales = 2
  config.model.num_steps = 8
  config.model.hidden_channels = 64
  if "cpu" in variants:
    config.model.num_steps = 4
    config.model.hidden_channels = 32
  return config
