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
  fid_infinity.fid_infinity(real, fake, rng): FID at several sample counts, extrapolated to N -> inf
Likelihood (likelihood.py): evaluate_likelihood, in nats and bits/dim, estimator named.
Memorization (memorization.py, on features): data_copying_test (C_T), authenticity.
Outliers (outlier.py): auroc of a score, typicality_scores (the typicality test).
Latent space: path_length.perceptual_path_length(generate, sample_latents, rng, num);
  latent_structure.py: linear_probe_accuracy, clustering_agreement (NMI, ARI of k-means).
During training: training_metrics.py. Many processes (after jax.distributed.initialize): extract_features,
  feature_statistics, evaluate_likelihood take across_processes=True (chunk c on process c mod P, gathered
  once: across_processes.py), as the training loop's sample metrics do. Everything here takes arrays and feature functions and imports no
model family, run or loop; loading runs and the command lines are the driver layer's (gen_jax.drivers,
gen_jax.cli).
"""
from gen_jax.eval.frechet import frechet_distance, frechet_distance_from_statistics
from gen_jax.eval.kernel_distance import kernel_inception_distance
from gen_jax.eval.latent_structure import clustering_agreement, linear_probe_accuracy
from gen_jax.eval.manifold_metrics import precision_recall_density_coverage
from gen_jax.eval.memorization import authenticity, data_copying_test
from gen_jax.eval.outlier import auroc, typicality_scores
from gen_jax.eval.path_length import perceptual_path_length
from gen_jax.eval.statistics import (FeatureStatistics, load_statistics, save_statistics,
                                     statistics_of)

__all__ = [
    "FeatureStatistics", "auroc", "authenticity", "clustering_agreement", "data_copying_test",
    "frechet_distance", "frechet_distance_from_statistics", "kernel_inception_distance",
    "linear_probe_accuracy", "load_statistics", "perceptual_path_length",
    "precision_recall_density_coverage", "save_statistics", "statistics_of", "typicality_scores",
]
