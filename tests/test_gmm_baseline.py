"""The GaussianMixture baseline is scored with the same bound as the flows."""
import math

import jax
import numpy as np
from scipy import stats

from experiments.gmm_baseline import gmm_bits_per_dim
from gen_jax.data import load_dataset, uniform_dequantize


def test_one_component_gmm_equals_the_fitted_gaussian_density_minus_d_log_l():
  reg = 1e-2
  result = gmm_bits_per_dim("digits", [1], reg_covar=[reg])
  # Independent truth: the maximum-likelihood Gaussian (+ reg on the diagonal), scored by scipy.
  train_key, test_key = jax.random.split(jax.random.key(0))
  flat = lambda x, key: np.asarray(uniform_dequantize(key, x, 17), np.float64).reshape(len(x), -1)
  y_train = flat(load_dataset("digits", "train").data, train_key)
  y_test = flat(load_dataset("digits", "test").data, test_key)
  cov = np.cov(y_train, rowvar=False, bias=True) + reg * np.eye(64)
  log_p = stats.multivariate_normal(y_train.mean(0), cov).logpdf(y_test)
  nll = -(log_p - 64 * math.log(17)).mean()
  assert result["components"] == 1 and result["reg_covar"] == reg
  np.testing.assert_allclose(result["nll"], nll, rtol=1e-6)
  np.testing.assert_allclose(result["bpd"], nll / (64 * math.log(2)), rtol=1e-6)
