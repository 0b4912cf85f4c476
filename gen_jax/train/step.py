"""The compiled, data-parallel train step, running K optimizer steps per call (`lax.scan`).

Every task goes through the same step: its update rule (`Task.update`) on (params, state, opt_state),
then the EMA of the trained params (a task with one objective builds its rule with
`gen_jax.train.task.gradient_update`).
Running several steps per compiled call (as vdm and score_sde do) keeps small models from being bound
by Python dispatch. Each step's randomness is `fold_in(key, step)`, so resuming a run or changing the
number of devices cannot change the random stream.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
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


def _has_convolution(jaxpr) -> bool:
  """Whether a (closed) jaxpr, or one nested in it (cond, scan, pjit, custom_vjp), has a convolution."""
  jaxpr = getattr(jaxpr, "jaxpr", jaxpr)
  for eqn in jaxpr.eqns:
    if eqn.primitive.name == "conv_general_dilated":
      return True
    for value in eqn.params.values():
      for sub in value if isinstance(value, (tuple, list)) else (value,):
        if hasattr(sub, "eqns") or hasattr(getattr(sub, "jaxpr", None), "eqns"):
          if _has_convolution(sub):
            return True
  return False


def make_train_steps(task: Task, ema_decay: float, mesh: Mesh, state_sharding) -> "TrainSteps":
  """Returns `steps(state, batches [K, B, ...], key) -> (state, metrics [K])` over the mesh.

  `batches` is an array or a pytree of arrays (a batch with labels), each with leading axes [K, B].
  The state's buffers are donated; the batch is sharded on its example axis (axis 1).

  The K steps run in one compiled `lax.scan`, except on CPU when the step has a convolution: there
  they run as K calls of one compiled step (the same arithmetic, step by step). XLA:CPU (jaxlib 0.10)
  emits the gradient convolutions inside a while loop with JAX's transposed dimension labels
  (`b01f_01oi->b01f`, `f01b_i01o->01bf` in `--xla_dump_to`) as naive elemental loops, while at the top
  level it canonicalizes them onto its convolution kernels: a 3-conv train step ran 23-47x slower in a
  scan than per call. Unrolling the scan fixes the speed too but compiles K copies of the step; calling
  one compiled step K times compiles one and costs a dispatch per step, small against a convolution
  step's milliseconds.
  """
  return TrainSteps(task, ema_decay, mesh, state_sharding)


class TrainSteps:
  """`make_train_steps`'s callable; `step_by_step` says how it runs K steps (None before the first call)."""

  def __init__(self, task: Task, ema_decay: float, mesh: Mesh, state_sharding):
    self._body = lambda state, batch, key: train_step(state, batch, key, task=task, ema_decay=ema_decay)
    replicated = sharding.replicated(mesh)
    batches, out = sharding.batch_sharding(mesh, 1), (state_sharding, replicated)
    self._scanned = jax.jit(lambda state, batches, key: jax.lax.scan(
        lambda s, b: self._body(s, b, key), state, batches),
        in_shardings=(state_sharding, batches, replicated), out_shardings=out, donate_argnums=(0,))
    self._one_of = jax.jit(lambda state, batches, k, key: self._body(
        state, jax.tree.map(lambda b: jax.lax.dynamic_index_in_dim(b, k, 0, False), batches), key),
        in_shardings=(state_sharding, batches, replicated, replicated), out_shardings=out, donate_argnums=(0,))
    self._on_cpu = mesh.devices.flat[0].platform == "cpu"
    self.step_by_step: bool | None = None

  def __call__(self, state: TrainState, batches, key: jax.Array):
    if self.step_by_step is None:
      like = lambda a, lead=0: jax.ShapeDtypeStruct(a.shape[lead:], a.dtype)
      self.step_by_step = self._on_cpu and _has_convolution(jax.make_jaxpr(self._body)(
          jax.tree.map(like, state), jax.tree.map(lambda b: like(b, 1), batches), like(key)))
    num = jax.tree.leaves(batches)[0].shape[0]
    if num > 1 and not self.step_by_step:
      return self._scanned(state, batches, key)
    per_step = []
    for k in range(num):
      state, metrics = self._one_of(state, batches, np.int32(k), key)
      per_step.append(metrics)
    return state, jax.tree.map(lambda *m: jnp.stack(m), *per_step)


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
