"""Multi-scale RealNVP on the 8x8 digits (17 grey levels). `--config=experiments/configs/realnvp_digits.py[:cpu]`."""
from experiments.configs.base import digits_config


def get_config(arg: str | None = None):
  config, variants = digits_config(arg)
  config.model.name = "realnvp"
  config.model.num_scales = 2
  config.model.num_couplings_per_scale = 3
  config.model.hidden = 64
  config.model.depth = 2
  if "cpu" in variants:
    config.model.hidden = 32
    config.model.depth = 1
  return config
