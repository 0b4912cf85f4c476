"""A ResNet energy on the 8x8 digits (dequantized to [0, 1]), maximum likelihood with persistent Langevin
chains (Du & Mordatch 2019: replay buffer, 5% resets, energy L2, spectral norm).
`--config=experiments/configs/ebm_digits.py[:cpu][,short_run][,t1]`.

Langevin here is "cold" as in the paper (step 10 on the gradient, noise 0.005: temperature
0.005^2 / 20 ~ 1e-6), the usual practice for image EBMs; test bits/dim come from the AIS estimate of
log Z (`python -m gen_jax.cli.ebm_report --workdir ...`), which samples exp(-E) itself.

`t1`: Langevin at temperature 1 (noise sqrt(2 step): step 1e-3, noise 0.0447), the proper sampler of
exp(-E), so the trained energy is the density that AIS normalises; the energy L2 drops to 1e-3 (at 1.0
it holds |E| near 0.5 nats, and a density on [0, 1]^64 that beats uniform needs tens of nats between
data and noise).

"""
import math

from experiments.configs.base import digits_config, parse_variant


def get_config(arg: str | None = None):
  config, variants = image_ebm_config(digits_config, arg, ("t1",))
  if "cpu" in variants:
    config.model.update(dict(channels=(32, 64), langevin_steps=30))
    config.train.update(dict(num_steps=2000, batch_size=64))
    config.ebm.sample_steps = 30  # unrolled too: compilation grows with the steps
  if "t1" in variants:
    config.model.update(dict(step_size=1e-3, noise_scale=math.sqrt(2e-3)))
    config.ebm.energy_l2 = 1e-3
  return config


def image_ebm_config(data_config, arg: str | None, extra_variants: tuple[str, ...] = ()):
  """(config, variants): `data_config`'s data and schedule (digits_config / mnist_config) with the
  image-EBM fields at accelerator sizes; `arg` = "[cpu][,short_run]" plus `extra_variants`; :cpu
  unrolls Langevin."""
  own = {"short_run", *extra_variants}
  variants = parse_variant(arg, ("cpu", *sorted(own)))
  config, _ = data_config(",".join(sorted(variants - own)))
  config.model.name = "ebm"
  config.model.architecture = "conv"
  config.model.channels = (64, 128)
  config.model.spectral_norm = True
  config.model.domain = (0.0, 1.0)
  config.model.langevin_steps = 60
  config.model.step_size = 10.0
  config.model.noise_scale = 0.005
  config.model.unroll_langevin = "cpu" in variants  # XLA:CPU runs convolutions in a while loop ~20x slower
  config.ebm = dict(objective="langevin", chains="persistent", buffer_size=10_000, reinit_prob=0.05,
                    energy_l2=1.0, dsm_sigma=0.1, sample_steps=200)
  config.optim.learning_rate = 1e-4
  config.optim.b1 = 0.0  # Adam without momentum, as Du & Mordatch (beta1 = 0)
  config.optim.warmup_steps = 100
  config.train.ema_decay = 0.0  # no EMA, as the README's runs (the buffer is state: an EMA would leave it alone)
  if "short_run" in variants:
    config.ebm.chains = "short_run"
  return config, variants
