"""MADE density (Gaussian-mixture conditionals) on 2-D toy data. `--config=experiments/configs/made_toy2d.py:DENSITY[,cpu]`."""
from experiments.configs.base import toy2d_config


def get_config(arg: str | None = None):
  config, variants = toy2d_config(arg)
  config.model.name = "made"
  config.model.hidden_sizes = (128, 128)
  config.model.num_components = 10
  del variants  # the cpu variant changes only the schedule
  return config
