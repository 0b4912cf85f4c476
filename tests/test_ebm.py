"""Energy-based models: AIS and the grid against closed forms, Langevin against a known density (chi-square),
denoising score matching's minimiser, the replay buffer through checkpoint and resume, non-finite chains,
and short runs through the loop."""
import math
import shutil

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import gen_jax
from experiments.configs import ebm_digits, ebm_mnist, ebm_toy2d
from gen_jax.data import toy2d
from gen_jax.data import load_dataset
from tests.run_contract import check_run_contract
from gen_jax.data.spec import DataSpec
from gen_jax.distributions import gaussian
from gen_jax.eval.outlier import auroc, digits_ood_sets, mnist_to_digits, noise_and_inverted_sets
from gen_jax.models import ebm
from gen_jax.models.ebm.outlier import gradient_norm_score
from gen_jax.models.ebm.task import ebm_model, ebm_task
from gen_jax.drivers import loop
from gen_jax.train.metrics_log import read_metrics
from gen_jax.train.task import merge_variables

TOY = DataSpec(name="toy2d/eight_gaussians", event_shape=(2,), num_levels=None, kind="vector")
DIGITS = DataSpec(name="digits", event_shape=(8, 8, 1), num_levels=17, kind="image")


def quadratic(x):
  return 0.5 * jnp.sum(jnp.square(x.reshape(x.shape[0], -1)), axis=1)


def test_ais_log_z_of_a_gaussian_approaches_the_closed_form():
  """E = |x|^2 / 2 on [-6, 6]^4: log Z = 4 log(sqrt(2 pi) (Phi(6) - Phi(-6))). With 256 chains the error
  shrinks as K grows (3, 30, 1000 distributions), and at K = 1000 it is below 0.05 nats and within three
  of the reported standard errors."""
  d, b = 4, 6.0
  truth = d * math.log(math.sqrt(2 * math.pi) * (stats.norm.cdf(b) - stats.norm.cdf(-b)))
  results = [ebm.ais_log_normalizer(quadratic, jax.random.key(0), event_shape=(d,), domain=(-b, b),
                                    num_distributions=k, num_chains=256, step_size=0.5) for k in (3, 30, 1000)]
  errors = [abs(float(r.log_z) - truth) for r in results]
  assert errors[0] > errors[1] > errors[2], errors
  assert errors[2] < 0.05 and errors[2] < 3 * float(results[2].log_z_stderr), (errors, results[2])
  ess = [float(r.effective_sample_size) for r in results]
  assert ess[0] < ess[1] < ess[2]
  assert 0.4 < float(results[2].acceptance) < 0.8  # the step size adapts towards 0.6
  assert results[2].log_weights.shape == (256,)


def test_grid_log_z_of_a_gaussian_matches_the_closed_form():
  """log Z of N((0.5, -1), 0.7^2 I) unnormalised on [-5, 5]^2, with the error estimate an honest bound."""
  mean, s = jnp.array([0.5, -1.0]), 0.7
  energy = lambda x: 0.5 * jnp.sum(jnp.square((x - mean) / s), axis=1)
  box = [stats.norm.cdf((5 - m) / s) - stats.norm.cdf((-5 - m) / s) for m in (0.5, -1.0)]
  truth = math.log(2 * math.pi * s * s * box[0] * box[1])
  result = ebm.grid_log_normalizer(energy, -5.0, 5.0, size=128)
  actual = abs(float(result.log_z) - truth)
  assert actual < 1e-3 and actual < 2 * float(result.error) + 1e-6, (actual, float(result.error))
  x = jnp.array([[0.0, 0.0], [6.0, 0.0]])
  log_p = ebm.grid_log_prob(energy, x, -5.0, 5.0, size=128)
  np.testing.assert_allclose(log_p[0], stats.multivariate_normal([0.5, -1], s * s).logpdf([0, 0]) - math.log(
      box[0] * box[1]), atol=1e-3)
  assert log_p[1] == -np.inf  # off the model's support


def _mixture_energy(x):
  """-log of an equal mixture of N((-1, 0), 0.7^2 I) and N((1, 0.5), 0.7^2 I), up to a constant."""
  centres, s = jnp.array([[-1.0, 0.0], [1.0, 0.5]]), 0.7
  d2 = jnp.sum(jnp.square(x[:, None, :] - centres[None]), axis=-1)
  return -jax.nn.logsumexp(-0.5 * d2 / s ** 2, axis=1)


def _chi_square_p_value(samples, num_bins=8, low=-4.0, high=4.0):
  """Pearson's chi-square of samples' histogram on an 8x8 grid of bins against the mixture's bin masses
  (fine-grid quadrature), bins expecting fewer than 5 merged into one."""
  edges = np.linspace(low, high, num_bins + 1)
  fine = 40
  centres = ebm.grid_points(low, high, num_bins * fine)
  density = np.exp(-np.asarray(_mixture_energy(centres))).reshape(num_bins, fine, num_bins, fine)
  mass = density.sum(axis=(1, 3)).T  # [bin x1, bin x2]
  mass = mass / mass.sum()
  counts, _, _ = np.histogram2d(np.asarray(samples[:, 0]), np.asarray(samples[:, 1]), bins=[edges, edges])
  expected = len(samples) * mass.ravel()
  small = expected < 5
  obs = np.append(counts.ravel()[~small], counts.ravel()[small].sum())
  exp = np.append(expected[~small], expected[small].sum())
  statistic = np.sum((obs - exp) ** 2 / exp)
  return stats.chi2.sf(statistic, len(obs) - 1)


def test_langevin_samples_match_a_known_2d_density():
  """4000 chains, 1000 steps of size 0.005 (noise sqrt(2 * 0.005): temperature 1) from uniform noise:
  their histogram passes a chi-square test (p > 0.01) against the mixture; chains at temperature 1/4
  (half the noise) fail it (p < 1e-6), so the test can tell."""
  x0 = ebm.uniform_on_box(jax.random.key(0), (4000, 2), (-4.0, 4.0))
  run = jax.jit(lambda noise: ebm.langevin_chain(_mixture_energy, x0, jax.random.key(1), num_steps=1000,
                                                 step_size=0.005, noise_scale=noise, domain=(-4.0, 4.0)).x)
  assert _chi_square_p_value(run(math.sqrt(0.01))) > 0.01
  assert _chi_square_p_value(run(0.5 * math.sqrt(0.01))) < 1e-6


def test_langevin_trajectory_and_grad_norm():
  result = ebm.langevin_chain(quadratic, jnp.ones((3, 2)), jax.random.key(0), num_steps=4, step_size=0.1,
                              noise_scale=0.0, keep_trajectory=True)
  np.testing.assert_allclose(result.trajectory[:, 0, 0], 0.9 ** np.arange(1, 5), rtol=1e-6)  # x <- x - 0.1 x
  np.testing.assert_allclose(result.grad_norm, np.mean(math.sqrt(2) * 0.9 ** np.arange(4)), rtol=1e-6)


def test_denoising_score_matching_is_minimal_at_the_true_score():
  """Data N(0, 0.8^2 I) in 3-D, noise sigma 0.3: the noised data's score is -x / (0.64 + 0.09), so over
  quadratic energies a |x|^2 / 2 the loss (common noise draws, 200k examples) is minimal at a = 1 / 0.73."""
  x = 0.8 * jax.random.normal(jax.random.key(0), (200_000, 3))
  loss = lambda a: ebm.denoising_score_matching_loss(lambda y: a * quadratic(y), x, jax.random.key(1), 0.3)
  best = 1.0 / (0.64 + 0.09)
  values = {r: float(loss(best * r)) for r in (0.8, 0.95, 1.0, 1.05, 1.25)}
  assert min(values, key=values.get) == 1.0, values
  slope = jax.grad(loss)(best)
  assert abs(float(slope)) < 0.02 * abs(float(jax.grad(loss)(1.25 * best))), float(slope)


def test_nce_loss_is_minimal_at_the_true_log_normalizer():
  """Model = noise = N(0, I) up to c: the NCE loss is minimal at c = log Z = (D/2) log 2 pi."""
  x, y = jax.random.normal(jax.random.key(0), (2, 50_000, 2))
  log_q = lambda z: gaussian.sum_per_example(gaussian.standard_normal_log_prob(z))
  loss = lambda c: ebm.noise_contrastive_loss(-quadratic(x) - c, log_q(x), -quadratic(y) - c, log_q(y))
  cs = np.linspace(0.5, 3.0, 51)
  assert abs(cs[np.argmin([float(loss(c)) for c in cs])] - math.log(2 * math.pi)) < 0.06


def test_replay_buffer_draw_and_store():
  buffer = jnp.arange(10.0).reshape(10, 1)
  starts, idx = ebm.draw_chain_starts(buffer, jax.random.key(0), 10, 0.0, (-1.0, 1.0))
  assert sorted(np.asarray(idx).tolist()) == list(range(10))  # without replacement
  np.testing.assert_array_equal(starts, buffer[idx])
  reset, _ = ebm.draw_chain_starts(buffer, jax.random.key(0), 10, 1.0, (-1.0, 1.0))
  assert np.all(np.abs(reset) <= 1.0)
  np.testing.assert_array_equal(ebm.store_chains(buffer, idx, -starts), -buffer)
  with pytest.raises(ValueError, match="buffer_size >= batch_size"):
    ebm.draw_chain_starts(buffer, jax.random.key(0), 11, 0.0, (-1.0, 1.0))


def tiny_toy_config(num_steps, every, objective="langevin", chains="persistent"):
  config = ebm_toy2d.get_config("eight_gaussians,cpu")
  config.model.hidden_sizes = (32, 32)
  config.model.langevin_steps = 10
  config.model.grid_size = 64
  config.ebm.update(objective=objective, chains=chains, buffer_size=256, sample_steps=20, dsm_sigma=0.3)
  config.optim.update(schedule="constant", warmup_steps=1, learning_rate=3e-3)
  config.train.update(num_steps=num_steps, batch_size=64, steps_per_call=every, log_every=every,
                      eval_every=every, sample_every=num_steps, save_every=every)
  config.eval.update(batch_size=2000, num_samples=100)
  return config


def test_replay_buffer_is_checkpointed_and_resumption_continues_the_chains(tmp_path):
  """A copy of a 4-step run holding only its step-2 checkpoint, resumed to step 4, ends with the straight
  run's buffer and params; the step-2 checkpoint holds the buffer, moved from its initial noise."""
  loop.train_and_evaluate(tiny_toy_config(4, 2), str(tmp_path / "straight"))
  shutil.copytree(tmp_path / "straight", tmp_path / "resumed")
  shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "4")
  at_2 = gen_jax.load_run(str(tmp_path / "resumed"), use_ema=False)
  assert at_2.step == 2 and at_2.all_params["buffer"].shape == (256, 2)
  initial = ebm.init_replay_buffer(jax.random.split(jax.random.split(jax.random.key(0), 4)[0], 3)[1], 256, (2,),
                                   (-5.0, 5.0))
  assert np.sum(np.any(np.asarray(at_2.all_params["buffer"]) != np.asarray(initial), axis=1)) > 64  # chains moved
  loop.train_and_evaluate(tiny_toy_config(4, 2), str(tmp_path / "resumed"))
  straight = gen_jax.load_run(str(tmp_path / "straight"), use_ema=False)
  resumed = gen_jax.load_run(str(tmp_path / "resumed"), use_ema=False)
  assert resumed.step == 4
  assert not np.allclose(at_2.all_params["buffer"], resumed.all_params["buffer"])  # moved on after resuming
  for a, b in zip(jax.tree.leaves(straight.all_params), jax.tree.leaves(resumed.all_params)):
    np.testing.assert_array_equal(a, b)


def test_non_finite_chains_make_the_loss_nan():
  """A chain state that is not finite (here a poisoned buffer entry) makes the step's loss NaN and names
  itself in chain_grad_norm, though the data's energies are finite."""
  import optax
  task = ebm_task(ebm_model((2,), hidden_sizes=(8,), langevin_steps=3), TOY, optax.adam(1e-3), buffer_size=16)
  x = jax.random.normal(jax.random.key(0), (16, 2))
  params, state = task.init(jax.random.key(1), x)
  state["buffer"] = state["buffer"].at[3].set(jnp.inf)
  _, _, _, loss, metrics = jax.jit(task.update)(params, state, task.optimizer.init(params), x, jax.random.key(2), 0)
  assert np.isnan(loss) and not np.isfinite(metrics["chain_grad_norm"])
  assert np.isfinite(metrics["energy_data"])


def test_a_diverging_run_stops_naming_the_step_and_the_chains(tmp_path):
  """A learning rate of 1e30 (after step 1, the warm-up's zero) sends the params to ~1e30 at step 2, so
  step 3's energies and Langevin gradients overflow: the loop stops there, naming step 3 and the chains."""
  config = tiny_toy_config(6, 1)
  config.optim.learning_rate = 1e30
  config.optim.grad_clip_norm = 0.0
  with pytest.raises(FloatingPointError, match=r"at step 3 \(non-finite there: .*chain_grad_norm"):
    loop.train_and_evaluate(config, str(tmp_path / "run"))


@pytest.mark.slow
def test_toy_training_through_the_loop_lowers_the_exact_nll(tmp_path):
  """300 steps with persistent chains on eight_gaussians: the grid-normalised test NLL falls well below
  the uniform box's log 100 = 4.61 (the true density's is 2.83)."""
  loop.train_and_evaluate(tiny_toy_config(300, 150), str(tmp_path))
  nll = [m["eval/nll"] for m in read_metrics(tmp_path / "metrics.jsonl") if "eval/nll" in m]
  assert nll[-1] < math.log(100.0) - 0.6, nll
  assert (tmp_path / "samples" / "step_300.png").exists()


def _train(objective, chains, num_steps=300):
  """(task, variables, metrics [num_steps]) after `num_steps` updates of the tiny toy config in one scan."""
  config = tiny_toy_config(num_steps, num_steps, objective, chains)
  task = gen_jax.models.build_task(config, TOY)
  batches = jax.vmap(lambda k: toy2d.sample("eight_gaussians", k, 64))(
      jax.random.split(jax.random.key(0), num_steps))
  params, state = task.init(jax.random.key(1), batches[0])

  @jax.jit
  def run(params, state, batches):
    def body(carry, inputs):
      params, state, opt_state = carry
      step, batch = inputs
      params, state, opt_state, loss, metrics = task.update(params, state, opt_state, batch,
                                                            jax.random.key(step), step)
      return (params, state, opt_state), {**metrics, "loss": loss}
    (params, state, _), metrics = jax.lax.scan(body, (params, state, task.optimizer.init(params)),
                                               (jnp.arange(num_steps), batches))
    return merge_variables(params, state), metrics

  return task, *run(params, state, batches)


def test_nce_lowers_the_exact_nll():
  task, params, _ = _train("nce", "persistent")
  x = toy2d.sample("eight_gaussians", jax.random.key(9), 2000)
  nll = jax.jit(task.log_likelihoods["exact"])(params, x, jax.random.key(0))
  assert float(jnp.mean(-nll)) < math.log(100.0) - 0.6


def test_dsm_closes_most_of_the_gap_to_the_true_score():
  """After 300 steps the DSM loss (sigma 0.3, 20k fixed examples and draws) closes over half the gap from
  the untrained energy's to that of the true noised density, the mixture with std sqrt(s^2 + sigma^2)."""
  task, params, _ = _train("dsm", "persistent")
  centres, std = toy2d.mixture_modes("eight_gaussians")
  std = math.sqrt(std ** 2 + 0.3 ** 2)
  true_energy = lambda y: -jax.nn.logsumexp(
      -0.5 * jnp.sum(jnp.square(y[:, None] - jnp.asarray(centres)[None]), -1) / std ** 2, axis=1)
  x = toy2d.sample("eight_gaussians", jax.random.key(5), 20_000)
  loss = lambda energy: float(ebm.denoising_score_matching_loss(energy, x, jax.random.key(6), 0.3))
  model = task.model
  trained = loss(lambda y: model.apply(params["model"], y, method=model.energy))
  untrained = loss(lambda y: model.apply(task.init(jax.random.key(1), x[:64])[0]["model"], y, method=model.energy))
  best = loss(true_energy)
  assert trained - best < 0.5 * (untrained - best), (untrained, trained, best)


def test_short_run_samples_approach_the_data():
  """Nijkamp et al.'s short-run EBM: its 10-step samples from noise land near the data (mean true NLL
  well below the starting noise's), though its energy is no good density (`grid` NLL above log 100)."""
  task, params, _ = _train("langevin", "short_run")
  samples = task.sample(params, jax.random.key(3), 2000)
  noise = ebm.uniform_on_box(jax.random.key(3), (2000, 2), (-5.0, 5.0))
  true_nll = lambda x: float(jnp.mean(toy2d.true_nll("eight_gaussians", x)))
  assert true_nll(samples) < 0.5 * true_nll(noise), (true_nll(samples), true_nll(noise))


@pytest.mark.slow
def test_digits_training_through_the_loop(tmp_path):
  """Three steps of the conv energy (spectral norm, persistent chains) on digits: samples and buffer written."""
  config = ebm_digits.get_config("cpu")
  config.model.channels = (8,)
  config.model.langevin_steps = 3
  config.ebm.update(buffer_size=64, sample_steps=3)
  config.train.update(num_steps=3, batch_size=16, log_every=1, eval_every=3, sample_every=3, save_every=3)
  config.eval.update(batch_size=100, num_samples=16)
  state = loop.train_and_evaluate(config, str(tmp_path))
  assert (tmp_path / "samples" / "replay_buffer_step_3.png").exists()
  assert state.model_state["buffer"].shape == (64, 8, 8, 1)  # carried, not trained
  assert "batch_stats" in state.model_state["model"]  # spectral norm's state
  model = gen_jax.models.build_task(config, DIGITS).model
  variables = merge_variables(state.params, state.model_state)["model"]
  x = jnp.asarray(np.random.default_rng(0).uniform(size=(5, 8, 8, 1)), jnp.float32)
  energy = lambda y: model.apply(variables, y, method=model.energy)
  assert np.all(np.isfinite(jax.jit(lambda y: gradient_norm_score(energy, y))(x)))
  with pytest.raises(NotImplementedError, match="ais_log_normalizer"):
    model.apply(variables, x, method=model.log_prob)
  check_run_contract(gen_jax.load_run(str(tmp_path)), load_dataset("digits", "test").data[:8])


def test_configs_and_their_checks():
  assert ebm_toy2d.get_config("checkerboard,cpu,short_run").ebm.chains == "short_run"
  assert ebm_toy2d.get_config("dsm").ebm.objective == "dsm"
  assert ebm_digits.get_config("cpu").model.architecture == "conv"
  t1 = ebm_digits.get_config("cpu,t1").model  # Langevin at temperature 1: noise^2 / (2 step) = 1
  assert t1.noise_scale ** 2 / (2 * t1.step_size) == pytest.approx(1.0)
  mnist = ebm_mnist.get_config("cpu,short_run")  # the digits recipe on the MNIST split, unrolled on CPU
  assert (mnist.data.name, mnist.ebm.chains, mnist.model.unroll_langevin) == ("mnist_split", "short_run", True)
  assert not ebm_mnist.get_config().model.unroll_langevin and ebm_mnist.get_config().model.channels == (64, 128)
  with pytest.raises(ValueError, match="one objective"):
    ebm_toy2d.get_config("dsm,nce")
  with pytest.raises(ValueError, match="objective"):
    ebm_task(ebm_model((2,)), TOY, None, objective="cd")


def test_auroc_and_the_digits_ood_sets():
  rng = np.random.default_rng(0)
  a, b = rng.integers(0, 5, 100), rng.integers(1, 7, 80)
  pairs = np.mean((b[None, :] > a[:, None]) + 0.5 * (b[None, :] == a[:, None]))  # by definition
  assert auroc(a, b) == pytest.approx(pairs)
  assert auroc([0, 1], [2, 3]) == 1.0 and auroc([2, 3], [0, 1]) == 0.0
  digits = rng.integers(0, 17, (10, 8, 8, 1)).astype(np.uint8)
  mnist = np.zeros((12, 28, 28, 1), np.uint8)
  mnist[:, 2:5, 2:5] = 255  # the first 3x3 block: level 16
  sets = digits_ood_sets(digits, mnist)
  assert all(s.shape == digits.shape and s.dtype == np.uint8 for s in sets.values())
  np.testing.assert_array_equal(sets["inverted digits"], 16 - digits)
  assert mnist_to_digits(mnist)[0, 0, 0, 0] == 16 and mnist_to_digits(mnist)[0].sum() == 16
  mnist[0, 0, 0, 0] = 7
  sets = noise_and_inverted_sets(mnist, 256)  # the MNIST report's sets
  assert sets["inverted digits"][0, 0, 0, 0] == 248 and sets["uniform noise"].max() > 16
