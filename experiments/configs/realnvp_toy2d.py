"""RealNVP (8 affine couplings) on 2-D toy data. `--config=experiments/configs/realnvp_toy2d.py:DENSITY[,cpu]`."""
from experiments.configs.base import toy2d_config


def get_config(arg: str | None = None):
  config, variants = toy2d_config(arg)
  config.model.name = "realnvp"
  config.model.num_couplings = 8
  config.model.hidden = 128
  config.model.depth = 2
  del variants  # the cpu variant changes only the schedule
  return config
