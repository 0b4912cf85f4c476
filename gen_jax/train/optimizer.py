"""Optimizer from config: Adam(W) with linear warmup, optional cosine decay and global-norm clipping."""
from __future__ import annotations

import ml_collections
import optax


def learning_rate_schedule(config: ml_collections.ConfigDict, num_steps: int) -> optax.Schedule:
  """Linear warmup from 0 to `config.learning_rate` over `warmup_steps`, then constant or cosine."""
  warmup = optax.linear_schedule(0.0, config.learning_rate, max(config.warmup_steps, 1))
  if config.schedule == "constant":
    after = optax.constant_schedule(config.learning_rate)
  elif config.schedule == "cosine":
    after = optax.cosine_decay_schedule(config.learning_rate, max(num_steps - config.warmup_steps, 1))
  else:
    raise ValueError(f"optim.schedule must be 'constant' or 'cosine', got {config.schedule!r}")
  return optax.join_schedules([warmup, after], [config.warmup_steps])


def make_optimizer(config: ml_collections.ConfigDict, num_steps: int) -> optax.GradientTransformation:
  schedule = learning_rate_schedule(config, num_steps)
  parts = []
  if config.grad_clip_norm:
    parts.append(optax.clip_by_global_norm(config.grad_clip_norm))
  parts.append(optax.adamw(schedule, b1=config.b1, b2=config.b2, eps=config.eps,
                           weight_decay=config.weight_decay))
  return optax.chain(*parts)
