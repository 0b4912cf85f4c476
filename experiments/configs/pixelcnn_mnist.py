"""Gated PixelCNN on the MNIST split (28x28, 256 grey levels, a 256-way softmax per pixel).
`--config=experiments/configs/pixelcnn_mnist.py[:cpu][,metrics]`."""
from experiments.configs.base import mnist_config


def get_config(arg: str | None = None):
  config, variants = mnist_config(arg)
  config.model.name = "pixelcnn"
  config.model.num_levels = 256
  config.model.output = "categorical"  # or "logistic_mixture" (PixelCNN++'s output, num_components)
  config.model.channels = 128
  config.model.num_layers = 12
  config.model.kernel_size = 3
  config.model.first_kernel_size = 7
  config.model.head_channels = 512
  if "cpu" in variants:  # ~1.2 s per step (batch 32) on 2 busy CPU cores: 1000 steps in ~20 min
    config.model.channels = 32
    config.model.num_layers = 5
    config.model.head_channels = 64
    config.train.num_steps = 1000
    config.train.eval_every = config.train.sample_every = config.train.save_every = 500
    config.eval.num_samples = 16  # a sample is 784 passes of the network
  return config
