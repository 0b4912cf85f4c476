"""Outlier detection measures: AUROC of a score, the typicality test, and the digits out-of-distribution sets.

AUROC(s) = P(s(outlier) > s(inlier)) + 1/2 P(s(outlier) = s(inlier)), the Mann-Whitney U statistic
over all n_in * n_out pairs (ties count half); 0.5 is chance, 1 a perfect separation. Scores are
"higher = more outlying": a density model's -log p(x), an EBM's energy E(x) or |grad_x E(x)|.

`noise_and_inverted_sets` builds, for any uint8 images [N, H, W, C] with L levels:
  uniform noise    every pixel uniform on {0, ..., L - 1};
  inverted digits  L - 1 - x of the test images;
and `digits_ood_sets`, for the 8x8 digits (17 levels, uint8 [N, 8, 8, 1]), those two and
  MNIST 8x8        MNIST test images (28x28, 256 levels): the central 24x24 crop averaged over 3x3
                   blocks (an antialiased 8x8 resize) and rounded to 17 levels.

`typicality_scores` is the typicality test (Nalisnick, Matsukawa, Teh & Lakshminarayanan 2019,
"Detecting Out-of-Distribution Inputs to Deep Generative Models Using Typicality", sec. 3): a batch
x_1..M is in distribution when it falls in the model's typical set, where the mean negative
log-likelihood is near the entropy H[p] = E_p[-log p(x)]. With H_hat the mean NLL of held-out
training data, the score of a batch is

  eps_hat = | (1/M) sum_m -log p(x_m) - H_hat |,

and M = 1 gives a per-example score |-log p(x) - H_hat| to rank with `auroc`. It flags what the NLL
alone misses: in D dimensions N(0, I) samples have ||x||^2 ~ D, so the mode x = 0 has the lowest NLL
of all (D/2 log 2 pi, against H = D/2 (1 + log 2 pi)) yet is D/2 nats from typical. The paper sets the
threshold as the 1 - alpha quantile of eps_hat over bootstrap batches of validation data.
"""
from __future__ import annotations

import numpy as np
from scipy import stats

from gen_jax import checks


def auroc(scores_in, scores_out) -> float:
  """Area under the ROC curve for telling outliers (`scores_out`) from inliers by a higher score."""
  scores_in, scores_out = np.asarray(scores_in, np.float64).ravel(), np.asarray(scores_out, np.float64).ravel()
  if not (len(scores_in) and len(scores_out)):
    raise ValueError("auroc needs at least one inlier and one outlier score")
  if not (np.all(np.isfinite(scores_in)) and np.all(np.isfinite(scores_out))):
    raise ValueError("auroc: scores must be finite (a -inf log-density is no score to rank)")
  ranks = stats.rankdata(np.concatenate([scores_in, scores_out]))  # average ranks of ties
  n_in, n_out = len(scores_in), len(scores_out)
  u = np.sum(ranks[n_in:]) - n_out * (n_out + 1) / 2.0
  return float(u / (n_in * n_out))


def typicality_scores(nll, held_out_nll, batch_size: int = 1) -> np.ndarray:
  """Typicality test scores |mean NLL of a batch - H_hat| (Nalisnick et al. 2019): higher = more outlying.

  Args:
    nll: [N] per-example -log p(x) (nats) of the inputs to score, N a multiple of batch_size.
    held_out_nll: [K] per-example -log p(x) of held-out training data; their mean is H_hat.
    batch_size: M, the examples per batch (consecutive ones); 1 scores every example.

  Returns:
    [N / M] float64 scores, one per batch.
  """
  nll = np.asarray(nll, np.float64)
  held_out_nll = np.asarray(held_out_nll, np.float64)
  checks.check_rank(nll, 1, "nll", "[N]")
  checks.check_rank(held_out_nll, 1, "held_out_nll", "[K]")
  checks.check_positive_int(batch_size, "batch_size")
  if not len(held_out_nll) or not np.all(np.isfinite(held_out_nll)) or not np.all(np.isfinite(nll)):
    raise ValueError("nll and held_out_nll must be finite, with at least one held-out value for H_hat")
  if len(nll) % batch_size:
    raise ValueError(f"nll's length must be a multiple of batch_size = {batch_size} (no batch is padded or "
                     f"dropped), got {len(nll)}")
  return np.abs(nll.reshape(-1, batch_size).mean(axis=1) - held_out_nll.mean())


def mnist_to_digits(images: np.ndarray) -> np.ndarray:
  """uint8 [N, 28, 28, 1] MNIST (256 levels) -> uint8 [N, 8, 8, 1] in 17 levels (see the module doc)."""
  images = np.asarray(images)
  checks.check_event_shape(images, (28, 28, 1), "MNIST images")
  crop = images[:, 2:26, 2:26, 0].astype(np.float64) / 255.0  # [N, 24, 24]
  blocks = crop.reshape(-1, 8, 3, 8, 3).mean(axis=(2, 4))
  return np.round(blocks * 16).astype(np.uint8)[..., None]


def digits_ood_sets(digits_test: np.ndarray, mnist_test: np.ndarray, seed: int = 0) -> dict[str, np.ndarray]:
  """{name: uint8 [N, 8, 8, 1]} out-of-distribution sets for the digits, as many as the test digits."""
  digits_test = np.asarray(digits_test)
  checks.check_event_shape(digits_test, (8, 8, 1), "digits")
  return {**noise_and_inverted_sets(digits_test, 17, seed),
          "MNIST 8x8": mnist_to_digits(np.asarray(mnist_test)[:len(digits_test)])}


def noise_and_inverted_sets(test: np.ndarray, num_levels: int, seed: int = 0) -> dict[str, np.ndarray]:
  """{name: uint8 [N, H, W, C]}: uniform noise and the inverted test images, as many as `test`."""
  test = np.asarray(test)
  rng = np.random.default_rng(seed)
  return {"uniform noise": rng.integers(0, num_levels, size=test.shape).astype(np.uint8),
          "inverted digits": (num_levels - 1 - test.astype(np.int64)).astype(np.uint8)}
