"""Autoregressive models: causality by autodiff (every pixel, no blind spot), exact normalisation by
enumeration (PixelCNN) and by quadrature (MADE density), samplers against the model's and a fitted
target's probabilities (chi-square), errors on bad input, and the Task through the training loop.
"""
import itertools
import math

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from scipy import stats

from gen_jax.data.spec import DataSpec
from gen_jax.models.autoregressive import (Categorical, MADEDensity, MaskedConv2D, PixelCNN,
                                           autoregressive_task, pixelcnn_mask)
from gen_jax.models.autoregressive.pixelcnn import receptive_rows
from gen_jax.data.levels import levels_to_centres
from gen_jax.distributions import DiscretizedLogisticMixture
from gen_jax.data import load_dataset
from tests.run_contract import check_run_contract


def key(seed):
  return jax.random.key(seed, impl="rbg")  # cheap to compile on CPU (see tests/test_flows.py)


def perturb(variables, seed, scale=0.3):
  """Adds N(0, scale^2) noise to every parameter (zero biases would hide dependencies)."""
  rng = np.random.default_rng(seed)
  return jax.tree.map(lambda a: a + jnp.asarray(scale * rng.standard_normal(a.shape), a.dtype), variables)


def all_images(height, width, num_levels):
  """Every image of [height, width, 1] with levels < num_levels: uint8 [L^(H W), H, W, 1]."""
  values = itertools.product(range(num_levels), repeat=height * width)
  return np.array(list(values), np.uint8).reshape(-1, height, width, 1)


def tiny_pixelcnn(event_shape=(2, 2, 1), num_levels=2, **fields):
  options = dict(channels=8, num_layers=3, kernel_size=3, first_kernel_size=3, head_channels=16)
  return PixelCNN(event_shape=event_shape, num_levels=num_levels, **{**options, **fields})


def dependency(fn, x):
  """D[i, j] = True iff output pixel i depends on input pixel j (raster order), from the exact
  Jacobian of fn: [1, H, W, C] -> [1, H, W, P] (every channel of both)."""
  jac = np.abs(np.asarray(jax.jit(jax.jacrev(fn))(x)))[0]                   # [H, W, P, 1, H, W, C]
  height, width = x.shape[1:3]
  per_pixel = jac.max(axis=(2, 3, 6))                              # [H, W, H, W]
  return per_pixel.reshape(height * width, height * width) > 0


# --- masked convolutions -------------------------------------------------------------------------

@pytest.mark.parametrize("stack,kernel,mask_type,offsets", [
    ("vertical", (3, 3), "A", {(-1, -1), (-1, 0), (-1, 1)}),
    ("vertical", (5, 5), "B", {(i, j) for i in (-2, -1, 0) for j in range(-2, 3)}),
    ("horizontal", (1, 5), "A", {(0, -2), (0, -1)}),
    ("horizontal", (1, 3), "B", {(0, -1), (0, 0)}),
])
def test_masked_conv_reads_exactly_the_masked_offsets(stack, kernel, mask_type, offsets):
  conv = MaskedConv2D(1, pixelcnn_mask(kernel, stack, mask_type))
  x = jnp.zeros((1, 6, 6, 1))
  variables = jax.tree.map(jnp.ones_like, jax.eval_shape(conv.init, key(0), x))
  jac = np.asarray(jax.jit(jax.jacrev(lambda x: conv.apply(variables, x)))(x))[0, :, :, 0, 0, :, :, 0]
  for r, c in itertools.product(range(6), range(6)):               # every output pixel, borders too
    expected = {(r + i, c + j) for i, j in offsets if 0 <= r + i < 6 and 0 <= c + j < 6}
    assert set(zip(*np.nonzero(jac[r, c]))) == expected, (r, c)


def test_masks_reject_even_or_empty_kernels():
  with pytest.raises(ValueError, match="odd"):
    pixelcnn_mask((2, 3), "vertical", "A")
  with pytest.raises(ValueError, match="empty"):
    pixelcnn_mask((1, 1), "horizontal", "A")
  with pytest.raises(ValueError, match="one row"):
    pixelcnn_mask((3, 3), "horizontal", "B")


# --- PixelCNN causality --------------------------------------------------------------------------

@pytest.mark.parametrize("num_channels", [1, 2])
def test_pixelcnn_conditionals_depend_on_exactly_the_earlier_pixels(num_channels):
  """Reverse-mode autodiff (the gradients training uses) over every pixel of a 4x4 image: the output
  at pixel i has zero gradient w.r.t. every channel of pixels >= i, and nonzero gradient w.r.t. every
  pixel < i: also the ones up and to the right (e.g. (r - 1, c + 1), (0, 3) for (3, 0)), which the
  original PixelCNN's blind spot missed."""
  model = tiny_pixelcnn((4, 4, num_channels), num_levels=3, channels=4, head_channels=8)
  x = jnp.asarray(np.random.default_rng(0).uniform(-1, 1, (1, 4, 4, num_channels)), jnp.float32)
  variables = perturb(jax.jit(model.init)(key(0), x), 1)
  dep = dependency(lambda x: model.apply(variables, x), x)
  np.testing.assert_array_equal(dep, np.tril(np.ones((16, 16), bool), k=-1))
  up_right = [(r * 4 + c, (r - 1) * 4 + c + 1) for r in range(1, 4) for c in range(3)]
  assert all(dep[i, j] for i, j in up_right) and dep[12, 3]


# --- PixelCNN normalisation and sampling ---------------------------------------------------------

@pytest.mark.parametrize("output,num_levels", [("categorical", 2), ("logistic_mixture", 3)])
def test_pixelcnn_log_prob_sums_to_one_over_all_images(output, num_levels):
  model = tiny_pixelcnn(num_levels=num_levels, output=output, num_components=3)
  images = all_images(2, 2, num_levels)                            # 16 or 81 images
  variables = perturb(jax.jit(lambda r, x: model.init(r, x, method=model.log_prob))(key(0), images[:2]), 2)
  log_p = jax.jit(lambda v, x: model.apply(v, x, method=model.log_prob))(variables, images)
  assert log_p.shape == (len(images),)
  np.testing.assert_allclose(float(jnp.sum(jnp.exp(log_p))), 1.0, rtol=1e-5)


def test_categorical_is_log_softmax_and_logistic_mixture_sums_to_one_at_256_levels():
  rng = np.random.default_rng(3)
  logits = jnp.asarray(rng.standard_normal((4, 2 * 5)), jnp.float32)    # [B, C * L], C = 2, L = 5
  x = jnp.asarray(rng.integers(0, 5, (4, 2)), jnp.uint8)
  log_p = Categorical(5).log_prob_per_dim(logits, x)
  per_level = np.asarray(jax.nn.log_softmax(logits.reshape(4, 5, 2), axis=1))
  np.testing.assert_allclose(log_p, np.take_along_axis(per_level, np.asarray(x)[:, None], 1)[:, 0], rtol=1e-6)
  mixture = DiscretizedLogisticMixture(num_levels=256, num_components=3)
  # [logits, means, log-scales] of 3 components, scales from a few levels' width to ~1/8 of one.
  out = np.concatenate([rng.standard_normal(3), rng.uniform(-0.8, 0.8, 3), [-2.0, -5.0, -8.0]])
  out = jnp.asarray(out[None], jnp.float32)
  levels = jnp.arange(256, dtype=jnp.uint8)[:, None]
  total = jnp.sum(jnp.exp(mixture.log_prob_per_dim(jnp.tile(out, (256, 1)), levels)))
  np.testing.assert_allclose(float(total), 1.0, rtol=1e-5)


def _chi_square_p(samples, probs):
  """p-value of samples (uint8 [N, 2, 2, 1], binary) against the 16 image probabilities `probs`."""
  index = samples.reshape(len(samples), 4).astype(np.int64) @ (1 << np.arange(3, -1, -1))
  counts = np.bincount(index, minlength=16)
  return stats.chisquare(counts, probs / probs.sum() * len(samples)).pvalue


def test_pixelcnn_fitted_to_a_known_distribution_samples_it():
  """Fit the exact KL to a fixed distribution over the 16 binary 2x2 images (300 Adam steps on the
  expected NLL), then draw samples in the compiled loop: chi-square against the target, and
  against the model's own probabilities (the sampler is exact for the model it samples)."""
  images = all_images(2, 2, 2)
  target = np.random.default_rng(4).dirichlet(np.full(16, 0.7))
  model = tiny_pixelcnn(num_levels=2, channels=16, head_channels=32)
  params = jax.jit(lambda r: model.init(r, images, method=model.log_prob))(key(0))
  optimizer = optax.adam(2e-2)

  def expected_nll(params):
    return -jnp.sum(target * model.apply(params, images, method=model.log_prob))

  @jax.jit
  def fit(params):
    def step(carry, _):
      params, opt_state = carry
      grads = jax.grad(expected_nll)(params)
      updates, opt_state = optimizer.update(grads, opt_state)
      return (optax.apply_updates(params, updates), opt_state), None
    return jax.lax.scan(step, (params, optimizer.init(params)), None, length=300)[0][0]

  params = fit(params)
  model_probs = np.exp(np.asarray(model.apply(params, images, method=model.log_prob), np.float64))
  kl = float(np.sum(target * (np.log(target) - np.log(model_probs))))
  assert kl < 2e-3, kl
  samples = np.asarray(jax.jit(lambda p, r: model.apply(p, r, 4000, method=model.sample))(params, key(5)))
  assert samples.shape == (4000, 2, 2, 1) and samples.dtype == np.uint8
  assert _chi_square_p(samples, target) > 0.01
  assert _chi_square_p(samples, model_probs) > 0.01


def test_pixelcnn_sampler_draws_each_pixel_from_the_full_images_conditional():
  """The sampler runs the network on a window of R + 1 rows; a reference that runs it on the whole
  image, pixel by pixel in Python with the same keys, draws the same images."""
  model = tiny_pixelcnn((6, 2, 1), num_levels=4, num_layers=2)     # R = 2: windows of 3 of the 6 rows
  assert receptive_rows(2, 3, 3) == 2
  variables = perturb(jax.jit(model.init)(key(0), jnp.zeros((1, 6, 2, 1))), 11)
  rng = key(12)
  samples = jax.jit(lambda v, r: model.apply(v, r, 50, method=model.sample))(variables, rng)
  full_image = jax.jit(lambda v, x: model.apply(v, levels_to_centres(x, 4)))
  reference = np.zeros((50, 6, 2, 1), np.uint8)
  for i, (row, col) in enumerate(itertools.product(range(6), range(2))):
    out = full_image(variables, jnp.asarray(reference))[:, row:row + 1, col:col + 1]
    reference[:, row, col] = np.asarray(Categorical(4).sample(jax.random.fold_in(rng, i), out))[:, 0, 0]
  np.testing.assert_array_equal(samples, reference)
  assert len(np.unique(reference.reshape(50, -1), axis=0)) > 40    # the draws are not all alike


def test_pixelcnn_sampler_is_one_compiled_loop():
  model = tiny_pixelcnn((3, 3, 1), num_levels=5)
  variables = jax.eval_shape(lambda r: model.init(r, jnp.zeros((1, 3, 3, 1), jnp.uint8), method=model.log_prob),
                             key(0))
  jaxpr = jax.make_jaxpr(lambda v, r: model.apply(v, r, 2, method=model.sample))(variables, key(1))
  primitives = [eqn.primitive.name for eqn in jaxpr.jaxpr.eqns]
  assert sum(primitives.count(loop) for loop in ("scan", "while")) == 1   # fori_loop over the 9 pixels
  # The network is traced once (inside the loop), not once per pixel.
  assert len(str(jaxpr)) < 40_000


def test_pixelcnn_rejects_bad_input():
  model = tiny_pixelcnn(num_levels=3)
  variables = jax.jit(lambda r: model.init(r, jnp.zeros((1, 2, 2, 1), jnp.uint8), method=model.log_prob))(key(0))
  with pytest.raises(ValueError, match="num_levels=3"):
    model.apply(variables, np.full((1, 2, 2, 1), 3, np.uint8), method=model.log_prob)
  with pytest.raises(ValueError, match="integer levels"):
    model.apply(variables, np.zeros((1, 2, 2, 1), np.float32), method=model.log_prob)
  with pytest.raises(ValueError, match="shape"):
    model.apply(variables, np.zeros((1, 3, 2, 1), np.uint8), method=model.log_prob)
  with pytest.raises(ValueError, match="output must be one of"):
    tiny_pixelcnn(output="gaussian")
  with pytest.raises(ValueError, match="num_levels"):
    autoregressive_task(model, DataSpec("digits", (2, 2, 1), 17, "image"), optax.adam(1e-3))


# --- MADE density --------------------------------------------------------------------------------

def _made(dims=2, **fields):
  return MADEDensity(event_shape=(dims,), hidden_sizes=(16, 16), num_components=3, **fields)


def test_made_density_conditionals_depend_on_exactly_the_earlier_dimensions():
  """Reverse-mode Jacobians at 8 points (a ReLU unit that is off at one point hides a dependency)."""
  model = _made(dims=5)
  x = jnp.asarray(np.random.default_rng(6).standard_normal((8, 5)), jnp.float32)
  variables = perturb(jax.jit(model.init)(key(0), x), 7)
  jacobian = jax.vmap(jax.jacrev(lambda x: model.apply(variables, x[None], method=model.conditionals)))
  jac = jax.jit(jacobian)(x)                                       # 3 arrays [8, 1, D, K, D]
  dep = np.stack([np.abs(np.asarray(j)).max(axis=(0, 1, 3)) for j in jac]).max(0) > 0   # [D, D]
  np.testing.assert_array_equal(dep, np.tril(np.ones((5, 5), bool), k=-1))


def test_made_density_integrates_to_one_and_matches_the_closed_form():
  model = _made()
  variables = perturb(jax.jit(model.init)(key(0), jnp.zeros((1, 2))), 8, scale=0.05)
  grid = np.linspace(-12, 12, 801)
  points = jnp.asarray(np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2), jnp.float32)
  log_p = np.asarray(jax.jit(lambda v, x: model.apply(v, x, method=model.log_prob))(variables, points), np.float64)
  total = np.exp(log_p).sum() * (grid[1] - grid[0]) ** 2
  np.testing.assert_allclose(total, 1.0, atol=1e-3)
  # log p at a point, from the mixture parameters by hand (scipy's normal densities).
  (log_w, mean, log_std) = (np.asarray(a, np.float64)[0] for a in model.apply(
      variables, points[:1], method=model.conditionals))
  by_hand = sum(math.log(np.sum(np.exp(log_w[i]) * stats.norm.pdf(float(points[0, i]), mean[i], np.exp(log_std[i]))))
                for i in range(2))
  np.testing.assert_allclose(log_p[0], by_hand, rtol=1e-5)


def test_made_density_samples_follow_its_density():
  model = _made()
  variables = perturb(jax.jit(model.init)(key(0), jnp.zeros((1, 2))), 9, scale=0.05)
  samples = np.asarray(jax.jit(lambda v, r: model.apply(v, r, 10_000, method=model.sample))(variables, key(10)))
  assert samples.shape == (10_000, 2) and samples.dtype == np.float32
  # 3x3 cells cut at grid midpoints near the samples' terciles: their probabilities from the density
  # on the grid (midpoint rule) against the counts.
  grid = np.linspace(-12, 12, 401)
  mesh = np.stack(np.meshgrid(grid, grid, indexing="ij"), -1).reshape(-1, 2)
  p = np.exp(np.asarray(model.apply(variables, jnp.asarray(mesh, jnp.float32), method=model.log_prob), np.float64))
  midpoints = grid[:-1] + (grid[1] - grid[0]) / 2
  cuts = [midpoints[np.searchsorted(midpoints, np.quantile(samples[:, d], [1 / 3, 2 / 3]))] for d in range(2)]
  cell = lambda x: np.digitize(x[:, 0], cuts[0]) * 3 + np.digitize(x[:, 1], cuts[1])
  expected = np.bincount(cell(mesh), weights=p, minlength=9)
  counts = np.bincount(cell(samples), minlength=9)
  assert stats.chisquare(counts, expected / expected.sum() * len(samples)).pvalue > 0.01


# --- the Task in the training loop ---------------------------------------------------------------

def _every(config, n):
  config.train.steps_per_call = min(config.train.steps_per_call, n)
  for name in ("log_every", "eval_every", "sample_every", "save_every"):
    config.train[name] = n


@pytest.mark.slow
def test_pixelcnn_task_trains_on_digits_and_scores_exactly(tmp_path):
  import gen_jax
  from experiments.configs import pixelcnn_digits
  from gen_jax.drivers import scoring
  from gen_jax.drivers import loop
  from gen_jax.train.metrics_log import read_metrics

  config = pixelcnn_digits.get_config("cpu")
  config.model.channels, config.model.num_layers, config.model.head_channels = 16, 3, 32
  config.train.num_steps = 60
  _every(config, 30)
  loop.train_and_evaluate(config, str(tmp_path))
  evals = [m for m in read_metrics(str(tmp_path / "metrics.jsonl")) if "eval/bpd" in m]
  assert evals[-1]["eval/bpd"] < 0.8 * math.log2(17) and evals[-1]["eval/bpd"] < evals[0]["eval/bpd"]
  assert (tmp_path / "samples" / "step_60.png").exists()
  run = gen_jax.load_run(str(tmp_path))
  report = scoring.run_likelihood(run, "exact", num_examples=50)
  assert report.bits_per_dim is not None and 0 < report.bits_per_dim < math.log2(17)
  # Exact: no noise, so two seeds agree to the last digit.
  again = scoring.run_likelihood(run, "exact", num_examples=50, seed=1)
  assert again.nll_nats == report.nll_nats
  samples = run.task.sample(run.all_params, jax.random.key(0), 4)
  assert samples.shape == (4, 8, 8, 1) and samples.dtype == np.uint8 and int(samples.max()) <= 16
  check_run_contract(run, load_dataset("digits", "test").data[:8])


@pytest.mark.slow
def test_made_task_trains_on_eight_gaussians(tmp_path):
  from experiments.configs import made_toy2d
  from gen_jax.data import load_dataset, toy2d
  from gen_jax.drivers import loop
  from gen_jax.train.metrics_log import read_metrics

  config = made_toy2d.get_config("eight_gaussians,cpu")
  config.model.hidden_sizes = (32, 32)
  config.train.num_steps, config.train.batch_size = 300, 256
  config.optim.warmup_steps, config.optim.learning_rate = 20, 3e-3
  _every(config, 100)
  loop.train_and_evaluate(config, str(tmp_path))
  evals = [m for m in read_metrics(str(tmp_path / "metrics.jsonl")) if "eval/nll" in m]
  true_nll = float(toy2d.true_nll("eight_gaussians", load_dataset("toy2d/eight_gaussians", "test").data))
  assert "eval/bpd" not in evals[-1]
  assert evals[-1]["eval/nll"] < true_nll + 0.5, (evals[-1]["eval/nll"], true_nll)
