"""Gated PixelCNN on the MNIST split (28x28, 256 grey levels, a 256-way softmax per pixel).
`--config=experiments/configs/pixelcnn_mnist.py[:cpu][,metrics]`."""
from experiments.configs.base import mnist_config


def get_config(arg: str | None = None):
  config, variants = mnist_config(arg)
  # output: "categorical", or "logistic_mixture" (PixelCNN++'s output, with num_components).
  config.model.update(dict(name="pixelcnn", output="categorical", channels=128, num_layers=12,
                           kernel_size=3, first_kernel_size=7, head_channels=512))
  if "cpu" in variants:  # ~1.2-1.8 s per step (batch 32) on 2 busy CPU cores: 1000 steps in 20-30 min
    config.model.update(dict(channels=32, num_layers=5, head_channels=64))
    config.train.update(dict(num_steps=1000, eval_every=500, sample_every=500, save_every=500))
    config.eval.num_samples = 16  # a sample is 784 passes of the network (on windows of 8 rows)
  return config
