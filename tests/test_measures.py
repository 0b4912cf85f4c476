"""Issue 18's measures against cases whose answer is known: FID-infinity, data copying, authenticity,
perceptual path length, linear probes and clustering of codes, the typicality test."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest
import scipy.stats
import sklearn.neighbors
import threadpoolctl

from gen_jax.eval.fid_infinity import fid_at_sample_counts, fid_infinity
from gen_jax.eval.frechet import frechet_distance
from gen_jax.eval.latent_structure import clustering_agreement, linear_probe_accuracy
from gen_jax.eval.memorization import authenticity, data_copying_test
from gen_jax.eval.outlier import auroc, typicality_scores
from gen_jax.eval.path_length import endpoint_distances, path_lengths, percentile_filtered_mean, perceptual_path_length


@pytest.fixture(autouse=True, scope="module")
def one_thread():
  """sklearn's and BLAS's thread pools spin against each other on small data on a shared 2-core machine."""
  with threadpoolctl.threadpool_limits(1):
    yield


def test_fid_infinity_removes_the_bias_of_one_gaussian_against_itself():
  rng = np.random.default_rng(0)
  real, fake = rng.normal(size=(20000, 8)), rng.normal(size=(5000, 8))
  result = fid_infinity(real, fake, rng)
  np.testing.assert_array_equal(result.counts, np.linspace(500, 5000, 15).astype(int))  # scaled by 5000/50000
  assert np.all(result.fids > 0) and result.fids[0] > 3 * result.fids[-1] and result.slope > 0
  # E[FID_N] ~ k (1/N + 1/20000): the intercept keeps only the real set's k / 20000.
  assert abs(result.fid_infinity) < 0.1 * result.fids[0]
  np.testing.assert_allclose(result.fid_infinity + result.slope / result.counts, result.fids,
                             atol=0.3 * result.fids[0])


def test_fid_infinity_finds_the_closed_form_frechet_distance():
  rng = np.random.default_rng(1)
  scale, mean = np.array([2.0, 1, 1, 1, 1, 1, 1, 0.5]), np.eye(8)[0]
  real, fake = rng.normal(size=(20000, 8)), mean + scale * rng.normal(size=(20000, 8))
  closed_form = frechet_distance(np.zeros(8), np.eye(8), mean, np.diag(scale ** 2))
  assert closed_form == pytest.approx(1 + 1 + 0.25)
  result = fid_infinity(real, fake, 1, counts=[2000, 5000, 10000, 20000])
  np.testing.assert_array_equal(result.counts, [2000, 5000, 10000, 20000])
  assert result.fid_infinity == pytest.approx(closed_form, abs=0.1)
  np.testing.assert_allclose(fid_at_sample_counts(real, fake, [20000]), result.fids[-1:])  # all of them: no draw


def test_fid_infinity_checks_its_inputs():
  features = np.zeros((10, 3))
  with pytest.raises(ValueError, match="feature dimension"):
    fid_infinity(features, np.zeros((10, 4)))
  with pytest.raises(ValueError, match=r"\[2, M = 10\]"):
    fid_infinity(features, features, counts=[5, 11])
  with pytest.raises(ValueError, match="2 distinct counts"):
    fid_infinity(features, features, counts=[5, 5])
  with pytest.raises(ValueError, match="rank 2"):
    fid_at_sample_counts(features[0], features, [5])


def _gaussian_sets(rng, dim=3):
  return (rng.normal(size=(1000, dim)), rng.normal(size=(500, dim)), rng.normal(size=(500, dim)))


def test_data_copying_test_tells_copies_from_fresh_and_from_underfitting_samples():
  rng = np.random.default_rng(0)
  train, test, fresh = _gaussian_sets(rng)
  fresh_result = data_copying_test(train, test, fresh, 5)
  assert abs(fresh_result.statistic) < 2 and fresh_result.cells_used == 5
  copies = train[:500] + 1e-3 * rng.normal(size=(500, 3))
  assert data_copying_test(train, test, copies, 5).statistic < -5
  assert data_copying_test(train, test, 2 * fresh, 5).statistic > 2  # farther from the data: underfitting
  # Copies of one half-space's training points: the cells of the other half hold no generated point.
  one_side = train[train[:, 0] > 0.5][:200]
  result = data_copying_test(train, test, one_side, 5)
  assert result.cells_used < 5 and np.isnan(result.cell_z_scores).sum() == 5 - result.cells_used
  assert result.statistic < -5
  used = result.cell_z_scores[~np.isnan(result.cell_z_scores)]
  assert used.min() <= result.statistic <= used.max()  # a weighted mean of the cells kept


def test_data_copying_test_in_one_cell_is_the_mann_whitney_z_score():
  rng = np.random.default_rng(1)
  train, test, generated = rng.normal(size=(200, 4)), rng.normal(size=(80, 4)), 0.8 * rng.normal(size=(60, 4))
  nearest = sklearn.neighbors.NearestNeighbors(n_neighbors=1).fit(train)
  u = scipy.stats.mannwhitneyu(nearest.kneighbors(generated)[0][:, 0], nearest.kneighbors(test)[0][:, 0]).statistic
  z = (u - 80 * 60 / 2) / np.sqrt(80 * 60 * (80 + 60 + 1) / 12)
  result = data_copying_test(train, test, generated, 1)
  assert result.statistic == pytest.approx(z, rel=1e-6) and result.cells_used == 1


def test_data_copying_test_checks_its_inputs():
  rng = np.random.default_rng(0)
  train, test, fresh = _gaussian_sets(rng)
  with pytest.raises(ValueError, match="at most the number of training points"):
    data_copying_test(train[:4], test, fresh, 5)
  with pytest.raises(ValueError, match="D = 3"):
    data_copying_test(train, test, fresh[:, :2])
  with pytest.raises(ValueError, match="tau"):
    data_copying_test(train, test, fresh, tau=1.5)


def test_authenticity_of_copies_and_of_fresh_draws():
  rng = np.random.default_rng(0)
  train, generated = rng.normal(size=(4000, 2)), rng.normal(size=(2000, 2))
  assert authenticity(train, train[:500]) == 0.0
  # Fresh draws are unauthentic when they and their nearest training point are mutual nearest
  # neighbours: probability 1 / (2 - c) with c the covered fraction of a disc by an equal disc
  # centred on its boundary (module doc).
  lens = (2 * np.pi / 3 - np.sqrt(3) / 2) / np.pi
  assert authenticity(train, generated, block_size=300) == pytest.approx(1 - 1 / (2 - lens), abs=0.05)
  with pytest.raises(ValueError, match="at least 2 training points"):
    authenticity(train[:1], generated)


def _linear_generator(matrix):
  return lambda z: z @ matrix.T


def test_path_length_of_a_linear_generator_on_lines():
  matrix = np.random.default_rng(0).normal(size=(3, 4)).astype(np.float32)
  sample = lambda key, num: jax.random.normal(key, (num, 4))
  lengths = path_lengths(_linear_generator(matrix), sample, jax.random.key(0), 2000, batch_size=300)
  assert lengths.shape == (2000,)
  # d / eps^2 = ||A (z2 - z1)||^2 exactly; z2 - z1 ~ N(0, 2 I): mean 2 tr(A^T A).
  expected = 2 * np.trace(matrix.T @ matrix)
  standard_error = lengths.std() / np.sqrt(len(lengths))
  assert lengths.mean() == pytest.approx(expected, abs=4 * standard_error)
  assert perceptual_path_length(_linear_generator(matrix), sample, jax.random.key(0), 2000, batch_size=300,
                                filter_outliers=False) == pytest.approx(lengths.mean())
  # The same draws whatever the batches (the last one padded); features enter the default distance.
  np.testing.assert_allclose(path_lengths(lambda z: z, sample, jax.random.key(0), 2000, batch_size=2000,
                                          features=_linear_generator(matrix)), lengths, rtol=1e-2)


def test_path_length_over_endpoint_distance_is_one_for_a_linear_generator_and_more_for_a_bent_one():
  matrix = np.random.default_rng(1).normal(size=(3, 4)).astype(np.float32)
  sample = lambda key, num: jax.random.normal(key, (num, 4))
  key = jax.random.key(2)
  linear = _linear_generator(matrix)
  # A linear G moves straight at constant speed: every pair's d / eps^2 equals its ||G(z2) - G(z1)||^2.
  np.testing.assert_allclose(path_lengths(linear, sample, key, 500), endpoint_distances(linear, sample, key, 500,
                                                                                         batch_size=128), rtol=2e-2)
  bent = lambda z: jnp.sin(3 * linear(z))
  ratio = path_lengths(bent, sample, key, 2000).mean() / endpoint_distances(bent, sample, key, 2000).mean()
  assert ratio > 2


def test_path_length_on_the_unit_circle():
  sample = lambda key, num: jax.random.normal(key, (num, 2))
  lengths = path_lengths(lambda z: 3 * z, sample, jax.random.key(1), 4000, path="spherical")
  # Speed w on the circle, w uniform on [0, pi] between two Gaussian directions: E 9 w^2 = 9 pi^2 / 3.
  assert lengths.mean() == pytest.approx(3 * np.pi ** 2, rel=0.06)
  assert lengths.max() <= 9 * np.pi ** 2 * 1.01


def test_percentile_filter_and_path_length_checks():
  # 1,000 values: the 1st percentile ('lower') is the 10th smallest, the 99th ('higher') the 10th largest.
  values = np.random.default_rng(0).permutation(np.concatenate([np.arange(991.0), np.full(9, 1e6)]))
  assert percentile_filtered_mean(values) == pytest.approx(np.arange(9.0, 991.0).mean())
  sample = lambda key, num: jnp.zeros((num, 2))
  with pytest.raises(ValueError, match="path must be one of"):
    path_lengths(lambda z: z, sample, jax.random.key(0), 4, path="geodesic")
  with pytest.raises(ValueError, match="not both"):
    path_lengths(lambda z: z, sample, jax.random.key(0), 4, distance=lambda a, b: a, features=lambda x: x)
  with pytest.raises(ValueError, match="one distance per example"):
    path_lengths(lambda z: z, sample, jax.random.key(0), 4, distance=lambda a, b: a - b)
  with pytest.raises(ValueError, match=r"latents \[4, \.\.\.\]"):
    path_lengths(lambda z: z, lambda key, num: jnp.zeros((2,)), jax.random.key(0), 4)


def _classes(rng, num, num_classes=3, dim=5, separation=20.0):
  labels = rng.integers(0, num_classes, num)
  return separation * np.eye(num_classes, dim)[labels] + rng.normal(size=(num, dim)), labels


def test_linear_probe_reads_linear_labels_and_not_random_ones():
  rng = np.random.default_rng(0)
  codes = rng.normal(size=(400, 20))
  labels = (codes @ rng.normal(size=20) > 0).astype(int)
  assert linear_probe_accuracy(codes[:300], labels[:300], codes[300:], labels[300:]) > 0.9
  random_labels = rng.integers(0, 2, 400)
  # Held out: chance (a probe scored on its own 100 codes in 20-D fits random labels well above it).
  assert abs(linear_probe_accuracy(codes[:100], random_labels[:100], codes[100:], random_labels[100:])
             - 0.5) < 0.1
  with pytest.raises(ValueError, match="integer class labels"):
    linear_probe_accuracy(codes, labels[:-1], codes, labels)
  with pytest.raises(ValueError, match="2 classes"):
    linear_probe_accuracy(codes, np.zeros(400, int), codes, labels)


def test_clustering_agreement_of_separated_and_random_labels():
  rng = np.random.default_rng(0)
  codes, labels = _classes(rng, 300)
  assert clustering_agreement(codes, labels) == pytest.approx({"nmi": 1.0, "ari": 1.0})
  scores = clustering_agreement(codes, rng.integers(0, 3, 300))
  assert abs(scores["nmi"]) < 0.05 and abs(scores["ari"]) < 0.05
  with pytest.raises(ValueError, match="at most the number of codes"):
    clustering_agreement(codes[:2], labels[:2], num_clusters=3)


def test_typicality_flags_the_mode_that_the_likelihood_calls_most_likely():
  rng = np.random.default_rng(0)
  dim = 50
  nll = lambda x: 0.5 * np.sum(x ** 2, axis=1) + dim / 2 * np.log(2 * np.pi)  # N(0, I) model
  held_out, inliers, near_mode = (nll(rng.normal(size=(n, dim)) * s) for n, s in ((500, 1), (200, 1), (200, 0.1)))
  entropy = dim / 2 * (1 + np.log(2 * np.pi))
  assert np.mean(held_out) == pytest.approx(entropy, abs=1.0)
  assert auroc(inliers, near_mode) < 0.01  # the likelihood ranks the mode as the most normal
  assert auroc(typicality_scores(inliers, held_out), typicality_scores(near_mode, held_out)) > 0.99
  batch_scores = typicality_scores(near_mode, held_out, batch_size=10)
  np.testing.assert_allclose(batch_scores, np.abs(near_mode.reshape(20, 10).mean(1) - held_out.mean()))
  with pytest.raises(ValueError, match="multiple of batch_size"):
    typicality_scores(near_mode[:15], held_out, batch_size=10)


def test_auroc_of_identical_and_disjoint_scores():
  scores = np.random.default_rng(0).normal(size=100)
  assert auroc(scores, scores) == 0.5
  assert auroc(scores, scores + 100) == 1.0 and auroc(scores + 100, scores) == 0.0
