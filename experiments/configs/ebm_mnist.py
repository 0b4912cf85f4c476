"""A ResNet energy on the MNIST split (28x28, 256 levels, dequantized to [0, 1]), maximum likelihood with
persistent Langevin chains (Du & Mordatch 2019), the digits recipe (`ebm_digits.py`) at 28x28.
`--config=experiments/configs/ebm_mnist.py[:cpu][,short_run]`.

Accelerator defaults: channels (64, 128), 60 cold Langevin steps (step 10, noise 0.005), batch 64, 50k
steps. :cpu: channels (16, 32), 20 unrolled steps, batch 32, 600 steps (10 min on 2 busy cores).
Test bits/dim: `python -m gen_jax.cli.ebm_report --workdir ...` (AIS estimate of log Z).
"""
from experiments.configs.base import mnist_config
from experiments.configs.ebm_digits import image_ebm_config


def get_config(arg: str | None = None):
  config, variants = image_ebm_config(mnist_config, arg)
  if "cpu" in variants:
    config.model.update(dict(channels=(16, 32), langevin_steps=20))
    config.ebm.update(dict(sample_steps=20, buffer_size=2000))
    config.train.update(dict(num_steps=600, eval_every=300, sample_every=300, save_every=300, log_every=50))
    config.optim.warmup_steps = 50
  return config
