"""The one interface between a model family and the training loop.

A `Task` bundles a Flax module with the pure functions the loop needs. Every function is a pure function
of explicit arguments (params, batch, `jax.random` key), so the loop can `jit`, shard and scan it, and
another project can import it. Params are a dict `{"model": ..., **auxiliary}`: "model" holds the params
of `Task.model` (what `load_run` returns); families add auxiliary trained parts (e.g. a variational
dequantizer) under other keys.

A batch is the data array `[B, ...]` (uint8 images, float32 vectors), or, for a task with
`uses_labels`, the dict `{"data": [B, ...], "label": int32 [B]}` (`task_batch`).
"""
from __future__ import annotations

import types
from typing import Any, Callable, Mapping, NamedTuple

import flax.linen as nn
import jax

Params = Any
Metrics = dict[str, jax.Array]
Batch = Any  # jax.Array, or {"data": jax.Array, "label": jax.Array} for a task that uses labels


class Task(NamedTuple):
  model: nn.Module
  # init(rng, batch) -> params; `batch` is a real training batch (data-dependent init, e.g. ActNorm).
  init: Callable[[jax.Array, Batch], Params]
  # loss(params, batch, rng) -> (scalar, metrics of scalars): the training objective (None for a
  # task with its own `update`).
  loss: Callable[[Params, Batch, jax.Array], tuple[jax.Array, Metrics]] | None
  # evaluate(params, batch, rng) -> {name: [batch]} per-example metrics, averaged by the loop with a mask.
  evaluate: Callable[[Params, Batch, jax.Array], Metrics]
  # sample(params, rng, num) -> samples in data space (uint8 levels for images, float32 for vectors);
  # None for a model that does not generate (a classifier): the loop then writes no samples.
  sample: Callable[[Params, jax.Array, int], jax.Array] | None
  # True: batches are {"data": ..., "label": ...} (the dataset must have labels); False: the data array.
  uses_labels: bool = False
  # True: `loss` also takes `step=` (the optimizer step, an int32 array), for schedules inside the
  # objective such as a VAE's KL warm-up.
  loss_uses_step: bool = False
  # figures(params, rng, test_examples) -> {name: uint8 image grid [H, W, C]}: extra figures written
  # beside the sample grids (e.g. a VAE's reconstructions and interpolations); None for none.
  figures: Callable[[Params, jax.Array, Any], dict] | None = None
  # {estimator name: fn(params, batch, rng, **options) -> [batch] log-likelihood (or its bound) in nats
  # of the data as stored (discrete levels for images)}; names from gen_jax.eval.likelihood.ESTIMATORS.
  log_likelihoods: Mapping[str, Callable[..., jax.Array]] = types.MappingProxyType({})
  # For a task whose players each have their own optimizer (a GAN), `update` replaces the generic
  # value_and_grad + optimizer step: update(params, opt_state, batch, rng, step) -> (params,
  # opt_state, loss, metrics), with `loss` the scalar the loop checks for non-finite values; and
  # init_opt_state(params) -> opt_state replaces `optimizer.init`. `loss` may then be None.
  update: Callable[..., tuple] | None = None
  init_opt_state: Callable[[Params], Any] | None = None
  # check_health({name: mean over the last log window}) -> a warning to print, or None (e.g. a
  # discriminator that wins completely); called by the loop at every log step.
  check_health: Callable[[dict], str | None] | None = None


def task_batch(task: Task, data: Any, labels: Any) -> Batch:
  """A batch in the form `task` takes: `data`, or `{"data": data, "label": labels}` if it uses labels."""
  return {"data": data, "label": labels} if task.uses_labels else data
