"""Sample-quality metrics during training: every N steps, M samples scored against the test split.

A config turns them on with (see experiments/configs/base.py):

  config.eval.sample_metrics = ("fid", "kid", "prdc")   # names from sample_quality.METRICS; () = off
  config.eval.sample_metrics_every = 1000               # steps (a multiple of train.steps_per_call)
  config.eval.sample_metrics_num_samples = 1000         # M
  config.eval.feature_network = "classifier:runs/classifier_digits"
  config.eval.feature_batch_size = 100                  # images per feature-network call

Feature networks: "classifier:RUN_DIR" (a domain classifier trained by gen_jax on the same dataset;
images stay in the dataset's levels), "inception" (the FID Inception network, clean resize; levels
are scaled to 0..255 first), "identity" (vector data: the samples themselves are the features).
The real test split's features are extracted once; the loop logs `sample/<metric>` and the seconds
the evaluation took.
"""
import time

import jax
import numpy as np

from gen_jax.eval import across_processes
from gen_jax.eval import features as features_lib
from gen_jax.eval import sample_quality

FEATURE_NETWORKS = ("classifier:RUN_DIR", "inception", "identity")


def check_config(eval_config, steps_per_call):
  """Validates the sample-metric fields of `config.eval` (no-op when they are off)."""
  metrics = tuple(eval_config.get("sample_metrics", ()) or ())
  if not metrics:
    return
  sample_quality.check_metric_names(metrics)
  every = eval_config.sample_metrics_every
  if every <= 0 or every % steps_per_call:
    raise ValueError(f"eval.sample_metrics_every must be a positive multiple of train.steps_per_call "
                     f"({steps_per_call}), got {every}")
  if eval_config.sample_metrics_num_samples <= 1:
    raise ValueError(f"eval.sample_metrics_num_samples must be at least 2, got {eval_config.sample_metrics_num_samples}")
  name = eval_config.feature_network
  if not (name in ("inception", "identity") or name.startswith("classifier:")):
    raise ValueError(f"unknown eval.feature_network '{name}': expected one of {FEATURE_NETWORKS}")


def identity_network(spec):
  """Vector data: the samples themselves are the features."""
  if spec.kind != "vector":
    raise ValueError(f"feature_network 'identity' is for vector data; {spec.name} holds images")
  apply = lambda x: {"features": np.asarray(x, np.float32)}
  return features_lib.FeatureNetwork("identity", apply, ("features",))


def draw_samples(sample_fn, params, key, num, chunk):
  """`num` samples drawn `chunk` at a time (one compilation), chunk i with key fold_in(key, i); on many
  processes each draws its chunks (i mod P) and every process gets all of them (`across_processes`)."""
  return np.concatenate(across_processes.map_chunks(
      lambda i: np.asarray(sample_fn(params, jax.random.fold_in(key, i), chunk)), -(-num // chunk)))[:num]


def make_sample_metrics(eval_config, network, convert, test_data, sample_fn):
  """Returns `score(params, key) -> {"sample/<metric>": value}`, or None when the config has none.

  `network` is the feature network named by `eval_config.feature_network` and `convert` maps the
  task's samples to its input (`gen_jax.drivers.scoring.feature_network_for` builds both);
  `sample_fn(params, key, num)` is the task's (jitted) sampler; samples are drawn in chunks of
  `eval_config.num_samples` (the grid size, so its compilation is shared) until M are drawn.

  On many processes every process builds this and calls `score` together: the test split's features
  and the samples' chunks are shared out over the processes (chunk i with key fold_in(key, i), on
  process i mod P, featurized there by `network`, which must run on the process's own devices) and
  gathered once, so every process returns what one process would.
  """
  metrics = tuple(eval_config.get("sample_metrics", ()) or ())
  if not metrics:
    return None
  if sample_fn is None:
    raise ValueError("eval.sample_metrics needs a model that samples; this task has no sampler")
  real = features_lib.extract_features(network, convert(np.asarray(test_data)),
                                       batch_size=eval_config.feature_batch_size,
                                       outputs=sample_quality.needed_outputs(metrics, for_real=True),
                                       across_processes=True) \
      if network.name != "identity" else {"features": np.asarray(test_data, np.float32)}
  num, chunk = eval_config.sample_metrics_num_samples, eval_config.num_samples
  outputs = sample_quality.needed_outputs(metrics, for_real=False)

  def chunk_features(params, key):
    samples = np.asarray(sample_fn(params, key, chunk))
    finite = bool(np.all(np.isfinite(samples.astype(np.float64))))
    if network.name == "identity":
      return {"features": samples.astype(np.float32)}, finite
    if not finite:  # the network would refuse them; zeros keep the shapes every process gathers
      samples = np.zeros_like(samples)
    return features_lib.extract_features(network, convert(samples), eval_config.feature_batch_size, outputs), finite

  def score(params, key):
    start = time.perf_counter()
    parts = across_processes.map_chunks(lambda i: chunk_features(params, jax.random.fold_in(key, i)), -(-num // chunk))
    if not all(finite for _, finite in parts):
      raise FloatingPointError("non-finite samples: sample-quality metrics cannot be computed")
    fake = {name: np.concatenate([features[name] for features, _ in parts])[:num] for name in parts[0][0]}
    values = sample_quality.sample_quality(network, real, fake, metrics, batch_size=eval_config.feature_batch_size,
                                           kid_subset_size=min(1000, num))
    values["seconds"] = time.perf_counter() - start
    return {f"sample/{k}": v for k, v in values.items()}

  return score
