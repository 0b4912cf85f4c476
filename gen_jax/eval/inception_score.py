"""Inception Score from classifier logits.

IS (Salimans et al. 2016, "Improved techniques for training GANs") rewards samples whose class
posterior p(y|x) is confident while the marginal p(y) = E_x p(y|x) is spread over classes:

  IS = exp(E_x KL(p(y|x) || p(y))),

evaluated with p(y|x) = softmax(logits(x)) of an ImageNet classifier (Inception-v3 for the published
numbers). The N samples are cut into `num_splits` consecutive splits (rows i N / S to (i + 1) N / S,
floored), each split takes its own p(y) as the mean of its posteriors, and the mean and the
population standard deviation (ddof=0) of the per-split scores are reported.

This follows torch-fidelity 0.4.0's `isc_features_to_metric`: the rows are first shuffled by
`np.random.RandomState(seed).permutation(N)` (defaults: shuffle, 10 splits, seed 2020), so the same
logits and arguments give the same splits. torch-fidelity feeds it Inception's 1008 "logits_unbiased"
(pool3 features times the last layer's weights, *without* its bias). It evaluates in float64; here
the softmax and KL run in JAX (log_softmax, so no probability is taken to a log after underflow),
in float64 where JAX has 64-bit types enabled (`jax.enable_x64`), which reproduces torch-fidelity
to round-off, and in float32 otherwise, which moves the mean score by about 1e-7 relative and the
std, a small difference of scores, by about 1e-5 relative.
"""
from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import checks


@functools.partial(jax.jit, static_argnames="num_splits")
def _split_scores(logits: jax.Array, split_ids: jax.Array, num_splits: int) -> jax.Array:
  """exp(mean KL(p(y|x) || p(y))) of each split [num_splits]; split_ids [N] says each row's split."""
  log_p = jax.nn.log_softmax(logits, axis=-1)  # [N, C]
  p = jnp.exp(log_p)
  counts = jax.ops.segment_sum(jnp.ones(len(logits)), split_ids, num_splits)  # [S]
  marginal = jax.ops.segment_sum(p, split_ids, num_splits) / counts[:, None]  # p(y) per split [S, C]
  kl = jnp.sum(p * (log_p - jnp.log(marginal)[split_ids]), axis=-1)  # [N]
  return jnp.exp(jax.ops.segment_sum(kl, split_ids, num_splits) / counts)


def inception_score(logits, *, num_splits: int = 10, shuffle: bool = True,
                    seed: int = 2020) -> tuple[float, float]:
  """Mean and std over splits of exp(E_x KL(p(y|x) || p(y))), as torch-fidelity 0.4.0 computes it.

  Args:
    logits: [N, C] classifier logits of N samples (torch-fidelity: Inception's 1008 unbiased logits).
    num_splits: S, how many splits to score separately; at most N.
    shuffle: permute the rows with `np.random.RandomState(seed)` before splitting.
    seed: the permutation's seed.

  Returns:
    (mean, std) of the S split scores, as Python floats.
  """
  logits = np.asarray(logits)
  checks.check_rank(logits, 2, "logits", "[N, C]")
  checks.check_positive_int(num_splits, "num_splits")
  num = len(logits)
  if num < num_splits:
    raise ValueError(f"logits must have at least num_splits = {num_splits} rows (one per split), got {num}")
  if shuffle:
    logits = logits[np.random.RandomState(seed).permutation(num)]
  bounds = np.arange(num_splits + 1) * num // num_splits
  split_ids = np.repeat(np.arange(num_splits), np.diff(bounds))
  dtype = jax.dtypes.canonicalize_dtype(np.float64)  # float64 under jax.enable_x64, else float32
  scores = np.asarray(_split_scores(jnp.asarray(logits, dtype), split_ids, num_splits), np.float64)
  return float(np.mean(scores)), float(np.std(scores))
