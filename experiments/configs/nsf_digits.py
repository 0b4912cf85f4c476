"""Multi-scale Neural Spline Flow on the 8x8 digits (17 grey levels). `--config=experiments/configs/nsf_digits.py[:cpu]`."""
from experiments.configs.base import digits_config


def get_config(arg: str | None = None):
  config, variants = digits_config(arg)
  config.model.name = "nsf"
  config.model.num_scales = 2
  config.model.num_layers = 4
  config.model.num_bins = 8
  config.model.hidden = 64
  config.model.depth = 1
  if "cpu" in variants:
    config.model.hidden = 32
  return config
