"""Neural Spline Flow (rational-quadratic spline couplings) on 2-D toy data. `--config=experiments/configs/nsf_toy2d.py:DENSITY[,cpu]`; DENSITY is one of
two_moons, eight_gaussians, checkerboard, rings, swiss_roll, pinwheel (default eight_gaussians)."""
from experiments.configs.base import base_config, parse_variant

DENSITIES = ("two_moons", "eight_gaussians", "checkerboard", "rings", "swiss_roll", "pinwheel")


def get_config(arg: str | None = None):
  variants = parse_variant(arg, DENSITIES + ("cpu",))
  densities = variants & set(DENSITIES)
  config = base_config()
  config.data.name = "toy2d/" + (densities.pop() if densities else "eight_gaussians")
  config.model.name = "nsf"
  config.model.num_layers = 8
  config.model.num_bins = 16
  config.model.bound = 5.0
  config.model.hidden = 128
  config.model.depth = 2
  config.optim.learning_rate = 1e-3
  config.optim.warmup_steps = 200
  config.train.batch_size = 512
  config.train.num_steps = 20_000
  config.train.steps_per_call = 100
  config.train.log_every = 500
  config.train.eval_every = 5000
  config.train.sample_every = 5000
  config.train.save_every = 5000
  config.train.ema_decay = 0.999
  config.eval.batch_size = 2000
  config.eval.num_samples = 5000
  if "cpu" in variants:
    config.train.num_steps = 5000
    config.train.eval_every = config.train.sample_every = config.train.save_every = 2500
  return config
