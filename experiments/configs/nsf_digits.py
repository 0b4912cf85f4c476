"""Multi-scale Neural Spline Flow on the 8x8 digits (17 grey levels). `--config=experiments/configs/nsf_digits.py[:cpu]`."""
from experiments.configs.base import base_config, parse_variant


def get_config(arg: str | None = None):
  variants = parse_variant(arg, ("cpu",))
  config = base_config()
  config.data.name = "digits"
  config.model.name = "nsf"
  config.model.num_levels = 2
  config.model.num_layers = 4
  config.model.num_bins = 8
  config.model.hidden = 64
  config.model.depth = 1
  config.train.batch_size = 128
  config.train.num_steps = 20_000
  config.train.steps_per_call = 50
  config.train.log_every = 500
  config.train.eval_every = 2000
  config.train.sample_every = 2000
  config.train.save_every = 2000
  if "cpu" in variants:
    config.model.hidden = 32
    config.train.num_steps = 4000
  return config
