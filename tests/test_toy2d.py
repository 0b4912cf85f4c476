"""Toy 2-D densities: normalisation, samples against the density, and against FFJORD's samplers."""
import math

import jax
import numpy as np
import pytest
from scipy import integrate
from sklearn import datasets as skd

from gen_jax.data import load_dataset, toy2d

WITH_DENSITY = ("two_moons", "eight_gaussians", "checkerboard", "rings", "swiss_roll", "grid25")
BOX = 4.4  # every density has negligible mass (< 1e-6) outside [-BOX, BOX]^2


def _grid(box, h):
  centres = np.arange(-box + h / 2, box, h, dtype=np.float64)
  xx, yy = np.meshgrid(centres, centres, indexing="ij")
  return np.stack([xx.ravel(), yy.ravel()], -1).astype(np.float32)


def _ffjord(name, rng, n):
  """FFJORD's lib/toy_data.py (Grathwohl et al. 2019), ported to numpy: the reference sampler.

  grid25 is not in FFJORD: its reference is PacGAN's 2DGrid config (fjxmlzn/PacGAN), 25 equal-weight
  Gaussians at {-4, -2, 0, 2, 4}^2 with variance 0.05^2.
  """
  if name == "grid25":
    means = np.array([(i, j) for i in range(-4, 5, 2) for j in range(-4, 5, 2)], np.float64)
    return means[rng.integers(25, size=n)] + 0.05 * rng.standard_normal((n, 2))
  if name == "two_moons":
    return skd.make_moons(n, noise=0.1, random_state=rng.integers(2**31))[0] * 2 + np.array([-1, -0.2])
  if name == "swiss_roll":
    return skd.make_swiss_roll(n, noise=1.0, random_state=rng.integers(2**31))[0][:, [0, 2]] / 5
  if name == "eight_gaussians":
    c = 1 / np.sqrt(2)
    centres = 4 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (c, c), (c, -c), (-c, c), (-c, -c)])
    return (rng.standard_normal((n, 2)) * 0.5 + centres[rng.integers(8, size=n)]) / 1.414
  if name == "checkerboard":
    x1 = rng.random(n) * 4 - 2
    x2 = rng.random(n) - rng.integers(0, 2, n) * 2 + np.floor(x1) % 2
    return np.stack([x1, x2], 1) * 2
  if name == "rings":
    angles = np.linspace(0, 2 * np.pi, n // 4, endpoint=False)
    circle = np.stack([np.cos(angles), np.sin(angles)], 1)
    x = np.concatenate([circle * r for r in (1.0, 0.75, 0.5, 0.25)]) * 3.0
    return x + rng.normal(scale=0.08, size=x.shape)
  if name == "pinwheel":
    rads = np.linspace(0, 2 * np.pi, 5, endpoint=False)
    features = rng.standard_normal((n // 5 * 5, 2)) * np.array([0.3, 0.1])
    features[:, 0] += 1.0
    labels = np.repeat(np.arange(5), n // 5)
    angles = rads[labels] + 0.25 * np.exp(features[:, 0])
    rotations = np.reshape(np.stack([np.cos(angles), -np.sin(angles), np.sin(angles), np.cos(angles)]).T,
                           (-1, 2, 2))
    return 2 * rng.permutation(np.einsum("ti,tij->tj", features, rotations))
  raise ValueError(name)


def _counts(x, edges):
  return np.histogram2d(x[:, 0], x[:, 1], bins=[edges, edges])[0].ravel()


@pytest.mark.parametrize("name", WITH_DENSITY)
def test_log_prob_integrates_to_one(name):
  # Midpoint rule on a grid finer than the smallest noise scale (0.08 for rings): the error is
  # exponentially small in (std / h)^2; checkerboard's grid is aligned with its squares (exact).
  h = 0.02 if name == "rings" else 0.04
  x = _grid(BOX if name != "checkerboard" else 4.0, h)
  total = np.sum(np.exp(np.asarray(toy2d.log_prob(name, x), np.float64))) * h * h
  assert total == pytest.approx(1.0, abs=2e-3)


@pytest.mark.parametrize("name", WITH_DENSITY)
def test_sample_histogram_matches_density(name):
  # Chi-square of 20k samples in 0.4 x 0.4 bins against bin masses integrated from exp(log_prob)
  # (8 x 8 midpoint sub-grid per bin); bins with expected count < 5 are pooled. The statistic must
  # stay below df + 6 sqrt(2 df) (p < 1e-6 under the null). A 5% wider sampler must fail it.
  n, width, sub = 20_000, 0.4, 8
  edges = np.arange(-4.0, 4.0 + 1e-9, width)
  centres = _grid(4.0, width / sub)  # sub-grid centres over [-4, 4)^2
  mass = np.exp(np.asarray(toy2d.log_prob(name, centres), np.float64)) * (width / sub) ** 2
  expected_p = np.histogram2d(centres[:, 0], centres[:, 1], bins=[edges, edges], weights=mass)[0].ravel()
  samples = np.asarray(toy2d.sample(name, jax.random.key(0), n))
  assert samples.shape == (n, 2) and samples.dtype == np.float32

  def chi2(x):
    observed = _counts(x, edges)
    observed = np.append(observed, n - observed.sum())  # mass outside [-4, 4)^2
    expected = np.append(expected_p, max(1.0 - expected_p.sum(), 0.0)) * n
    big = expected >= 5
    o = np.append(observed[big], observed[~big].sum())
    e = np.append(expected[big], expected[~big].sum())
    keep = e > 0
    return np.sum((o[keep] - e[keep]) ** 2 / e[keep]), keep.sum() - 1

  stat, df = chi2(samples)
  assert stat < df + 6 * math.sqrt(2 * df), (stat, df)
  wrong, _ = chi2(samples * 1.05)
  assert wrong > df + 6 * math.sqrt(2 * df), (wrong, df)


@pytest.mark.parametrize("name", toy2d.NAMES)
def test_sampler_matches_ffjord_convention(name):
  # Two-sample total variation on 0.5 x 0.5 bins between ours and FFJORD's numpy sampler;
  # the sampling noise alone gives TV ~ 0.02 here.
  n = 20_000
  ours = np.asarray(toy2d.sample(name, jax.random.key(1), n))
  ref = _ffjord(name, np.random.default_rng(0), n)
  # grid25's modes sit on the even integers: shift its bins so that none splits a mode (split modes
  # double the number of occupied bins and the sampling noise of TV with them).
  edges = np.arange(-6, 6 + 1e-9, 0.5) + (0.25 if name == "grid25" else 0.0)
  tv = 0.5 * np.abs(_counts(ours, edges) / len(ours) - _counts(ref, edges) / len(ref)).sum()
  assert tv < 0.05, tv


def _quad_curve_log_prob(x, mean_fn, t_lo, t_hi, std):
  f = lambda t: math.exp(-0.5 * np.sum((x - mean_fn(t)) ** 2) / std**2) / (2 * math.pi * std**2)
  return math.log(integrate.quad(f, t_lo, t_hi, epsabs=0, epsrel=1e-10, limit=500)[0] / (t_hi - t_lo))


def test_log_prob_against_scipy_quadrature():
  # Independent truths: scipy.quad over the curve parameter (moons, swiss roll) and over the ring
  # angle (the Bessel closed form), and the explicit Gaussian mixture.
  pts = np.array([[0.1, 0.3], [1.5, -0.4], [-2.0, 1.0], [0.0, 0.0], [2.9, 0.2], [-0.3, -2.4]], np.float32)
  x64 = pts.astype(np.float64)
  moons = [lambda t: np.array([-1 + 2 * math.cos(t), -0.2 + 2 * math.sin(t)]),
           lambda t: np.array([1 - 2 * math.cos(t), 0.8 - 2 * math.sin(t)])]
  ref = [math.log(0.5 * sum(math.exp(_quad_curve_log_prob(x, m, 0, math.pi, 0.2)) for m in moons))
         for x in x64]
  np.testing.assert_allclose(toy2d.log_prob("two_moons", pts), ref, atol=1e-4)
  roll = lambda t: np.array([t * math.cos(t), t * math.sin(t)]) / 5
  ref = [_quad_curve_log_prob(x, roll, 1.5 * math.pi, 4.5 * math.pi, 0.2) for x in x64]
  np.testing.assert_allclose(toy2d.log_prob("swiss_roll", pts), ref, atol=1e-4)
  ring = lambda r: (lambda a: r * np.array([math.cos(a), math.sin(a)]))
  ref = [math.log(0.25 * sum(math.exp(_quad_curve_log_prob(x, ring(r), 0, 2 * math.pi, 0.08))
                             for r in (0.75, 1.5, 2.25, 3.0))) for x in x64[:3]]  # others ~ e^-300
  np.testing.assert_allclose(toy2d.log_prob("rings", pts[:3]), ref, atol=1e-4)
  angles = np.arange(8) * math.pi / 4
  centres = 4 * np.stack([np.cos(angles), np.sin(angles)], 1) / 1.414
  std = 0.5 / 1.414
  dens = np.exp(-0.5 * np.sum((x64[:, None] - centres) ** 2, -1) / std**2) / (2 * math.pi * std**2)
  np.testing.assert_allclose(toy2d.log_prob("eight_gaussians", pts), np.log(dens.mean(1)), atol=1e-4)
  # FFJORD's sampler (before its final x2): floor(x1) even -> x2 in [0, 1) u [-2, -1), odd -> x2 in
  # [1, 2) u [-1, 0).
  board = np.array([[1.0, 1.0], [-3.0, 1.0], [3.0, -3.0], [-1.0, -1.0], [1.0, -1.0], [5.0, 0.0]],
                   np.float32)
  np.testing.assert_allclose(toy2d.log_prob("checkerboard", board),
                             [-math.log(32), -math.log(32), -np.inf, -math.log(32), -np.inf, -np.inf])


def test_true_nll_and_entropy():
  x = np.asarray(toy2d.sample("eight_gaussians", jax.random.key(2), 1000))
  assert float(toy2d.true_nll("eight_gaussians", x)) == pytest.approx(
      -float(np.mean(toy2d.log_prob("eight_gaussians", x))), rel=1e-6)
  # Checkerboard: -log p = log 32 for every sample.
  h, se = toy2d.entropy("checkerboard", jax.random.key(0), 10_000)
  assert h == pytest.approx(math.log(32), abs=1e-5) and se < 1e-5
  # Eight well-separated Gaussians (6 std apart): H ~ log 8 + log(2 pi e s^2), s = 0.5 / 1.414.
  h, se = toy2d.entropy("eight_gaussians", jax.random.key(0), 20_000)
  closed = math.log(8) + math.log(2 * math.pi * math.e * (0.5 / 1.414) ** 2)
  assert h == pytest.approx(closed, abs=max(4 * se, 0.01))


def test_gaussian_mixtures_modes_and_grid25():
  # mixture_modes: FFJORD's eight centres (in its own order) and std; the 5 x 5 grid.
  centres, std = toy2d.mixture_modes("eight_gaussians")
  c = 1 / np.sqrt(2)
  ffjord = 4 * np.array([(1, 0), (-1, 0), (0, 1), (0, -1), (c, c), (c, -c), (-c, c), (-c, -c)]) / 1.414
  distances = np.linalg.norm(centres[:, None] - ffjord[None], axis=-1)  # [8, 8], a permutation
  assert centres.shape == (8, 2) and np.all(np.sort(distances, axis=1)[:, 0] < 1e-6)
  assert sorted(np.argmin(distances, axis=1)) == list(range(8))
  assert std == pytest.approx(0.5 / 1.414)
  centres, std = toy2d.mixture_modes("grid25")
  assert centres.shape == (25, 2) and std == 0.05
  assert sorted(map(tuple, centres)) == [(i, j) for i in (-4, -2, 0, 2, 4) for j in (-4, -2, 0, 2, 4)]
  # The explicit mixture at points near and between modes.
  pts = np.array([[0.01, -0.02], [2.03, 3.98], [-4.0, 4.05], [1.0, 1.0], [0.06, 0.0]], np.float32)
  x64 = pts.astype(np.float64)
  dens = np.exp(-0.5 * np.sum((x64[:, None] - centres) ** 2, -1) / std**2) / (2 * math.pi * std**2)
  np.testing.assert_allclose(toy2d.log_prob("grid25", pts), np.log(dens.mean(1)), rtol=1e-5)
  # 25 modes 40 std apart: H = log 25 + log(2 pi e s^2) to well below the Monte-Carlo error.
  h, se = toy2d.entropy("grid25", jax.random.key(0), 20_000)
  assert h == pytest.approx(math.log(25) + math.log(2 * math.pi * math.e * 0.05**2), abs=max(4 * se, 0.01))
  data = load_dataset("toy2d/grid25", "test")
  assert data.data.shape == (10_000, 2) and data.data.dtype == np.float32
  with pytest.raises(ValueError, match="grid25"):
    toy2d.mixture_modes("two_moons")


def test_pinwheel_has_no_log_prob_and_bad_names_raise():
  assert not toy2d.has_log_prob("pinwheel")
  with pytest.raises(NotImplementedError, match="no closed-form"):
    toy2d.log_prob("pinwheel", np.zeros((3, 2), np.float32))
  with pytest.raises(ValueError, match="two_moons"):
    toy2d.sample("moons", jax.random.key(0), 10)
  with pytest.raises(ValueError, match=r"\('batch', 2\)"):
    toy2d.log_prob("rings", np.zeros((3, 3), np.float32))


def test_load_dataset_toy2d_fixed_seeded_splits():
  train = load_dataset("toy2d/two_moons", "train")
  test = load_dataset("toy2d/two_moons", "test")
  again = load_dataset("toy2d/two_moons", "test")
  assert train.data.shape == (50_000, 2) and test.data.shape == (10_000, 2)
  assert train.data.dtype == np.float32 and train.labels is None
  assert train.spec.kind == "vector" and train.spec.num_levels is None and train.spec.event_shape == (2,)
  np.testing.assert_array_equal(test.data, again.data)
  assert not np.allclose(train.data[:10_000], test.data)
  with pytest.raises(ValueError, match="validation"):
    load_dataset("toy2d/two_moons", "valid")
  with pytest.raises(ValueError, match="toy2d/checkerboard"):
    load_dataset("toy2d/checker", "train")
