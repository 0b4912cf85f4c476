"""`load_run(workdir)`: a finished (or running) training run, ready to sample, score or plot in a notebook.

One data contract for every family, in the data as the dataset stores it (uint8 levels for images,
float32 for vectors), so two runs compare in one line:

    run = gen_jax.load_run("runs/quickstart")
    x = run.sample(jax.random.key(0), 16)              # [16, H, W, C] uint8 levels, as stored
    log_p = run.log_likelihood(x)                        # [16] nats of the stored (discrete) data
    run.estimators                                       # ("exact",); a VAE ("elbo", "iwae"); a GAN ()
    z = run.encode(x); x_mean = run.decode(z)            # a latent space, where the family has one

Below it, each family's own module in its own units (a flow's `log_prob` takes floats in [0, 1]):
    log_p = run.model.apply(run.params, u, method=run.model.log_prob)
"""
from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import ml_collections

from gen_jax import checks
from gen_jax import models
from gen_jax.data import levels
from gen_jax.data.spec import DataSpec
from gen_jax.eval import likelihood
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

  @property
  def estimators(self) -> tuple[str, ...]:
    """The names `log_likelihood` accepts (`gen_jax.eval.likelihood.ESTIMATORS`); () for a model without
    a tractable likelihood or bound (a GAN, an image EBM)."""
    return tuple(self.task.log_likelihoods)

  def sample(self, rng: jax.Array, num: int) -> jax.Array:
    """`num` samples in the data as stored: uint8 levels [num, H, W, C] for images, float32 [num, D] for
    vectors; the same for every family (the task's `sample`, compiled once per `num`)."""
    if self.task.sample is None:
      raise ValueError(f"a {self.config.model.name!r} run does not generate samples")
    checks.check_positive_int(num, "num")
    return self._compiled_sample(rng, num)

  def log_likelihood(self, x, estimator: str | None = None, rng: jax.Array | None = None,
                     **options) -> jax.Array:
    """log P(x) per example [B] in nats of `x` as stored (discrete levels for images), or the bound that
    `estimator` gives ("exact", "elbo", "iwae", "probability_flow"; default: the first of
    `estimators`); `rng` draws the estimator's noise (default key 0), `options` go to it (e.g. k=64).

    `x`: [B, *event shape] in the dataset's form: integer levels 0..num_levels-1 for images (any
    integer dtype; floats are refused, as a flow's [0, 1] inputs would be silently misread), float32
    for vectors. For a whole split with batching and standard errors: `scoring.run_likelihood`.
    """
    if not self.estimators:
      raise ValueError(f"a {self.config.model.name!r} run has no likelihood estimator (its task lists none); "
                       "compare it by sample metrics instead (gen_jax.eval)")
    estimator = self.estimators[0] if estimator is None else estimator
    likelihood.check_estimator(estimator, self.task.log_likelihoods)
    x = self._as_stored(x)
    rng = jax.random.key(0) if rng is None else rng
    key = (estimator, tuple(sorted(options.items())))
    return self._compiled(key, functools.partial(self.task.log_likelihoods[estimator], **options))(
        self.all_params, x, rng)

  def latent_prior(self, rng: jax.Array, num: int) -> jax.Array:
    """`num` draws of the latent that sampling starts from (`Task.latent`): [num, *latent shape]."""
    checks.check_positive_int(num, "num")
    return self._latent("prior").prior(rng, num)

  def decode(self, z) -> jax.Array:
    """Latents -> float32 outputs in data scale (image levels as real numbers, not rounded): a decoded
    mean, a flow's inverse, a generator, a diffusion model's deterministic DDIM map."""
    return self._compiled("decode", self._latent("decode").decode)(self.all_params, jnp.asarray(z, jnp.float32))

  def encode(self, x) -> jax.Array:
    """The latent code of data `x` as stored (a flow's forward map, a VAE's posterior mean, DDIM
    inversion); a family without an encoder (a GAN) raises ValueError."""
    latent = self._latent("encode")
    if latent.encode is None:
      raise ValueError(f"a {self.config.model.name!r} run has a latent space but no encoder")
    return self._compiled("encode", latent.encode)(self.all_params, self._as_stored(x))

  def denoise(self, y, noise_std: float) -> jax.Array:
    """An estimate of x from y = x + noise_std N(0, I), both in data scale (`Task.denoise`)."""
    if self.task.denoise is None:
      raise ValueError(f"a {self.config.model.name!r} run cannot denoise (its task has no denoise)")
    checks.check_event_shape(y, self.spec.event_shape, "y")
    checks.check_nonempty_batch(y, "y")
    return self._compiled(("denoise", float(noise_std)), functools.partial(self.task.denoise, noise_std=float(noise_std)))(
        self.all_params, jnp.asarray(y, jnp.float32))

  def _latent(self, what: str):
    if self.task.latent is None:
      raise ValueError(f"a {self.config.model.name!r} run has no latent space to {what} (its task has no latent)")
    return self.task.latent

  def _compiled(self, key, fn):
    if key not in self._compiled_functions:
      self._compiled_functions[key] = jax.jit(fn)
    return self._compiled_functions[key]

  def _as_stored(self, x) -> jax.Array:
    spec = self.spec
    checks.check_event_shape(x, spec.event_shape, "x")
    checks.check_nonempty_batch(x, "x")
    if spec.num_levels is None:
      return jnp.asarray(x, jnp.float32)
    levels.check_levels(x, spec.num_levels, "x")
    return jnp.asarray(x, jnp.uint8)  # DataSpec holds image levels to uint8

  @functools.cached_property
  def _compiled_sample(self):
    return jax.jit(functools.partial(self.task.sample, self.all_params), static_argnums=1)

  @functools.cached_property
  def _compiled_functions(self) -> dict:
    return {}  # (estimator, options), "decode", ... -> the compiled function


def apply_overrides(config: ml_collections.ConfigDict, overrides: dict, what: str = "the config") -> None:
  """Sets each dotted field of `overrides` {"diffusion.sample_steps": 50, ...} in `config`; a field
  `config` lacks is a KeyError naming it (an override is never a new field)."""
  for name, value in overrides.items():
    *parents, leaf = name.split(".")
    node = config
    for parent in parents:
      if parent not in node:
        raise KeyError(f"override {name!r}: {what} has no field {parent!r}")
      node = node[parent]
    if leaf not in node:
      raise KeyError(f"override {name!r}: {what} has no field {leaf!r}")
    node[leaf] = value


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
  apply_overrides(config, overrides or {}, "the run's config")
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
