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
    resize_lib.check_images(batch)
    out = network.apply(batch)
    yield {name: np.asarray(out[name])[:num_real] for name in outputs}


def extract_features(network, images, batch_size=50, outputs=None):
  """Outputs of `network` on uint8 images (an array [N, H, W, C] or an iterable of such arrays)."""
  parts = list(iterate_features(network, images, batch_size, outputs))
  if not parts:
    raise ValueError("no images given: expected at least one uint8 [N, H, W, C] image")
  return {name: np.concatenate([p[name] for p in parts]) for name in parts[0]}


def feature_statistics(network, images, batch_size=50, output="features"):
  """Mean and covariance (float64) of one output over all images, accumulated batch by batch."""
  _check_outputs(network, [output])
  state = None
  for out in iterate_features(network, images, batch_size, [output]):
    if state is None:
      state = statistics_lib.init_statistics(out[output].shape[1])
    state = statistics_lib.update_statistics(state, out[output])
  if state is None:
    raise ValueError("no images given: expected at least one uint8 [N, H, W, C] image")
  return statistics_lib.finalize_statistics(state)
