"""Train state: everything a checkpoint must hold to resume a run to the same result."""
from __future__ import annotations

from typing import Any

import flax.struct
import jax
import jax.numpy as jnp
import optax

from gen_jax.train.task import merge_variables

# Written beside every run's checkpoints (checkpoint_format.json); a run whose format differs cannot be restored into
# this version's TrainState. 2: params and the carried (non-trained) state in separate slots.
CHECKPOINT_FORMAT = 2


@flax.struct.dataclass
class TrainState:
  step: jax.Array  # int32 scalar: number of optimizer steps taken
  params: Any  # what the optimizer trains
  model_state: Any  # what is carried but not trained: batch statistics, replay buffers ({} when none)
  opt_state: Any
  ema_params: Any  # exponential moving average of params (never of model_state), or None when ema_decay is 0

  @classmethod
  def create(cls, params, model_state, optimizer: optax.GradientTransformation, ema_decay: float) -> "TrainState":
    return cls(step=jnp.zeros((), jnp.int32), params=params, model_state=model_state,
               opt_state=optimizer.init(params), ema_params=params if ema_decay > 0 else None)

  @property
  def eval_variables(self):
    """The variables to evaluate and sample with: the EMA of params where kept, with the carried state."""
    return merge_variables(self.params if self.ema_params is None else self.ema_params, self.model_state)
