"""Gated PixelCNN on the 8x8 digits (17 grey levels, a 17-way softmax per pixel).
`--config=experiments/configs/pixelcnn_digits.py[:cpu][,metrics]`."""
from experiments.configs.base import digits_config


def get_config(arg: str | None = None):
  config, variants = digits_config(arg)
  # output: "categorical", or "logistic_mixture" (PixelCNN++'s output, with num_components).
  config.model.update(dict(name="pixelcnn", output="categorical", channels=128, num_layers=8,
                           kernel_size=3, first_kernel_size=5, head_channels=256))
  if "cpu" in variants:  # ~0.25 s per step (batch 64) on 2 busy CPU cores: 1000 steps in ~3-5 min
    # 1500 training images: at 3000 steps this model overfits (test bpd 1.77 at step 1000, 2.11 at 3000).
    config.model.update(dict(channels=48, num_layers=5, head_channels=96))
    config.train.update(dict(batch_size=64, num_steps=1000, eval_every=500, sample_every=500, save_every=500))
  return config
