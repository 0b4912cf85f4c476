"""Neural Spline Flow (rational-quadratic spline couplings) on 2-D toy data. `--config=experiments/configs/nsf_toy2d.py:DENSITY[,cpu]`."""
from experiments.configs.base import toy2d_config


def get_config(arg: str | None = None):
  config, variants = toy2d_config(arg)
  config.model.name = "nsf"
  config.model.num_layers = 8
  config.model.num_bins = 16
  config.model.bound = 5.0
  config.model.hidden = 128
  config.model.depth = 2
  del variants  # the cpu variant changes only the schedule
  return config
