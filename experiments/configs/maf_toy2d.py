"""MAF (masked autoregressive affine layers) on 2-D toy data. `--config=experiments/configs/maf_toy2d.py:DENSITY[,cpu]`."""
from experiments.configs.base import toy2d_config


def get_config(arg: str | None = None):
  config, variants = toy2d_config(arg)
  config.model.name = "maf"
  config.model.num_layers = 8
  config.model.hidden_sizes = (128, 128)
  del variants  # the cpu variant changes only the schedule
  return config
