"""Multi-scale RealNVP on the MNIST split (the 10k official test images, 8000/2000). `--config=experiments/configs/realnvp_mnist.py[:cpu]`."""
from experiments.configs.base import base_config, parse_variant


def get_config(arg: str | None = None):
  variants = parse_variant(arg, ("cpu",))
  config = base_config()
  config.data.name = "mnist_split"
  config.model.name = "realnvp"
  config.model.num_scales = 2
  config.model.num_couplings_per_scale = 3
  config.model.hidden = 64
  config.model.depth = 4
  config.train.batch_size = 64
  config.train.num_steps = 50_000
  config.train.steps_per_call = 50
  config.train.log_every = 500
  config.train.eval_every = 5000
  config.train.sample_every = 5000
  config.train.save_every = 5000
  if "cpu" in variants:
    config.model.hidden = 32
    config.model.depth = 2
    config.train.num_steps = 3000
    config.train.eval_every = config.train.sample_every = config.train.save_every = 1000
  return config
