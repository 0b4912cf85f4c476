"""The compiled, data-parallel train step, running K optimizer steps per call with `lax.scan`.

Every task goes through the same step: its update rule (`Task.update`) on (params, state, opt_state),
then the EMA of the trained params (a task with one objective builds its rule with
`gen_jax.train.task.gradient_update`).
Running several steps per compiled call (as vdm and score_sde do) keeps small models from being bound
by Python dispatch. Each step's randomness is `fold_in(key, step)`, so resuming a run or changing the
number of devices cannot change the random stream.
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp
from jax.sharding import Mesh

from gen_jax.train import sharding
from gen_jax.train.state import TrainState
from gen_jax.train.task import Task


def ema_update(ema, params, decay: float, step: jax.Array):
  """ema <- d * ema + (1 - d) * params with d = min(decay, (1 + step) / (10 + step)).

  The warm-up of d (as in TensorFlow's ExponentialMovingAverage with num_updates) keeps the average
  from remembering the initial params for ~1 / (1 - decay) steps.
  """
  d = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
  return jax.tree.map(lambda e, p: d * e + (1.0 - d) * p, ema, params)


def train_step(state: TrainState, batch: jax.Array, key: jax.Array, *, task: Task, ema_decay: float):
  """One optimizer step on one global batch; returns the new state and scalar metrics."""
  rng = jax.random.fold_in(key, state.step)
  params, model_state, opt_state, loss, metrics = task.update(state.params, state.model_state, state.opt_state,
                                                              batch, rng, state.step)
  if jax.tree.structure(model_state) != jax.tree.structure(state.model_state):
    raise ValueError("the task's update rule must return the state with its structure unchanged: got "
                     f"{jax.tree.structure(model_state)}, expected {jax.tree.structure(state.model_state)}")
  ema = None if state.ema_params is None else ema_update(state.ema_params, params, ema_decay, state.step)
  metrics = {**metrics, "loss": loss}
  return TrainState(step=state.step + 1, params=params, model_state=model_state, opt_state=opt_state,
                    ema_params=ema), metrics


def make_train_steps(task: Task, ema_decay: float, mesh: Mesh, state_sharding) -> Callable:
  """Returns `steps(state, batches [K, B, ...], key) -> (state, metrics [K])`, jitted over the mesh.

  `batches` is an array or a pytree of arrays (a batch with labels), each with leading axes [K, B].

  The state's buffers are donated; the batch is sharded on its example axis (axis 1).
  """
  def steps(state, batches, key):
    body = lambda s, b: train_step(s, b, key, task=task, ema_decay=ema_decay)
    if jax.tree.leaves(batches)[0].shape[0] == 1:
      # No loop for a single step: XLA:CPU runs convolutions inside a while loop (scan) about 8x
      # slower than the same step outside one (measured on Glow, jax 0.10), so conv models on CPU
      # use steps_per_call = 1; MLP models and accelerators gain from K > 1.
      state, metrics = body(state, jax.tree.map(lambda b: b[0], batches))
      return state, jax.tree.map(lambda m: m[None], metrics)
    return jax.lax.scan(body, state, batches)

  return jax.jit(steps,
                 in_shardings=(state_sharding, sharding.batch_sharding(mesh, 1), sharding.replicated(mesh)),
                 out_shardings=(state_sharding, sharding.replicated(mesh)),
                 donate_argnums=(0,))


def make_init_state(task: Task, ema_decay: float, mesh: Mesh):
  """Returns (init_state(rng, batch) jitted to place the state replicated, its sharding)."""
  def init_state(rng, batch):
    params, model_state = task.init(rng, batch)
    return TrainState.create(params, model_state, task.optimizer, ema_decay)

  state_sharding = sharding.replicated(mesh)
  return jax.jit(init_state, in_shardings=(sharding.replicated(mesh), sharding.batch_sharding(mesh)),
                 out_shardings=state_sharding), state_sharding


def first_non_finite(values: jax.Array) -> int | None:
  """Index of the first non-finite entry of a 1-D array, or None."""
  bad = ~jnp.isfinite(values)
  return int(jnp.argmax(bad)) if bool(bad.any()) else None
