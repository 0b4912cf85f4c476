"""Sample-quality metrics of generated images against real ones, through one feature network.

`sample_quality(network, real, fake, metrics)` extracts the features each metric needs once and
returns {name: float}:
  fid                       Frechet distance of pool3-style features (Heusel et al. 2017)
  sfid                      the same on spatial features (Nash et al. 2021)
  kid_mean, kid_std         kernel distance over subsets (Binkowski et al. 2018)
  is_mean, is_std           Inception Score of the fake images' logits (Salimans et al. 2016)
  precision, recall         k-NN manifolds (Kynkaanniemi et al. 2019)
  density, coverage         (Naeem et al. 2020)
`real` and `fake` are uint8 [N, H, W, C] arrays, iterables of such arrays, or feature dicts
already extracted by `features.extract_features` (e.g. the real set's, computed once per run).
"""

from gen_jax.eval import features as features_lib
from gen_jax.eval import frechet
from gen_jax.eval import inception_score as inception_score_lib
from gen_jax.eval import kernel_distance
from gen_jax.eval import manifold_metrics
from gen_jax.eval import statistics

METRICS = ("fid", "sfid", "kid", "is", "prdc")
_OUTPUTS = {"fid": "features", "kid": "features", "prdc": "features", "sfid": "spatial", "is": "logits"}


def check_metric_names(metrics):
  unknown = [m for m in metrics if m not in METRICS]
  if unknown or not metrics:
    raise ValueError(f"unknown sample-quality metrics {unknown or '(none given)'}: expected names from {METRICS}")
  return tuple(metrics)


def needed_outputs(metrics, for_real=True):
  """The feature-network outputs the metrics need (the Inception Score needs only the fake logits)."""
  return tuple(sorted({_OUTPUTS[m] for m in check_metric_names(metrics) if for_real is False or m != "is"}))


def _features(network, images, outputs, batch_size):
  if isinstance(images, dict):
    missing = [name for name in outputs if name not in images]
    if missing:
      raise ValueError(f"the given features lack {missing}: expected a dict with {list(outputs)}")
    return images
  return features_lib.extract_features(network, images, batch_size, outputs)


def sample_quality(network, real, fake, metrics=("fid",), *, batch_size=50, nearest_k=5,
                   kid_subsets=100, kid_subset_size=1000, is_splits=10, seed=2020):
  """{metric: value} for `metrics` (see the module docstring); KID's subsets are capped at the set sizes."""
  metrics = check_metric_names(metrics)
  real_features = _features(network, real, needed_outputs(metrics, for_real=True), batch_size) \
      if set(metrics) - {"is"} else {}
  fake_features = _features(network, fake, needed_outputs(metrics, for_real=False), batch_size)
  results = {}
  for name in metrics:
    if name in ("fid", "sfid"):
      key = _OUTPUTS[name]
      results[name] = frechet.frechet_distance_from_statistics(
          statistics.statistics_of(real_features[key]), statistics.statistics_of(fake_features[key]))
    elif name == "kid":
      size = min(kid_subset_size, len(real_features["features"]), len(fake_features["features"]))
      results["kid_mean"], results["kid_std"] = kernel_distance.kernel_inception_distance(
          real_features["features"], fake_features["features"], num_subsets=kid_subsets, subset_size=size,
          seed=seed)
    elif name == "is":
      results["is_mean"], results["is_std"] = inception_score_lib.inception_score(
          fake_features["logits"], num_splits=is_splits, seed=seed)
    elif name == "prdc":
      results.update(manifold_metrics.precision_recall_density_coverage(
          real_features["features"], fake_features["features"], nearest_k))
  return {k: float(v) for k, v in results.items()}
