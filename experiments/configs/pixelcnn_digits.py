"""Gated PixelCNN on the 8x8 digits (17 grey levels, a 17-way softmax per pixel).
`--config=experiments/configs/pixelcnn_digits.py[:cpu][,metrics]`."""
from experiments.configs.base import digits_config


def get_config(arg: str | None = None):
  config, variants = digits_config(arg)
  config.model.name = "pixelcnn"
  config.model.num_levels = 17
  config.model.output = "categorical"  # or "logistic_mixture" (PixelCNN++'s output, num_components)
  config.model.channels = 128
  config.model.num_layers = 8
  config.model.kernel_size = 3
  config.model.first_kernel_size = 5
  config.model.head_channels = 256
  config.optim.learning_rate = 1e-3
  if "cpu" in variants:  # ~0.25 s per step on 2 busy CPU cores
    # 1500 training images: at 3000 steps this model overfits (test bpd 1.77 at step 1000, 2.11 at 3000).
    config.train.batch_size = 64
    config.train.num_steps = 1000
    config.train.eval_every = config.train.sample_every = config.train.save_every = 500
    config.model.channels = 48
    config.model.num_layers = 5
    config.model.head_channels = 96
  return config
