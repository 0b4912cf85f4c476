"""Sample-quality metrics on feature arrays against pytorch-fid, torch-fidelity, prdc and closed forms.

The reference functions run from the installed packages' source (tests/reference.py); tolerances
are the measured differences with a margin, and say where the reference itself is the less exact.
"""
import contextlib
import io

import jax
import numpy as np
import prdc
import pytest
import scipy.linalg
import torch

from gen_jax.eval import frechet, inception_score, kernel_distance, manifold_metrics, statistics
from tests.reference import reference_functions


def _vassert(condition, message):
  if not condition:
    raise ValueError(message)


# torch-fidelity's helpers, reduced to what its metric functions use; every kwarg is passed explicitly.
_TORCH_FIDELITY = dict(np=np, torch=torch, tqdm=lambda iterable, **kwargs: iterable, vassert=_vassert,
                       vprint=lambda verbose, message: None, get_kwarg=lambda name, kwargs: kwargs[name],
                       KEY_METRIC_KID_MEAN="mean", KEY_METRIC_KID_STD="std",
                       KEY_METRIC_ISC_MEAN="mean", KEY_METRIC_ISC_STD="std")


def _pytorch_fid_distance():
  return reference_functions("pytorch-fid", "pytorch_fid/fid_score.py", ["calculate_frechet_distance"],
                             {"np": np, "linalg": scipy.linalg})["calculate_frechet_distance"]


def _features(seed, num, dim, scale=1.0, shift=0.0):
  """Non-negative, correlated features (like post-ReLU pool3 activations)."""
  rng = np.random.default_rng(seed)
  mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
  return np.abs(rng.normal(size=(num, dim)) @ mixing) * scale + shift


def test_streaming_statistics_over_uneven_batches_equal_numpy_mean_and_cov():
  features = _features(0, 203, 16) + 1e3  # a large mean: sum(x x^T) - n mu mu^T would lose ~6 digits
  state = statistics.init_statistics(16)
  for start, stop in [(0, 1), (1, 50), (50, 50), (50, 177), (177, 203)]:
    state = statistics.update_statistics(state, features[start:stop])
  stats = statistics.finalize_statistics(state)
  expected_sigma = np.cov(features, rowvar=False)
  assert stats.num == 203 and stats.mu.dtype == stats.sigma.dtype == np.float64
  np.testing.assert_allclose(stats.mu, features.mean(axis=0), rtol=1e-14)
  np.testing.assert_allclose(stats.sigma, expected_sigma, rtol=1e-11, atol=1e-12 * np.abs(expected_sigma).max())
  one_batch = statistics.statistics_of(features)
  np.testing.assert_allclose(one_batch.sigma, expected_sigma, rtol=1e-11, atol=1e-12 * np.abs(expected_sigma).max())


def test_statistics_npz_round_trip_and_a_pytorch_fid_file(tmp_path):
  stats = statistics.statistics_of(_features(1, 50, 8))
  path = tmp_path / "stats"  # no .npz: written to exactly this path
  statistics.save_statistics(path, stats)
  loaded = statistics.load_statistics(path)
  np.testing.assert_array_equal(loaded.mu, stats.mu)
  np.testing.assert_array_equal(loaded.sigma, stats.sigma)
  assert loaded.num == 50
  with np.load(path) as f:  # what pytorch-fid's compute_statistics_of_path reads
    np.testing.assert_array_equal(f["mu"][:], stats.mu)
  pytorch_fid_file = str(tmp_path / "pytorch_fid.npz")
  np.savez(pytorch_fid_file, mu=stats.mu.astype(np.float32), sigma=stats.sigma)
  from_pytorch_fid = statistics.load_statistics(pytorch_fid_file)
  assert from_pytorch_fid.num is None and from_pytorch_fid.mu.dtype == np.float64
  np.testing.assert_allclose(from_pytorch_fid.mu, stats.mu, rtol=1e-6)
  np.savez(str(tmp_path / "no_sigma.npz"), mu=stats.mu)
  with pytest.raises(ValueError, match="'sigma'"):
    statistics.load_statistics(str(tmp_path / "no_sigma.npz"))
  np.savez(str(tmp_path / "mismatch.npz"), mu=stats.mu, sigma=stats.sigma[:7, :7])
  with pytest.raises(ValueError, match=r"sigma \[D, D\] of the same D"):
    statistics.load_statistics(str(tmp_path / "mismatch.npz"))


def test_frechet_distance_equals_pytorch_fid():
  reference = _pytorch_fid_distance()
  a = statistics.statistics_of(_features(2, 500, 64))
  b = statistics.statistics_of(_features(3, 500, 64, scale=1.2, shift=0.1))
  # Measured 3e-14 relative: both are exact here up to float64 round-off.
  np.testing.assert_allclose(frechet.frechet_distance_from_statistics(a, b),
                             reference(a.mu, a.sigma, b.mu, b.sigma), rtol=1e-10)


def test_frechet_distance_with_singular_covariances_equals_the_nuclear_norm_form():
  # Fewer samples than dimensions: rank-39 and rank-42 covariances in 64 dimensions.
  x, y = _features(4, 40, 64), _features(5, 43, 64, scale=1.2, shift=0.1)
  a, b = statistics.statistics_of(x), statistics.statistics_of(y)
  # Independent truth: with S1 = A^T A, S2 = B^T B (A = centred x / sqrt(n - 1)),
  # tr((S1^{1/2} S2 S1^{1/2})^{1/2}) is the nuclear norm of A B^T, a small [40, 43] matrix.
  centred_a = (x - x.mean(0)) / np.sqrt(len(x) - 1)
  centred_b = (y - y.mean(0)) / np.sqrt(len(y) - 1)
  trace_sqrt = np.linalg.svd(centred_a @ centred_b.T, compute_uv=False).sum()
  truth = np.sum((a.mu - b.mu) ** 2) + np.trace(a.sigma) + np.trace(b.sigma) - 2 * trace_sqrt
  distance = frechet.frechet_distance_from_statistics(a, b)
  np.testing.assert_allclose(distance, truth, rtol=1e-10)  # measured 1e-15
  # pytorch-fid's sqrtm of the singular, non-symmetric product is the less exact: measured 2e-8.
  with contextlib.redirect_stdout(io.StringIO()):  # it prints when it falls back to adding eps
    np.testing.assert_allclose(distance, _pytorch_fid_distance()(a.mu, a.sigma, b.mu, b.sigma), rtol=1e-6)
  assert abs(frechet.frechet_distance_from_statistics(a, a)) < 1e-9 * np.trace(a.sigma)


def test_frechet_distance_of_identical_statistics_is_zero_and_invariant_to_permuting_dims():
  a = statistics.statistics_of(_features(6, 300, 32))
  b = statistics.statistics_of(_features(7, 300, 32, scale=0.8))
  assert abs(frechet.frechet_distance(a.mu, a.sigma, a.mu, a.sigma)) < 1e-10
  perm = np.random.default_rng(8).permutation(32)
  permuted = frechet.frechet_distance(a.mu[perm], a.sigma[np.ix_(perm, perm)], b.mu[perm],
                                      b.sigma[np.ix_(perm, perm)])
  np.testing.assert_allclose(permuted, frechet.frechet_distance_from_statistics(a, b), rtol=1e-10)


def _torch_fidelity_kid(features_1, features_2, num_subsets, subset_size):
  kid = reference_functions("torch-fidelity", "torch_fidelity/metric_kid.py",
                            ["mmd2", "kernel_poly", "kernel_rbf", "kernel_mmd", "kid_features_to_metric"],
                            _TORCH_FIDELITY)["kid_features_to_metric"]
  result = kid(torch.from_numpy(features_1), torch.from_numpy(features_2), kid_subsets=num_subsets,
               kid_subset_size=subset_size, verbose=False, rng_seed=2020, kid_kernel="poly",
               kid_kernel_poly_degree=3, kid_kernel_poly_gamma=None, kid_kernel_poly_coef0=1)
  return result["mean"], result["std"]


def test_kernel_inception_distance_equals_torch_fidelity():
  x = _features(9, 300, 64).astype(np.float32)
  y = _features(10, 250, 64, shift=0.3).astype(np.float32)
  ours = kernel_distance.kernel_inception_distance(x, y, num_subsets=20, subset_size=100)
  # Same subsets, both float32: measured 1e-8 (mean) and 1e-6 (std, a difference of subset values).
  np.testing.assert_allclose(ours, _torch_fidelity_kid(x, y, 20, 100), rtol=1e-5)


def test_kernel_inception_distance_of_one_distribution_is_near_zero_as_in_torch_fidelity():
  x, y = np.split(_features(11, 600, 64).astype(np.float32), 2)
  mean, std = kernel_distance.kernel_inception_distance(x, y, num_subsets=10, subset_size=150)
  # KID ~ 5e-3 is a difference of kernel means ~ 4: float32 leaves ~1e-8 of that scale, in
  # torch-fidelity too (1.4e-7 on the std), so compare with its float64 run, absolutely (measured 3e-8).
  reference_mean, reference_std = _torch_fidelity_kid(x.astype(np.float64), y.astype(np.float64), 10, 150)
  np.testing.assert_allclose([mean, std], [reference_mean, reference_std], rtol=0, atol=1e-6)
  assert abs(mean) < 3 * std  # an unbiased estimate of 0


def _torch_fidelity_inception_score(logits, num_splits, shuffle):
  score = reference_functions("torch-fidelity", "torch_fidelity/metric_isc.py", ["isc_features_to_metric"],
                              _TORCH_FIDELITY)["isc_features_to_metric"]
  result = score(torch.from_numpy(logits), num_splits, shuffle, 2020)
  return result["mean"], result["std"]


@pytest.mark.parametrize("num, num_classes, num_splits, shuffle", [(1000, 1008, 10, True), (997, 100, 7, False)])
def test_inception_score_equals_torch_fidelity(num, num_classes, num_splits, shuffle):
  logits = (np.random.default_rng(13).normal(size=(num, num_classes)) * 4).astype(np.float32)
  expected = _torch_fidelity_inception_score(logits, num_splits, shuffle)
  mean, std = inception_score.inception_score(logits, num_splits=num_splits, shuffle=shuffle)
  # float32 softmax against torch-fidelity's float64: measured 4e-7 (mean), 5e-6 (std).
  np.testing.assert_allclose(mean, expected[0], rtol=2e-6)
  np.testing.assert_allclose(std, expected[1], rtol=5e-5)
  with jax.enable_x64(True):  # float64 throughout: the same numbers to round-off
    np.testing.assert_allclose(inception_score.inception_score(logits, num_splits=num_splits, shuffle=shuffle),
                               expected, rtol=1e-12)


def test_inception_score_of_confident_balanced_predictions_is_the_number_of_classes():
  logits = 50.0 * np.eye(8)[np.arange(800) % 8]  # each split holds every class equally, p(y|x) one-hot
  mean, std = inception_score.inception_score(logits, num_splits=10, shuffle=False)
  np.testing.assert_allclose([mean, std], [8.0, 0.0], atol=1e-4)


@pytest.mark.parametrize("dtype, block_size", [(np.float32, 64), (np.float64, 1024)])
def test_precision_recall_density_coverage_equal_prdc(dtype, block_size):
  real = _features(14, 300, 32).astype(dtype)
  fake = _features(15, 350, 32, scale=1.1, shift=0.05).astype(dtype)
  with contextlib.redirect_stdout(io.StringIO()):  # compute_prdc prints the sample counts
    expected = prdc.compute_prdc(real, fake, nearest_k=5)
  ours = manifold_metrics.precision_recall_density_coverage(real, fake, 5, block_size=block_size)
  assert set(ours) == {"precision", "recall", "density", "coverage"}
  for name, value in expected.items():  # counts of the same neighbours: equal to float64 round-off
    np.testing.assert_allclose(ours[name], value, rtol=1e-12, err_msg=name)
  assert 0 < ours["precision"] < 1 and 0 < ours["coverage"] < 1  # the comparison is not vacuous


def test_bad_inputs_raise_value_errors_naming_what_was_expected():
  x, y = np.ones((20, 4)), np.ones((20, 5))
  with pytest.raises(ValueError, match="mu2 must have shape"):
    frechet.frechet_distance(np.zeros(4), np.eye(4), np.zeros(5), np.eye(5))
  with pytest.raises(ValueError, match=r"sigma2 must have shape \[D, D\]"):
    frechet.frechet_distance(np.zeros(4), np.eye(4), np.zeros(4), np.eye(5))
  with pytest.raises(ValueError, match="positive semi-definite"):
    frechet.frechet_distance(np.zeros(2), np.eye(2), np.zeros(2), -np.eye(2))
  with pytest.raises(ValueError, match="same feature dimension"):
    kernel_distance.kernel_inception_distance(x, y, subset_size=10)
  with pytest.raises(ValueError, match=r"subset_size must be at most the number of samples"):
    kernel_distance.kernel_inception_distance(x, x, subset_size=21)
  with pytest.raises(ValueError, match="same feature dimension"):
    manifold_metrics.precision_recall_density_coverage(x, y, 3)
  with pytest.raises(ValueError, match="nearest_k must be a positive integer"):
    manifold_metrics.precision_recall_density_coverage(x, x, 0)
  with pytest.raises(ValueError, match="nearest_k must be less than"):
    manifold_metrics.precision_recall_density_coverage(x, x, 20)
  with pytest.raises(ValueError, match=r"rank 2 \[N, D\]"):
    manifold_metrics.precision_recall_density_coverage(np.ones(20), x, 3)
  with pytest.raises(ValueError, match=r"rank 2 \[N, C\]"):
    inception_score.inception_score(np.ones((2, 3, 4)))
  with pytest.raises(ValueError, match="at least num_splits"):
    inception_score.inception_score(np.ones((5, 3)), num_splits=10)
  with pytest.raises(ValueError, match=r"features_batch must have shape \[B, 4\]"):
    statistics.update_statistics(statistics.init_statistics(4), y)
  with pytest.raises(ValueError, match="at least 2 feature vectors"):
    statistics.statistics_of(np.ones((1, 4)))
