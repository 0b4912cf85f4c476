"""The one interface between a model family and the training loop.

A `Task` bundles a Flax module with the pure functions the loop needs. Every function is a pure function
of explicit arguments (params, batch, `jax.random` key), so the loop can `jit`, shard and scan it, and
another project can import it. Params are a dict `{"model": ..., **auxiliary}`: "model" holds the params
of `Task.model` (what `load_run` returns); families add auxiliary trained parts (e.g. a variational
dequantizer) under other keys.
"""
from __future__ import annotations

from typing import Any, Callable, NamedTuple

import flax.linen as nn
import jax

Params = Any
Metrics = dict[str, jax.Array]


class Task(NamedTuple):
  model: nn.Module
  # init(rng, batch) -> params; `batch` is a real training batch (data-dependent init, e.g. ActNorm).
  init: Callable[[jax.Array, jax.Array], Params]
  # loss(params, batch, rng) -> (scalar, metrics of scalars): the training objective.
  loss: Callable[[Params, jax.Array, jax.Array], tuple[jax.Array, Metrics]]
  # evaluate(params, batch, rng) -> {name: [batch]} per-example metrics, averaged by the loop with a mask.
  evaluate: Callable[[Params, jax.Array, jax.Array], Metrics]
  # sample(params, rng, num) -> samples in data space (uint8 levels for images, float32 for vectors).
  sample: Callable[[Params, jax.Array, int], jax.Array]
