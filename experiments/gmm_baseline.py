"""Classical baseline: scikit-learn GaussianMixture on the dequantized data, scored like the flows.

The mixture is a density p on R^D fitted to uniformly dequantized train images y = (x + u) / L (the
number of components and the covariance floor chosen by the likelihood of a held-out 20% of the train
split, then refitted on all of it); its test bound is E_u[log p(y)] - D log L <= log P(x) (the same
`discrete_log_likelihood` the flows use), reported in nats per example and bits/dim of the discrete
data.

  python -m experiments.gmm_baseline --dataset=digits
  python -m experiments.gmm_baseline --dataset=mnist_split --components=1,2,5,10
"""
from __future__ import annotations

import json

import jax
import numpy as np
from absl import flags
from sklearn.mixture import GaussianMixture

from experiments import absl_app
from gen_jax import data as data_lib

_DATASET = flags.DEFINE_string("dataset", "digits", "Image dataset name (see gen_jax.data.load_dataset).")
_COMPONENTS = flags.DEFINE_list("components", ["1", "2", "5", "10", "20", "50"],
                                "Candidate numbers of components (chosen on held-out train data).")
_COVARIANCE = flags.DEFINE_enum("covariance", "full", ["full", "diag"], "Covariance type.")
_SEED = flags.DEFINE_integer("seed", 0, "Seed of the dequantization noise and of the fit.")
_REG_COVAR = flags.DEFINE_list("reg_covar", None, "Candidate floors added to the covariances' diagonal "
                               "(chosen on held-out train data); default 1, 10, 100 and 1000 times "
                               "1 / (12 L^2), the variance of the uniform dequantization noise.")


def gmm_bits_per_dim(dataset: str, components: list[int], covariance: str = "full", seed: int = 0,
                     data_dir: str | None = None, reg_covar: list[float] | None = None) -> dict[str, float]:
  train = data_lib.load_dataset(dataset, "train", data_dir)
  test = data_lib.load_dataset(dataset, "test", data_dir)
  spec = train.spec
  if spec.num_levels is None:
    raise ValueError(f"gmm_bits_per_dim needs discrete image data, got {dataset!r} (continuous)")
  # Covariance floors from the dequantization noise's own variance up: too low a floor overfits the
  # (nearly) constant border pixels, too high a floor blurs them.
  noise_variance = 1.0 / (12.0 * spec.num_levels ** 2)
  reg_covar = [noise_variance * f for f in (1, 10, 100, 1000)] if reg_covar is None else reg_covar
  train_key, test_key = jax.random.split(jax.random.key(seed))
  flat = lambda y: np.asarray(y, np.float64).reshape(len(y), -1)
  y_train = flat(data_lib.uniform_dequantize(train_key, train.data, spec.num_levels))
  y_test = flat(data_lib.uniform_dequantize(test_key, test.data, spec.num_levels))
  fit = lambda k, reg, y: GaussianMixture(k, covariance_type=covariance, reg_covar=reg, random_state=seed,
                                          max_iter=200).fit(y)
  order = np.random.default_rng(seed).permutation(len(y_train))
  held_out, rest = y_train[order[:len(order) // 5]], y_train[order[len(order) // 5:]]
  scores = {(k, reg): fit(k, reg, rest).score(held_out) for k in components for reg in reg_covar}
  best_k, best_reg = max(scores, key=scores.get)
  gmm = fit(best_k, best_reg, y_train)
  log_lik = np.asarray(data_lib.discrete_log_likelihood(gmm.score_samples(y_test), spec.num_dims,
                                                        spec.num_levels))
  nll = float(-log_lik.mean())
  return {"nll": nll, "bpd": float(data_lib.bits_per_dim(nll, spec.num_dims)), "components": best_k,
          "reg_covar": best_reg}


def main(argv):
  del argv
  components = [int(k) for k in _COMPONENTS.value]
  result = gmm_bits_per_dim(_DATASET.value, components, _COVARIANCE.value, _SEED.value,
                            reg_covar=None if _REG_COVAR.value is None else [float(r) for r in _REG_COVAR.value])
  print(json.dumps({"dataset": _DATASET.value, "model": "gmm", **result}))


if __name__ == "__main__":
  absl_app.run(main)
