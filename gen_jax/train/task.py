"""The one interface between a model family and the training loop.

A `Task` bundles a Flax module with the pure functions the loop needs. Every function is a pure function
of explicit arguments (params, state, batch, `jax.random` key), so the loop can `jit`, shard and scan it,
and another project can import it.

Two trees hold a task's variables, both dicts `{"model": ..., **auxiliary}`:
  params   what the optimizer trains: "model" holds the trained variables of `Task.model` (flax's
           "params" collection), auxiliary trained parts (a variational dequantizer, an NCE
           log-normaliser) sit under other keys;
  state    what is carried but not trained: batch statistics and spectral-norm estimates
           ("model": {"batch_stats": ...}), replay buffers, running estimates; `{}` when none.
The EMA averages `params` only. `merge_variables(params, state)` is the one tree that evaluation,
sampling, figures and likelihoods take (and what `load_run` returns): for `Task.model` its "model"
entry is the flax variables dict.

A batch is the data array `[B, ...]` (uint8 images, float32 vectors), or, for a task with
`uses_labels`, the dict `{"data": [B, ...], "label": int32 [B]}` (`task_batch`).
"""
from __future__ import annotations

import types
from typing import Any, Callable, Mapping, NamedTuple

import flax.linen as nn
import jax
import optax

Params = Any
State = Any
Variables = Any  # merge_variables(params, state)
Metrics = dict[str, jax.Array]
Batch = Any  # jax.Array, or {"data": jax.Array, "label": jax.Array} for a task that uses labels
# update(params, state, opt_state, batch, rng, step) -> (params, state, opt_state, loss, metrics)
UpdateRule = Callable[..., tuple]


class LatentSpace(NamedTuple):
  """A family's latent space, in the data's units, for the latent measures and figures of `gen_jax.eval`
  (path lengths, probes, clustering, round trips, interpolations, traversals).

  prior(rng, num) -> z [num, *latent_shape]: the latent draws the sampler starts from.
  decode(variables, z) -> [num, *event_shape] float32 in data scale, differentiable in z: for images
    the levels as real numbers (level k is the value k; a decoded mean, a flow's inverse, a generator
    or a deterministic sampler's output, before any rounding); vectors as they are.
  encode(variables, x) -> z: the code of data x as stored (a flow's forward map, a VAE's posterior
    mean, a diffusion model's DDIM inversion); None for a family without an encoder (a GAN).
  """
  prior: Callable[[jax.Array, int], jax.Array]
  decode: Callable[[Any, jax.Array], jax.Array]
  encode: Callable[[Any, jax.Array], jax.Array] | None = None


class BitsBack(NamedTuple):
  """What bits-back coding (`gen_jax.compress`) needs of a latent-variable model with the prior N(0, I).

  posterior(variables, x) -> (mean, std), each [B, latent_dim]: the diagonal Gaussian q(z | x) of
    data x as stored.
  observation_log_probs(variables, z) -> [B, *event_shape, L]: log p(x_i = l | z) for every level l
    of every dimension.
  """
  posterior: Callable[[Any, jax.Array], tuple[jax.Array, jax.Array]]
  observation_log_probs: Callable[[Any, jax.Array], jax.Array]


class Task(NamedTuple):
  model: nn.Module
  # init(rng, batch) -> (params, state); `batch` is a real training batch (data-dependent init, e.g. ActNorm).
  init: Callable[[jax.Array, Batch], tuple[Params, State]]
  # The optimizer over `params`, declared by the task from config.optim (`gen_jax.train.optimizer`);
  # players with their own optimizers (a GAN) combine them with `optimizer.players`.
  optimizer: optax.GradientTransformation
  # The task's update rule: one optimizer step on one batch, `step` the optimizer step (an int32 array),
  # `loss` the scalar the loop checks for non-finite values. A task with one objective builds it with
  # `gradient_update(loss, optimizer)`; a game of players (a GAN) writes its own.
  update: UpdateRule
  # evaluate(variables, batch, rng) -> {name: [batch]} per-example metrics, averaged by the loop with a mask.
  evaluate: Callable[[Variables, Batch, jax.Array], Metrics]
  # sample(variables, rng, num) -> samples in data space (uint8 levels for images, float32 for vectors);
  # None for a model that does not generate (a classifier): the loop then writes no samples.
  sample: Callable[[Variables, jax.Array, int], jax.Array] | None
  # True: batches are {"data": ..., "label": ...} (the dataset must have labels); False: the data array.
  uses_labels: bool = False
  # figures(variables, rng, test_examples) -> {name: uint8 image grid [H, W, C]}: extra figures written
  # beside the sample grids (e.g. a VAE's reconstructions and interpolations); None for none.
  figures: Callable[[Variables, jax.Array, Any], dict] | None = None
  # {estimator name: fn(variables, batch, rng, **options) -> [batch] log-likelihood (or its bound) in nats
  # of the data as stored (discrete levels for images)}; names from gen_jax.eval.likelihood.ESTIMATORS.
  log_likelihoods: Mapping[str, Callable[..., jax.Array]] = types.MappingProxyType({})
  # The objective that `update` descends, loss(params, state, batch, rng, step) -> (scalar, (metrics,
  # state)), for a reader, a test or another optimizer; None for a two-player game.
  loss: Callable[..., tuple] | None = None
  # check_health({name: mean over the last log window}) -> a warning to print, or None (e.g. a
  # discriminator that wins completely); called by the loop at every log step.
  check_health: Callable[[dict], str | None] | None = None
  # The latent space (`LatentSpace`: prior, decode, encode) of a family that has one; None for one
  # that does not (an autoregressive model, an EBM, a classifier).
  latent: LatentSpace | None = None
  # denoise(variables, y, noise_std) -> an estimate of x [B, *event_shape] (float32, data scale) from
  # y = x + noise_std * N(0, I) in data scale (levels as real numbers): a diffusion model's denoiser
  # at the matching noise level, a VAE's decoded posterior mean; None for a family that cannot.
  denoise: Callable[[Any, jax.Array, float], jax.Array] | None = None
  # pixel_conditionals(variables, x, i) -> [B, C, L]: log P(x_i = l | x_<i) for every level l of pixel i
  # (raster order; i may be traced) of an autoregressive model of discrete images, read from the levels
  # x [B, H, W, C] (its pixels >= i have no effect); what autoregressive entropy coding needs. None else.
  pixel_conditionals: Callable[[Any, jax.Array, jax.Array], jax.Array] | None = None
  # The parts bits-back coding needs (`BitsBack`) of a latent-variable model of discrete data; None else.
  bits_back: BitsBack | None = None


def gradient_update(loss: Callable[..., tuple], optimizer: optax.GradientTransformation) -> UpdateRule:
  """The update rule of a task with one objective.

  `loss(params, state, batch, rng, step) -> (scalar, (metrics, state))` is differentiated w.r.t. params
  (the state, e.g. batch statistics, comes back updated through the aux output); one optimizer step
  follows. The metrics gain `grad_norm`, the global norm of the gradient before the optimizer.
  """
  def update(params, state, opt_state, batch, rng, step):
    (value, (metrics, state)), grads = jax.value_and_grad(loss, has_aux=True)(params, state, batch, rng, step)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return (optax.apply_updates(params, updates), state, opt_state, value,
            {**metrics, "grad_norm": optax.tree.norm(grads)})

  return update


def merge_variables(params: Params, state: State) -> Variables:
  """params and state as one tree: dicts are merged key by key (recursively), e.g.
  {"model": {"params": p}} + {"model": {"batch_stats": s}, "buffer": b}
  -> {"model": {"params": p, "batch_stats": s}, "buffer": b}. A key both hold as a leaf is an error."""
  if not state:
    return params
  merged = dict(params)
  for name, value in state.items():
    if name not in merged:
      merged[name] = value
    elif isinstance(merged[name], Mapping) and isinstance(value, Mapping):
      merged[name] = merge_variables(dict(merged[name]), value)
    else:
      raise ValueError(f"params and state both hold {name!r}: a variable is either trained or carried")
  return merged


def split_variables(variables: Variables, state_collections=("batch_stats",)) -> tuple[Params, State]:
  """{"model": flax variables, ...} -> (params, state): the model's `state_collections` (flax collections
  that are carried, not trained) go to state, everything else to params."""
  model = dict(variables["model"])
  carried = {name: model.pop(name) for name in state_collections if name in model}
  params = {**variables, "model": model}
  return params, ({"model": carried} if carried else {})


def task_batch(task: Task, data: Any, labels: Any) -> Batch:
  """A batch in the form `task` takes: `data`, or `{"data": data, "label": labels}` if it uses labels."""
  return {"data": data, "label": labels} if task.uses_labels else data
