"""Fields every config has. A config file calls `base_config()` and sets its model, data and sizes."""
from __future__ import annotations

import ml_collections
from ml_collections import config_dict

from gen_jax.data import toy2d


def base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = "digits"
  config.data.data_dir = config_dict.placeholder(str)  # TFDS data_dir; None = TFDS default

  config.model = ml_collections.ConfigDict()

  config.optim = ml_collections.ConfigDict()
  config.optim.learning_rate = 1e-3
  config.optim.warmup_steps = 100
  config.optim.schedule = "cosine"
  config.optim.grad_clip_norm = 100.0
  config.optim.b1 = 0.9
  config.optim.b2 = 0.999
  config.optim.eps = 1e-8
  config.optim.weight_decay = 0.0

  config.train = ml_collections.ConfigDict()
  config.train.batch_size = 64
  config.train.num_steps = 10_000
  config.train.steps_per_call = 10  # optimizer steps per compiled call (lax.scan)
  config.train.log_every = 100
  config.train.eval_every = 1000
  config.train.sample_every = 1000
  config.train.save_every = 1000
  config.train.keep_checkpoints = 3
  config.train.ema_decay = 0.999  # 0 disables the EMA

  config.eval = ml_collections.ConfigDict()
  config.eval.batch_size = 500
  config.eval.num_samples = 64
  # Sample-quality metrics during training (gen_jax/eval/training_metrics.py); () = off.
  config.eval.sample_metrics = ()
  config.eval.sample_metrics_every = 1000
  config.eval.sample_metrics_num_samples = 1000
  config.eval.feature_network = "inception"
  config.eval.feature_batch_size = 100
  return config


def enable_sample_metrics(config, feature_network: str, metrics=("fid", "kid", "prdc", "is")) -> None:
  """The `:metrics` variant: sample-quality metrics at every evaluation, on 1000 samples."""
  config.eval.sample_metrics = tuple(metrics)
  config.eval.sample_metrics_every = config.train.eval_every
  config.eval.sample_metrics_num_samples = 1000
  config.eval.feature_network = feature_network


def parse_variant(arg: str | None, known: tuple[str, ...]) -> set[str]:
  """`--config=FILE.py:cpu` -> {"cpu"}; unknown variants are an error naming the known ones."""
  variants = {v for v in (arg or "").split(",") if v}
  unknown = variants - set(known)
  if unknown:
    raise ValueError(f"unknown config variant(s) {sorted(unknown)}; known: {list(known)}")
  return variants


def toy2d_config(arg: str | None) -> tuple[ml_collections.ConfigDict, set[str]]:
  """2-D toy data; `arg` = "DENSITY[,cpu]" (default eight_gaussians)."""
  densities = toy2d.NAMES
  variants = parse_variant(arg, densities + ("cpu",))
  chosen = variants & set(densities)
  if len(chosen) > 1:
    raise ValueError(f"choose one density, got {sorted(chosen)}")
  config = base_config()
  config.data.name = "toy2d/" + (chosen.pop() if chosen else "eight_gaussians")
  config.optim.warmup_steps = 200
  set_schedule(config, batch_size=512, num_steps=20_000, steps_per_call=100, log_every=500, every=5000)
  config.eval.batch_size = 2000
  config.eval.num_samples = 5000
  if "cpu" in variants:
    set_schedule(config, num_steps=5000, every=2500)
  return config, variants


def digits_config(arg: str | None) -> tuple[ml_collections.ConfigDict, set[str]]:
  """The bundled 8x8 digits (17 grey levels); `arg` = "cpu" for the small variant, "metrics" for
  FID/KID/PRDC/IS with the digits classifier (train experiments/configs/classifier_digits.py first)."""
  variants = parse_variant(arg, ("cpu", "metrics"))
  config = base_config()
  config.data.name = "digits"
  set_schedule(config, batch_size=128, num_steps=20_000, steps_per_call=50, log_every=500, every=2000)
  if "cpu" in variants:  # the small schedule (K = 1 leaves its fields free of multiples of K)
    set_schedule(config, num_steps=3000, steps_per_call=1, every=1000)
  if "metrics" in variants:
    enable_sample_metrics(config, "classifier:runs/classifier_digits")
  return config, variants


def mnist_config(arg: str | None) -> tuple[ml_collections.ConfigDict, set[str]]:
  """The MNIST split (the 10k official test images, 8000 train / 2000 test); `arg` = "cpu" for the small
  variant, "metrics" for FID/KID/PRDC/IS with the MNIST classifier (experiments/configs/classifier_mnist.py)."""
  variants = parse_variant(arg, ("cpu", "metrics"))
  config = base_config()
  config.data.name = "mnist_split"
  set_schedule(config, batch_size=64, num_steps=50_000, steps_per_call=50, log_every=500, every=5000)
  if "cpu" in variants:  # the small schedule (K = 1 leaves its fields free of multiples of K)
    set_schedule(config, batch_size=32, num_steps=1500, steps_per_call=1, every=500)
  if "metrics" in variants:
    enable_sample_metrics(config, "classifier:runs/classifier_mnist")
  return config, variants


def set_schedule(config, every: int | None = None, **train_fields) -> None:
  """Sets train fields; `every` sets eval_every, sample_every and save_every together."""
  for name, value in train_fields.items():
    config.train[name] = value
  if every is not None:
    config.train.eval_every = config.train.sample_every = config.train.save_every = every


def set_unet(config: ml_collections.ConfigDict, variants: set[str], channel_multipliers: tuple[int, ...],
             attention_resolutions: tuple[int, ...]) -> None:
  """DDPM's U-Net (`gen_jax.nn.UNet`) fields on config.model and its learning rate, the `cpu` variant's
  smaller network (shared by the diffusion and flow-matching image configs)."""
  config.model.channels = 64
  config.model.channel_multipliers = channel_multipliers
  config.model.num_res_blocks = 2
  config.model.attention_resolutions = attention_resolutions
  config.model.dropout = 0.1
  config.model.num_groups = 32
  config.optim.learning_rate = 2e-4
  if "cpu" in variants:
    config.model.channels = 32
    config.model.num_res_blocks = 1
    config.model.num_groups = 8
    config.optim.learning_rate = 1e-3
