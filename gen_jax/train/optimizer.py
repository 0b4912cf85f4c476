"""Optimizers from config.optim: Adam(W) with linear warm-up, constant or cosine decay, global-norm clipping.

Every field of `config.optim` acts (`OPTIM_FIELDS`); a field this module does not know is an error
(`check_optim_fields`). A task declares its optimizer with `make_optimizer`; players with their own
optimizers (a GAN's generator and discriminator) each get one, with their own learning rate, and are
combined by `players`.
"""
from __future__ import annotations

from typing import Mapping

import ml_collections
import optax

# Every field make_optimizer reads; a family may add learning rates of its own (a GAN's players).
OPTIM_FIELDS = ("learning_rate", "warmup_steps", "schedule", "grad_clip_norm", "b1", "b2", "eps", "weight_decay")


def check_optim_fields(config: ml_collections.ConfigDict, known=OPTIM_FIELDS) -> None:
  """Raises when config.optim holds a field nobody reads: it would silently do nothing."""
  unknown = sorted(set(config.keys()) - set(known))
  if unknown:
    raise ValueError(f"unknown config.optim field(s) {unknown}: this task's optimizer reads {sorted(known)}")


def learning_rate_schedule(config: ml_collections.ConfigDict, num_steps: int,
                           learning_rate: float | None = None) -> optax.Schedule:
  """Linear warmup from 0 to the learning rate over `warmup_steps`, then constant or cosine to `num_steps`."""
  peak = config.learning_rate if learning_rate is None else learning_rate
  if peak <= 0:
    raise ValueError(f"the learning rate must be positive, got {peak}")
  if config.warmup_steps < 0:
    raise ValueError(f"optim.warmup_steps must be >= 0, got {config.warmup_steps}")
  warmup = optax.linear_schedule(0.0, peak, max(config.warmup_steps, 1))
  if config.schedule == "constant":
    after = optax.constant_schedule(peak)
  elif config.schedule == "cosine":
    after = optax.cosine_decay_schedule(peak, max(num_steps - config.warmup_steps, 1))
  else:
    raise ValueError(f"optim.schedule must be 'constant' or 'cosine', got {config.schedule!r}")
  return optax.join_schedules([warmup, after], [config.warmup_steps])


def make_optimizer(config: ml_collections.ConfigDict, num_steps: int,
                   learning_rate: float | None = None) -> optax.GradientTransformation:
  """config.optim -> clip_by_global_norm (if grad_clip_norm > 0) then AdamW; `learning_rate` replaces
  config.learning_rate (a player's own rate: the caller then checks the fields it reads)."""
  if learning_rate is None:
    check_optim_fields(config)
  schedule = learning_rate_schedule(config, num_steps, learning_rate)
  if config.grad_clip_norm < 0 or config.weight_decay < 0:
    raise ValueError(f"optim.grad_clip_norm and optim.weight_decay must be >= 0, got {config.grad_clip_norm}, "
                     f"{config.weight_decay}")
  parts = []
  if config.grad_clip_norm:
    parts.append(optax.clip_by_global_norm(config.grad_clip_norm))
  parts.append(optax.adamw(schedule, b1=config.b1, b2=config.b2, eps=config.eps,
                           weight_decay=config.weight_decay))
  return optax.chain(*parts)


def player_params(params, name: str):
  """Player `name`'s trained params: params["model"]["params"][name] (a flax module with a submodule
  per player)."""
  return params["model"]["params"][name]


def with_player_params(params, name: str, value):
  """params with player `name`'s subtree replaced by `value`."""
  model = dict(params["model"])
  model["params"] = {**model["params"], name: value}
  return {**params, "model": model}


def players(optimizers: Mapping[str, optax.GradientTransformation]) -> optax.GradientTransformation:
  """One optimizer per player (`player_params`); the state is {player: its optimizer's state}.

  `update` steps every player at once on its part of the gradient; a task that steps them in turn
  (a GAN's alternating step) calls `optimizers[name].update` on `player_params(...)` itself, with the
  same state layout.
  """
  def init(params):
    return {name: tx.init(player_params(params, name)) for name, tx in optimizers.items()}

  def update(grads, state, params=None):
    new_state, updates = {}, grads
    for name, tx in optimizers.items():
      player_updates, new_state[name] = tx.update(player_params(grads, name), state[name],
                                                  None if params is None else player_params(params, name))
      updates = with_player_params(updates, name, player_updates)
    return updates, new_state

  return optax.GradientTransformation(init, update)

