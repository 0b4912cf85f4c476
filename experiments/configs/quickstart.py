"""The quick start: Glow on the bundled 8x8 digits, a sensible result in under 3 minutes on 2 CPU cores."""
from experiments.configs import glow_digits


def get_config(arg: str | None = None):
  config = glow_digits.get_config("cpu")
  del arg
  config.train.num_steps = 2000
  config.train.eval_every = config.train.sample_every = config.train.save_every = 500
  return config
