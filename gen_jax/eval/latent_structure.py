"""What a latent space knows about the labels: a linear probe, and how k-means clusters agree with them.

Linear probe (Alain & Bengio 2016, "Understanding intermediate layers using linear classifier
probes"; the representation-learning protocol of e.g. Chen et al. 2020, SimCLR): a multinomial
logistic regression p(y = c | z) = softmax_c(W z + b), fitted by L2-regularized maximum likelihood
(sklearn's `LogisticRegression`, lbfgs, C = 1) on standardized training codes ((z - mean) / std, the
training codes' statistics), scored by accuracy on held-out codes. Labels that are a linear function
of the codes give ~1; labels independent of them give chance, 1 / (number of classes) for balanced ones.

Clustering (as for VAE / InfoGAN latent spaces, e.g. Dilokthanakul et al. 2016): k-means on the codes
with k = the number of classes, compared with the labels by
  NMI = I(Y; C) / ((H(Y) + H(C)) / 2)   (Strehl & Ghosh 2002; sklearn's arithmetic normalization),
  ARI = (RI - E[RI]) / (max RI - E[RI]) (Hubert & Arabie 1985, the Rand index adjusted for chance),
both 1 for clusters that are the classes up to renaming and ~0 for labels independent of the codes
(ARI can go negative).
"""
from __future__ import annotations

from typing import Optional

import numpy as np
import sklearn.cluster
import sklearn.linear_model
import sklearn.metrics
import sklearn.pipeline
import sklearn.preprocessing

from gen_jax import checks


def _check_codes_and_labels(codes, labels, prefix: str) -> tuple[np.ndarray, np.ndarray]:
  codes, labels = np.asarray(codes), np.asarray(labels)
  checks.check_rank(codes, 2, f"{prefix}codes", "[N, latent_dim]")
  if labels.shape != (len(codes),) or not np.issubdtype(labels.dtype, np.integer):
    raise ValueError(f"{prefix}labels must be integer class labels [N] = [{len(codes)}] (one per code), got "
                     f"{labels.dtype} {labels.shape}")
  if not np.all(np.isfinite(codes)):
    raise ValueError(f"{prefix}codes must be finite")
  return codes, labels


def linear_probe_accuracy(train_codes, train_labels, test_codes, test_labels, *, seed: int = 0,
                          max_iter: int = 1000) -> float:
  """Held-out accuracy of a multinomial logistic regression from codes to labels.

  Args:
    train_codes: [N, latent_dim] codes (e.g. posterior means) of the probe's training examples.
    train_labels: [N] their integer labels, at least 2 classes.
    test_codes: [M, latent_dim] held-out codes.
    test_labels: [M] their labels.
    seed: the regression's random_state.
    max_iter: lbfgs iterations.

  Returns:
    The fraction of held-out codes whose label the probe predicts.
  """
  train_codes, train_labels = _check_codes_and_labels(train_codes, train_labels, "train_")
  test_codes, test_labels = _check_codes_and_labels(test_codes, test_labels, "test_")
  if test_codes.shape[1] != train_codes.shape[1]:
    raise ValueError(f"test_codes must have the training codes' dimension {train_codes.shape[1]}, got "
                     f"{test_codes.shape}")
  if len(np.unique(train_labels)) < 2:
    raise ValueError("a probe needs at least 2 classes among train_labels")
  checks.check_positive_int(max_iter, "max_iter")
  probe = sklearn.pipeline.make_pipeline(
      sklearn.preprocessing.StandardScaler(),
      sklearn.linear_model.LogisticRegression(max_iter=max_iter, random_state=seed))
  probe.fit(train_codes, train_labels)
  return float(np.mean(probe.predict(test_codes) == test_labels))


def clustering_agreement(codes, labels, *, num_clusters: Optional[int] = None, seed: int = 0) -> dict[str, float]:
  """NMI and ARI between k-means clusters of the codes and the labels.

  Args:
    codes: [N, latent_dim] codes.
    labels: [N] integer labels.
    num_clusters: k (at most N); default the number of distinct labels.
    seed: `KMeans`'s random_state (10 initializations, the best kept).

  Returns:
    {'nmi', 'ari'}: Python floats.
  """
  codes, labels = _check_codes_and_labels(codes, labels, "")
  num_clusters = len(np.unique(labels)) if num_clusters is None else num_clusters
  checks.check_positive_int(num_clusters, "num_clusters")
  if num_clusters > len(codes):
    raise ValueError(f"num_clusters must be at most the number of codes ({len(codes)}), got {num_clusters}")
  clusters = sklearn.cluster.KMeans(num_clusters, n_init=10, random_state=seed).fit_predict(codes)
  return {"nmi": float(sklearn.metrics.normalized_mutual_info_score(labels, clusters)),
          "ari": float(sklearn.metrics.adjusted_rand_score(labels, clusters))}
