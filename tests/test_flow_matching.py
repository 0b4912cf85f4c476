"""Flow matching against closed forms: the optimal velocity of Gaussian (and Gaussian-mixture) data,
the samplers' orders of convergence, the change-of-variables likelihood, classifier-free guidance of a
mixture's score, minibatch OT's transport cost; and the loss against torchcfm's on the same inputs."""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gen_jax.models.flow_matching import FlowMatching, couplings, paths

MEAN = np.array([1.5, -0.5], np.float32)
STD = np.array([0.5, 2.0], np.float32)


def gaussian_velocity(x, t, mean, std):
  """u_t(x) = E[x_1 - x_0 | x_t = x] for x_1 ~ N(mean, diag std^2), x_0 ~ N(0, I), x_t on the line:
  jointly Gaussian, so mean + Cov(x_1 - x_0, x_t) / Var(x_t) (x - t mean)."""
  t = t[:, None]
  variance = t ** 2 * std ** 2 + (1 - t) ** 2
  return mean + (t * std ** 2 - (1 - t)) / variance * (x - t * mean)


class GaussianVelocity(nn.Module):
  """The optimal velocity of Gaussian data, in the network's call signature (no parameters)."""
  mean: tuple
  std: tuple

  def __call__(self, x, t, train=False):
    return gaussian_velocity(x, t, jnp.asarray(self.mean), jnp.asarray(self.std))


def gaussian_model():
  return FlowMatching(event_shape=(2,), network=GaussianVelocity(tuple(MEAN.tolist()), tuple(STD.tolist())))


def generate(model, z_0, method, num_steps=None):
  fn = jax.jit(lambda z: model.apply({}, z, method, num_steps, method=model.generate))
  return fn(z_0)


def test_adaptive_sampler_and_likelihood_equal_the_closed_form():
  model = gaussian_model()
  z_0 = jax.random.normal(jax.random.key(1), (512, 2))
  x_1, solution = jax.jit(lambda z: model.apply({}, z, "dopri5", None, None, 1.0, 1e-7, 1e-7,
                                                method=model.generate))(z_0)
  assert bool(solution.succeeded)
  np.testing.assert_allclose(np.asarray(x_1), MEAN + STD * np.asarray(z_0), atol=5e-6)  # measured 9.5e-7 (2.6e-4 at the default 1e-5)
  x = jnp.asarray(MEAN + STD * np.asarray(jax.random.normal(jax.random.key(2), (64, 2))))
  log_p = jax.jit(lambda x: model.apply({}, x, jax.random.key(3), "exact", method=model.log_prob))(x)
  exact = np.sum(-0.5 * ((np.asarray(x) - MEAN) / STD) ** 2 - np.log(STD) - 0.5 * np.log(2 * np.pi), axis=-1)
  np.testing.assert_allclose(np.asarray(log_p), exact, atol=1e-3)  # measured 2e-5


# A 2-D mixture of three Gaussians, each a class.
MIX_MEANS = np.array([[-2.0, 0.0], [2.0, 1.0], [0.0, -2.5]], np.float32)
MIX_STDS = np.array([0.3, 0.5, 0.4], np.float32)
MIX_WEIGHTS = np.array([0.5, 0.3, 0.2], np.float32)


def marginal_log_prob(x, t, components):
  """log p_t(x) [B] of the path's marginal: a mixture of N(t m_k, (t^2 s_k^2 + (1 - t)^2) I)."""
  variance = t ** 2 * MIX_STDS ** 2 + (1 - t) ** 2  # [K]
  sq = jnp.sum((x[:, None, :] - t * MIX_MEANS) ** 2, axis=-1)  # [B, K]
  log_components = -0.5 * sq / variance - jnp.log(2 * jnp.pi * variance) + jnp.log(MIX_WEIGHTS)
  return jax.nn.logsumexp(jnp.where(components, log_components, -jnp.inf), axis=-1)


def mixture_velocity(x, t, label=None):
  """E[x_1 - x_0 | x_t = x] of the mixture (label None) or of component `label`: the components'
  Gaussian velocities weighted by their posterior at x."""
  components = np.ones(3, bool) if label is None else np.arange(3) == label
  variance = t ** 2 * MIX_STDS ** 2 + (1 - t) ** 2
  sq = jnp.sum((x[:, None, :] - t * MIX_MEANS) ** 2, axis=-1)
  logits = jnp.where(components, -0.5 * sq / variance - jnp.log(variance) + jnp.log(MIX_WEIGHTS), -jnp.inf)
  posterior = jax.nn.softmax(logits, axis=-1)  # [B, K]
  each = MIX_MEANS + ((t * MIX_STDS ** 2 - (1 - t)) / variance)[:, None] * (x[:, None, :] - t * MIX_MEANS)
  return jnp.sum(posterior[..., None] * each, axis=1)


class MixtureVelocity(nn.Module):
  """The mixture's optimal velocity, conditional on labels 0..2 and unconditional for the null label 3."""
  num_classes: int = 3

  def __call__(self, x, t, train=False, labels=None):
    rows = [jnp.where((labels == k)[:, None], jax.vmap(lambda xi, ti: mixture_velocity(xi[None], ti, k)[0])(x, t), 0)
            for k in range(3)]
    unconditional = jax.vmap(lambda xi, ti: mixture_velocity(xi[None], ti)[0])(x, t)
    return sum(rows) + jnp.where((labels == 3)[:, None], unconditional, 0)


@pytest.mark.parametrize("method,order", [("euler", 1), ("midpoint", 2)])
def test_sampler_order_on_the_mixture_closed_form(method, order):
  """Against the mixture's optimal velocity, solved to 1e-11 by dopri5 in float64: doubling the steps
  divides the error by 2^order. (On a single Gaussian the midpoint rule superconverges, ratio 8: its
  flow map is too special to measure the order on.)"""
  model = FlowMatching(event_shape=(2,), network=MixtureVelocity())
  labels = jnp.full((256,), 3)
  with jax.enable_x64(True):
    z_0 = jax.random.normal(jax.random.key(0), (256, 2), jnp.float64)
    exact, _ = jax.jit(lambda z: model.apply({}, z, "dopri5", None, labels, 1.0, 1e-11, 1e-11,
                                             method=model.generate))(z_0)
    solve = jax.jit(lambda z, n: model.apply({}, z, method, n, labels, method=model.generate), static_argnums=1)
    errors = []
    for n in (80, 160, 320, 640):
      x_1, solution = solve(z_0, n)
      assert int(solution.num_function_evals) == n * {"euler": 1, "midpoint": 2}[method]
      errors.append(float(np.max(np.abs(np.asarray(x_1) - np.asarray(exact)))))
  ratios = np.array(errors[:-1]) / np.array(errors[1:])
  # Measured: euler 0.134, 0.062, 0.030, ... (ratios 2.18, 2.07, ...); midpoint 2.3e-3, 6.3e-4, 1.6e-4,
  # ... (ratios 3.73, 3.86, ...). A midpoint stage at t + h (not t + h / 2) gives order 1 and fails.
  np.testing.assert_allclose(ratios[1:], 2.0 ** order, rtol=0.1)


def test_mixture_sampler_reproduces_the_law():
  model = FlowMatching(event_shape=(2,), network=MixtureVelocity(), sigma=0.0)
  unconditional = jnp.full((3000,), 3)  # the null label: the mixture itself
  z_0 = jax.random.normal(jax.random.key(4), (3000, 2))
  x_1, solution = jax.jit(lambda z: model.apply({}, z, "dopri5", None, unconditional,
                                                method=model.generate))(z_0)
  assert bool(solution.succeeded)
  nearest = np.argmin(np.sum((np.asarray(x_1)[:, None] - MIX_MEANS) ** 2, -1), axis=1)
  fractions = np.bincount(nearest, minlength=3) / len(nearest)
  np.testing.assert_allclose(fractions, MIX_WEIGHTS, atol=0.03)  # measured within 0.01
  for k in range(3):
    spread = np.std(np.asarray(x_1)[nearest == k], axis=0)
    np.testing.assert_allclose(spread, MIX_STDS[k], rtol=0.1)


@pytest.mark.parametrize("scale", [0.0, 1.0, 3.0])
def test_guided_velocity_is_the_velocity_of_the_guided_score(scale):
  """Along the Gaussian path v_t(x) = (x + (1 - t) grad log p_t(x)) / t, so guidance of the
  velocities (FlowMatching.guided_velocity) must equal that formula at the guided score
  (1 - s) grad log p_t(x) + s grad log p_t(x | c), the scores by autodiff of the closed-form marginals."""
  model = FlowMatching(event_shape=(2,), network=MixtureVelocity())
  x = jax.random.normal(jax.random.key(5), (64, 2)) * 2.0
  t = jax.random.uniform(jax.random.key(6), (64,), minval=0.1, maxval=0.95)
  labels = jnp.arange(64) % 3
  guided = model.apply({}, x, t, labels, scale, method=model.guided_velocity)
  score = lambda components: jax.vmap(jax.grad(lambda xi, ti: marginal_log_prob(xi[None], ti, components)[0]))(x, t)
  conditional = jnp.stack([score(np.arange(3) == k) for k in range(3)])[labels, jnp.arange(64)]
  guided_score = (1 - scale) * score(np.ones(3, bool)) + scale * conditional
  expected = (x + (1 - t)[:, None] * guided_score) / t[:, None]
  np.testing.assert_allclose(np.asarray(guided), np.asarray(expected), rtol=1e-4, atol=1e-4)


def test_conditional_sampler_refuses_bad_labels():
  """Labels outside {0, ..., K} (K = the null label), of another shape or not integers fail before sampling."""
  model = FlowMatching(event_shape=(2,), network=MixtureVelocity())
  sample = lambda labels: model.apply({}, jax.random.key(0), 2, "euler", 2, labels, 2.0, method=model.sample)
  with pytest.raises(ValueError, match=r"labels must lie in \{0, ..., 3\} \(3 = the null label\), got values in \[0, 4\]"):
    sample(jnp.array([0, 4], jnp.int32))
  with pytest.raises(ValueError, match=r"labels must lie in \{0, ..., 3\}"):
    sample(jnp.array([-1, 2], jnp.int32))
  with pytest.raises(ValueError, match=r"labels must be integers of shape \[batch\] = \(2,\), got float32"):
    sample(jnp.array([0.0, 1.0]))
  with pytest.raises(ValueError, match=r"labels must be integers of shape \[batch\] = \(2,\), got int32 \(3,\)"):
    sample(jnp.array([0, 1, 2], jnp.int32))
  with pytest.raises(ValueError, match=r"needs labels \[batch\] = \(2,\) in \{0, ..., 3\}"):
    sample(None)
  assert model.apply({}, jax.random.key(0), 2, "euler", 2, jnp.array([0, 3]), 2.0, method=model.sample).shape == (2, 2)


def test_minibatch_ot_lowers_the_transport_cost():
  x_0 = jax.random.normal(jax.random.key(7), (128, 2))
  x_1 = jnp.asarray(MIX_MEANS)[jax.random.categorical(jax.random.key(8), jnp.log(MIX_WEIGHTS), shape=(128,))]
  i, j = couplings.minibatch_ot_pairs(jax.random.key(9), x_0, x_1, epsilon=0.01)
  independent, ot = float(couplings.transport_cost(x_0, x_1)), float(couplings.transport_cost(x_0[i], x_1[j]))
  assert ot < 0.6 * independent, (ot, independent)  # measured 2.58 against 6.69
  # The plan's marginals are uniform (each row and column mass 1/B).
  plan = np.asarray(couplings.ot_plan(x_0, x_1))
  np.testing.assert_allclose(plan.sum(0), 1 / 128, rtol=5e-3)


def test_loss_equals_torchcfm():
  """The same x_0, x_1, t, eps and network outputs give torchcfm's ConditionalFlowMatcher loss."""
  torch = pytest.importorskip("torch")
  torchcfm = pytest.importorskip("torchcfm.conditional_flow_matching")
  rng = np.random.default_rng(0)
  x_0, x_1, eps = (rng.standard_normal((16, 8, 8, 1)).astype(np.float32) for _ in range(3))
  t = rng.uniform(size=16).astype(np.float32)
  for sigma in (0.0, 0.1):
    matcher = torchcfm.ConditionalFlowMatcher(sigma=sigma)
    x_t_ref = matcher.sample_xt(*(torch.from_numpy(a) for a in (x_0, x_1, t, eps)))
    u_t_ref = matcher.compute_conditional_flow(torch.from_numpy(x_0), torch.from_numpy(x_1), torch.from_numpy(t), x_t_ref)
    x_t, u_t = paths.interpolate(jnp.asarray(x_0), jnp.asarray(x_1), jnp.asarray(t), sigma, jnp.asarray(eps))
    np.testing.assert_allclose(np.asarray(x_t), x_t_ref.numpy(), atol=1e-6)
    np.testing.assert_allclose(np.asarray(u_t), u_t_ref.numpy(), atol=1e-6)
    v_t = np.tanh(x_t_ref.numpy())  # any network output, the same on both sides
    reference = torch.mean((torch.from_numpy(v_t) - u_t_ref) ** 2).item()
    ours = float(jnp.mean(paths.squared_error(jnp.asarray(v_t), u_t)))
    np.testing.assert_allclose(ours, reference, rtol=1e-6)


def mixture_samples(rng, n):
  k = jax.random.categorical(rng, jnp.log(MIX_WEIGHTS), shape=(n,))
  noise = jax.random.normal(jax.random.fold_in(rng, 1), (n, 2))
  return jnp.asarray(MIX_MEANS)[k] + jnp.asarray(MIX_STDS)[k][:, None] * noise


def fit(model, loss_of, params, num_steps, learning_rate=3e-3):
  optimizer = optax.adam(learning_rate)

  @jax.jit
  def run(params, key):
    def step(carry, key):
      params, opt_state = carry
      grads = jax.grad(loss_of)(params, key)
      updates, opt_state = optimizer.update(grads, opt_state)
      return (optax.apply_updates(params, updates), opt_state), None
    (params, _), _ = jax.lax.scan(step, (params, optimizer.init(params)), jax.random.split(key, num_steps))
    return params
  return run(params, jax.random.key(11))


@pytest.mark.slow
def test_minibatch_ot_and_reflow_straighten_the_learned_paths():
  """Straightness (Liu et al. 2023, eq. 6) of the paths of a trained velocity on the mixture: minibatch-OT
  couplings and one reflow of the independent model both give straighter paths than independent pairs."""
  from gen_jax.models.flow_matching import reflow
  from gen_jax.nn import TimeConditionedMLP
  model = FlowMatching(event_shape=(2,), network=TimeConditionedMLP(hidden_sizes=(32, 32), embedding_dim=16))
  init = model.init(jax.random.key(0), jnp.zeros((4, 2)), jax.random.key(1), method=model.loss)

  def coupled(coupling):
    return lambda p, key: jnp.mean(model.apply(p, mixture_samples(key, 128), jax.random.fold_in(key, 2),
                                               coupling=coupling, method=model.loss))

  independent = fit(model, coupled("independent"), init, 400)
  ot = fit(model, coupled("minibatch_ot"), init, 400)
  z_pairs, x_pairs = reflow.reflow_pairs(model, independent, jax.random.key(5), 10000)

  def reflow_loss(p, key):
    i = jax.random.randint(key, (128,), 0, z_pairs.shape[0])
    return jnp.mean(model.apply(p, z_pairs[i], x_pairs[i], jax.random.fold_in(key, 3), method=model.pair_loss))

  reflowed = fit(model, reflow_loss, independent, 400, learning_rate=1e-3)
  z = jax.random.normal(jax.random.key(99), (1000, 2))
  straightness = {name: float(jnp.mean(reflow.straightness(model, p, z, 50)))
                  for name, p in (("independent", independent), ("ot", ot), ("reflow", reflowed))}
  # Measured (600 steps, 64 units): independent 1.43, OT 0.032, reflowed 0.0041.
  assert straightness["ot"] < 0.3 * straightness["independent"], straightness
  assert straightness["reflow"] < 0.3 * straightness["independent"], straightness
