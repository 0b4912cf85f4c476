"""`load_run(workdir)`: a finished (or running) training run, ready to sample, score or plot in a notebook.

    run = gen_jax.load_run("runs/quickstart")
    log_p = run.model.apply(run.params, x, method=run.model.log_prob)
    x = run.model.apply(run.params, jax.random.key(0), 16, method=run.model.sample)
"""
from __future__ import annotations

import dataclasses
import json
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gen_jax import models
from gen_jax.data.spec import DataSpec
from gen_jax.train import checkpoint
from gen_jax.train import sharding
from gen_jax.train import step as step_lib
from gen_jax.train.state import CHECKPOINT_FORMAT
from gen_jax.train.task import Task, merge_variables, task_batch


@dataclasses.dataclass(frozen=True)
class Run:
  config: ml_collections.ConfigDict
  model: nn.Module  # the Flax module
  params: Any  # flax variables of `model`: the EMA params where the run kept them, with its carried state
  all_params: Any  # every part of the task, trained and carried ({"model": ..., auxiliary parts}): what
  # the task's evaluate / sample / figures / log_likelihoods take
  task: Task
  spec: DataSpec
  step: int
  workdir: str


def load_run(workdir: str, step: int | None = None, use_ema: bool = True,
             overrides: dict | None = None) -> Run:
  """Loads the checkpoint at `step` (default: the latest) of the run in `workdir`.

  `overrides` {"diffusion.sample_steps": 50, ...} change config fields that do not change the params'
  shapes (e.g. a diffusion model's sampler) before the task is built; a field the config lacks is
  an error.
  """
  config_path = os.path.join(workdir, "config.json")
  if not os.path.exists(config_path):
    raise FileNotFoundError(f"{workdir} is not a gen_jax run: expected {config_path}")
  with open(config_path) as f:
    config = ml_collections.ConfigDict(json.load(f))
  for name, value in (overrides or {}).items():
    *parents, leaf = name.split(".")
    node = config
    for parent in parents:
      if parent not in node:
        raise KeyError(f"override {name!r}: the run's config has no field {parent!r}")
      node = node[parent]
    if leaf not in node:
      raise KeyError(f"override {name!r}: the run's config has no field {leaf!r}")
    node[leaf] = value
  with open(os.path.join(workdir, "data_spec.json")) as f:
    raw = json.load(f)
  spec = DataSpec(**{**raw, "event_shape": tuple(raw["event_shape"])})
  task = models.build_task(config, spec)

  mesh = sharding.make_mesh(jax.devices()[:1])
  init_state, state_sharding = step_lib.make_init_state(task, config.train.ema_decay, mesh)
  dtype = jnp.uint8 if spec.num_levels is not None else jnp.float32
  example = task_batch(task, jax.ShapeDtypeStruct((config.train.batch_size, *spec.event_shape), dtype),
                       jax.ShapeDtypeStruct((config.train.batch_size,), jnp.int32))
  shapes = jax.eval_shape(init_state, jax.ShapeDtypeStruct((), jax.random.key(0).dtype), example)
  checkpoint.check_format(workdir, CHECKPOINT_FORMAT)
  manager = checkpoint.make_manager(os.path.join(workdir, "checkpoints"), config.train.keep_checkpoints)
  state = checkpoint.restore(manager, checkpoint.abstract_like(shapes, state_sharding), step)
  manager.close()
  all_params = state.eval_variables if use_ema else merge_variables(state.params, state.model_state)
  return Run(config=config, model=task.model, params=all_params["model"], all_params=all_params, task=task,
             spec=spec, step=int(state.step), workdir=workdir)
