"""Fields every config has. A config file calls `base_config()` and sets its model, data and sizes."""
from __future__ import annotations

import ml_collections
from ml_collections import config_dict


def base_config() -> ml_collections.ConfigDict:
  config = ml_collections.ConfigDict()
  config.seed = 0

  config.data = ml_collections.ConfigDict()
  config.data.name = "digits"
  config.data.data_dir = config_dict.placeholder(str)  # TFDS data_dir; None = TFDS default
  config.data.dequantization = "uniform"  # or "variational"

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
  return config


def parse_variant(arg: str | None, known: tuple[str, ...]) -> set[str]:
  """`--config=FILE.py:cpu` -> {"cpu"}; unknown variants are an error naming the known ones."""
  variants = {v for v in (arg or "").split(",") if v}
  unknown = variants - set(known)
  if unknown:
    raise ValueError(f"unknown config variant(s) {sorted(unknown)}; known: {list(known)}")
  return variants
