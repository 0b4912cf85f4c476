"""Feature networks for sample-quality metrics: uint8 images in, named features out, batch by batch.

A feature network is a `FeatureNetwork(name, apply)` whose `apply(images_uint8 [B, H, W, C])`
returns a dict of arrays with a leading batch axis:
  "features": [B, D] what FID, KID and precision/recall compare (Inception: pool3, 2048-D),
  "logits":   [B, K] classifier logits, for the Inception Score (when the network has a head),
  "spatial":  [B, S] spatial features for sFID (Inception: mixed_6/conv, 7 channels, 2023-D).
`extract_features` runs a network over any number of images in fixed-size batches (one compilation;
the last batch padded and the padding dropped), and `feature_statistics` accumulates the mean and
covariance without holding all features (50k samples never sit in memory at once).

The Inception network runs under `jax.jit` with the batch sharded over every device JAX sees.
"""
from typing import Callable, NamedTuple

import jax
import numpy as np

from gen_jax import checks
from gen_jax.data.batching import padded_batches
from gen_jax.eval import across_processes as across_processes_lib
from gen_jax.eval import resize as resize_lib
from gen_jax.eval import statistics as statistics_lib
from gen_jax.eval.inception_weights import load_inception
from gen_jax.train import sharding


class FeatureNetwork(NamedTuple):
  name: str
  apply: Callable  # uint8 [B, H, W, C] -> {"features": [B, D], optional "logits", "spatial"}
  outputs: tuple  # the keys `apply` returns


def inception_network(weights=None, resize="clean", cache_dir=None, devices=None):
  """The FID Inception network (see inception.py) with a named resize mode (see resize.py).

  Args:
    weights: a PyTorch weights file (see inception_weights.py); None for the default.
    resize: "clean" (default), "legacy_pytorch" or "legacy_tensorflow".
    devices: devices to shard each batch over (default: all); batches must divide evenly.
  """
  if resize not in resize_lib.RESIZE_MODES:
    raise ValueError(f"unknown resize mode '{resize}': expected one of {resize_lib.RESIZE_MODES}")
  model, params = load_inception(weights, cache_dir)
  mesh = sharding.make_mesh(devices)
  params = jax.device_put(params, sharding.replicated(mesh))

  @jax.jit
  def network(params, x):
    out = model.apply(params, x)
    renamed = {"features": out["pool3"], "spatial": out["spatial"]}
    if "logits" in out:
      renamed["logits"] = out["logits"]
    return renamed

  def apply(images):
    x = resize_lib.inception_input(images, resize)
    sharding.check_divisible(x.shape[0], mesh, "the feature batch size")
    x = jax.device_put(x, sharding.batch_sharding(mesh))
    return network(params, x)

  outputs = ("features", "spatial") + (("logits",) if model.with_logits else ())
  return FeatureNetwork(f"inception-{resize}", apply, outputs)


def _batches(images, batch_size):
  """(batch, num_real) over an array [N, ...] or an iterable of arrays, every batch batch_size rows."""
  for chunk in [images] if isinstance(images, np.ndarray) else images:
    for batch, mask in padded_batches(np.asarray(chunk), batch_size):
      yield batch, int(mask.sum())


def _check_outputs(network, outputs):
  missing = [name for name in outputs if name not in network.outputs]
  if missing:
    raise ValueError(f"{network.name} has no output {missing}: expected names from {network.outputs}")
  return tuple(outputs)


def iterate_features(network, images, batch_size=50, outputs=None):
  """Yields each batch's outputs ({name: np.ndarray [n, ...]}, padding removed; `outputs`: the names kept)."""
  checks.check_positive_int(batch_size, "batch_size")
  outputs = network.outputs if outputs is None else _check_outputs(network, outputs)
  for batch, num_real in _batches(images, batch_size):
    yield _apply(network, batch, outputs, num_real)


def _apply(network, batch, outputs, num_real):
  resize_lib.check_images(batch)
  out = network.apply(batch)
  return {name: np.asarray(out[name])[:num_real] for name in outputs}


def extract_features(network, images, batch_size=50, outputs=None, across_processes=False):
  """Outputs of `network` on uint8 images (an array [N, H, W, C] or an iterable of such arrays).

  `across_processes`: every process of a multi-process job calls this with the same images; batch c is
  run by process c mod P alone and the outputs are gathered in order (`across_processes.map_chunks`),
  so every process returns all of them, equal to a one-process call. `network` must then run on the
  process's own devices (e.g. `inception_network(devices=jax.local_devices())`).
  """
  if across_processes:
    checks.check_positive_int(batch_size, "batch_size")
    outputs = network.outputs if outputs is None else _check_outputs(network, outputs)
    batches = list(_batches(images, batch_size))
    if not batches:
      raise ValueError("no images given: expected at least one uint8 [N, H, W, C] image")
    padded = across_processes_lib.map_chunks(lambda c: _apply(network, batches[c][0], outputs, batch_size),
                                             len(batches))
    parts = [{name: out[name][:num_real] for name in out} for out, (_, num_real) in zip(padded, batches)]
  else:
    parts = list(iterate_features(network, images, batch_size, outputs))
  if not parts:
    raise ValueError("no images given: expected at least one uint8 [N, H, W, C] image")
  return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def feature_statistics(network, images, batch_size=50, output="features", across_processes=False):
  """Mean and covariance (float64) of one output over all images, accumulated batch by batch.

  `across_processes`: every process of a multi-process job calls this with the same images; each folds
  only its batches (c mod P) into its running statistics, which are gathered and merged once
  (`across_processes.gather_statistics`); every process returns the statistics of all images.
  """
  checks.check_positive_int(batch_size, "batch_size")
  _check_outputs(network, [output])
  state, first = None, None
  for c, (batch, num_real) in enumerate(_batches(images, batch_size)):
    first = first or (batch, num_real)
    if across_processes and c % jax.process_count() != jax.process_index():
      continue
    features = _apply(network, batch, [output], num_real)[output]
    state = statistics_lib.update_statistics(state or statistics_lib.init_statistics(features.shape[1]), features)
  if first is None:
    raise ValueError("no images given: expected at least one uint8 [N, H, W, C] image")
  if across_processes:
    if state is None:  # fewer batches than processes: this one sends no features, of the right dimension
      state = statistics_lib.init_statistics(_apply(network, first[0], [output], first[1])[output].shape[1])
    state = across_processes_lib.gather_statistics(state)
  return statistics_lib.finalize_statistics(state)
