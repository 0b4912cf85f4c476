"""Evaluation: what makes a generative model good, measured as the references measure it.

Sample quality (uint8 images in, through a feature network):
  features.inception_network()       the FID Inception network (inception.py; weights via
                                     inception_weights.py, read by torch_archive.py; resize.py)
  domain_features.DomainClassifier(...).feature_network()   gen_jax's own classifier (loaded from a
                                     run by gen_jax.drivers.scoring.load_domain_classifier)
  sample_quality.sample_quality(network, real, fake, ("fid", "sfid", "kid", "is", "prdc"))
  frechet_distance, kernel_inception_distance, precision_recall_density_coverage,
  inception_score.inception_score (modules named like their function are not re-exported)
  statistics_of / save_statistics / load_statistics (pytorch-fid's .npz)
Likelihood (likelihood.py): evaluate_likelihood, in nats and bits/dim, estimator named.
During training: training_metrics.py. Everything here takes arrays and feature functions and imports no
model family, run or loop; loading runs and the command lines are the driver layer's (gen_jax.drivers,
gen_jax.cli).
"""
from gen_jax.eval.frechet import frechet_distance, frechet_distance_from_statistics
from gen_jax.eval.kernel_distance import kernel_inception_distance
from gen_jax.eval.manifold_metrics import precision_recall_density_coverage
from gen_jax.eval.statistics import (FeatureStatistics, load_statistics, save_statistics,
                                     statistics_of)

__all__ = [
    "FeatureStatistics", "frechet_distance", "frechet_distance_from_statistics",
    "kernel_inception_distance", "load_statistics", "precision_recall_density_coverage",
    "save_statistics", "statistics_of",
]
