"""Train state: everything a checkpoint must hold to resume a run to the same result."""
from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: number of optimizer steps taken
  params: Any
  opt_state: Any
  ema_params: Any  # exponential moving average of params, or None when ema_decay is 0

  @classmethod
  def create(cls, params, optimizer: optax.GradientTransformation, ema_decay: float) -> "TrainState":
    return cls(step=jnp.zeros((), jnp.int32), params=params, opt_state=optimizer.init(params),
               ema_params=params if ema_decay > 0 else None)

  @property
  def eval_params(self):
    """The params to evaluate and sample with: the EMA where kept."""
    return self.params if self.ema_params is None else self.ema_params
