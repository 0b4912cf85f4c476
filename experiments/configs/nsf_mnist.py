"""Multi-scale Neural Spline Flow on the MNIST split (the 10k official test images, 8000/2000). `--config=experiments/configs/nsf_mnist.py[:cpu]`."""
from experiments.configs.base import base_config, parse_variant


def get_config(arg: str | None = None):
  variants = parse_variant(arg, ("cpu",))
  config = base_config()
  config.data.name = "mnist_split"
  config.model.name = "nsf"
  config.model.num_levels = 2
  config.model.num_layers = 8
  config.model.num_bins = 8
  config.model.hidden = 128
  config.model.depth = 2
  config.train.batch_size = 64
  config.train.num_steps = 50_000
  config.train.steps_per_call = 50
  config.train.log_every = 500
  config.train.eval_every = 5000
  config.train.sample_every = 5000
  config.train.save_every = 5000
  if "cpu" in variants:
    config.model.num_layers = 4
    config.model.hidden = 32
    config.model.depth = 1
    config.train.num_steps = 3000
    config.train.eval_every = config.train.sample_every = config.train.save_every = 1000
  return config
