"""GAN building blocks against independent truths: the losses' formulas in float64 and their values at
the Nash point, the WGAN-GP and R1 penalties against central finite differences of the critic in
float64, spectral normalisation against jnp.linalg.svd, the DCGAN layout against pytorch/examples'
dcgan (parameter counts and outputs with the same weights), and the mode-coverage measures against
the noncentral chi-square probabilities of the mixtures and a loop-by-loop port of PacGAN's metric.
"""
import math

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from gen_jax.data import levels as data_levels
from gen_jax.data import toy2d
from gen_jax.models import gan


def key(seed):
  return jax.random.key(seed, impl="rbg")


def to64(tree):
  return jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), tree)


# ---------------------------------------------------------------- losses


def _sigmoid64(l):
  return 1.0 / (1.0 + np.exp(-np.asarray(l, np.float64)))


def test_losses_match_their_formulas_in_float64():
  rng = np.random.default_rng(0)
  real, fake = rng.uniform(-8, 8, 64), rng.uniform(-8, 8, 48)  # D(x) in [3e-4, 1 - 3e-4]
  dr, df = _sigmoid64(real), _sigmoid64(fake)
  with jax.enable_x64(True):
    r, f = jnp.asarray(real), jnp.asarray(fake)
    cases = [
        (gan.minimax_discriminator_loss(r, f), -np.mean(np.log(dr)) - np.mean(np.log(1 - df))),
        (gan.minimax_generator_loss(f), np.mean(np.log(1 - df))),
        (gan.non_saturating_generator_loss(f), -np.mean(np.log(df))),
        (gan.wasserstein_discriminator_loss(r, f), np.mean(fake) - np.mean(real)),
        (gan.wasserstein_generator_loss(f), -np.mean(fake)),
        (gan.hinge_discriminator_loss(r, f),
         np.mean(np.maximum(0, 1 - real)) + np.mean(np.maximum(0, 1 + fake))),
        (gan.hinge_generator_loss(f), -np.mean(fake)),
    ]
    for value, expected in cases:
      assert value.dtype == jnp.float64
      np.testing.assert_allclose(float(value), expected, rtol=1e-12)


def test_losses_at_the_nash_point():
  # p_g = p_data: the optimal D is 1/2 everywhere (Goodfellow et al. 2014, prop. 1), logits 0; the
  # game's value is -log 4 (thm. 1), so the minimax D loss is log 4.
  zeros = jnp.zeros(10)
  expected = {
      "minimax": (2 * math.log(2), -math.log(2)), "non_saturating": (2 * math.log(2), math.log(2)),
      "wasserstein": (0.0, 0.0), "hinge": (2.0, 0.0),
  }
  assert set(expected) == set(gan.LOSSES)
  for name, (d_value, g_value) in expected.items():
    d_loss, g_loss = gan.get_losses(name)
    assert float(d_loss(zeros, zeros)) == pytest.approx(d_value, abs=1e-6)
    assert float(g_loss(zeros)) == pytest.approx(g_value, abs=1e-6)
  with pytest.raises(ValueError, match="non_saturating"):
    gan.get_losses("nonsaturating")
  with pytest.raises(ValueError, match=r"shape \[B\]"):
    gan.minimax_discriminator_loss(jnp.zeros((10, 1)), zeros)


def test_losses_are_stable_for_confident_discriminators():
  # float32 log(sigmoid(-100)) = -inf; the softplus forms give the exact asymptotes.
  big = jnp.full(4, 100.0, jnp.float32)
  assert float(gan.minimax_discriminator_loss(-big, big)) == pytest.approx(200.0)
  assert float(gan.non_saturating_generator_loss(-big)) == pytest.approx(100.0)
  assert float(gan.minimax_generator_loss(big)) == pytest.approx(-100.0)
  grad = jax.grad(lambda l: gan.non_saturating_generator_loss(l))(-big)
  np.testing.assert_allclose(grad, -0.25)  # d softplus(-l) / dl = -sigmoid(-l) = -1, over 4


def test_discriminator_accuracy_counts_signs():
  real = jnp.array([2.0, -1.0, 0.0, 3.0])  # correct: > 0, so 2 of 4 (0 counts as wrong)
  fake = jnp.array([-2.0, -0.5, 1.0, 0.0, -4.0])  # correct: < 0, so 3 of 5
  acc_real, acc_fake = gan.discriminator_accuracy(real, fake)
  assert float(acc_real) == 0.5 and float(acc_fake) == pytest.approx(0.6)


# ---------------------------------------------------------------- penalties


def _fd_input_gradients(critic_fn, x, h=1e-5):
  """Central differences of a per-example critic along every input coordinate, float64."""
  d = x[0].size
  eye = np.eye(d).reshape((d, 1) + x.shape[1:])
  flat = lambda a: a.reshape((-1,) + x.shape[1:])
  up = np.asarray(critic_fn(flat(x[None] + h * eye))).reshape(d, -1)
  down = np.asarray(critic_fn(flat(x[None] - h * eye))).reshape(d, -1)
  return ((up - down) / (2 * h)).T.reshape(x.shape)  # [B, ...]


CRITICS = {
    # smooth MLP on vectors; a DCGAN-style conv critic with layer normalisation (WGAN-GP's) on images
    "mlp": (gan.MLPDiscriminator((16, 16), activation=jnp.tanh), (5, 3)),
    "conv_layernorm": (gan.DCGANDiscriminator(base_channels=4, num_downsamplings=2, norm="layer"),
                       (3, 8, 8, 1)),
}


@pytest.mark.parametrize("name", sorted(CRITICS))
def test_gradient_penalty_and_r1_match_finite_differences(name):
  module, shape = CRITICS[name]
  with jax.enable_x64(True):
    r_rng, f_rng = jax.random.split(jax.random.key(1))
    real = jax.random.uniform(r_rng, shape, jnp.float64, -1, 1)
    fake = jax.random.uniform(f_rng, shape, jnp.float64, -1, 1)
    variables = to64(jax.jit(lambda k: module.init(k, real, train=False))(key(0)))
    critic_fn = lambda x: module.apply(variables, x, train=False)
    rng = jax.random.key(7)
    x_hat = np.asarray(gan.random_interpolates(rng, real, fake))
    # x_hat lies on the segment [fake, real], at one eps in [0, 1] per example.
    eps = (x_hat - np.asarray(fake)) / (np.asarray(real) - np.asarray(fake))
    eps = eps.reshape(shape[0], -1)
    assert np.all((eps >= 0) & (eps <= 1)) and np.allclose(eps, eps[:, :1], atol=1e-10)
    assert len(np.unique(np.round(eps[:, 0], 6))) == shape[0]  # a different eps per example

    norms_fd = np.linalg.norm(_fd_input_gradients(critic_fn, x_hat).reshape(shape[0], -1), axis=-1)
    gp = float(jax.jit(lambda a, b: gan.gradient_penalty(critic_fn, a, b, rng))(real, fake))
    np.testing.assert_allclose(gp, np.mean((norms_fd - 1.0) ** 2), rtol=1e-7)
    assert abs(np.mean(norms_fd) - 1) > 0.05  # a penalty far from its minimum: a real comparison

    g_real = _fd_input_gradients(critic_fn, np.asarray(real)).reshape(shape[0], -1)
    r1 = float(jax.jit(lambda a: gan.r1_penalty(critic_fn, a))(real))
    np.testing.assert_allclose(r1, np.mean(np.sum(g_real**2, -1)), rtol=1e-7)
    np.testing.assert_allclose(jax.jit(lambda a: gan.critic_input_gradient_norms(critic_fn, a))(real),
                               np.linalg.norm(g_real, axis=-1), rtol=1e-7)


def test_gradient_penalty_of_a_linear_critic_is_closed_form():
  # l(x) = <w, x>: grad = w everywhere, GP = (|w| - 1)^2 and R1 = |w|^2 whatever the interpolates.
  w = jnp.array([0.3, -1.2, 2.0])
  critic_fn = lambda x: x @ w
  real, fake = jnp.ones((6, 3)), -jnp.ones((6, 3))
  norm = float(jnp.linalg.norm(w))
  gp = float(gan.gradient_penalty(critic_fn, real, fake, key(0)))
  assert gp == pytest.approx((norm - 1) ** 2, rel=1e-5)
  assert float(gan.r1_penalty(critic_fn, real)) == pytest.approx(norm**2, rel=1e-5)
  with pytest.raises(ValueError, match=r"logits \[B\]"):
    gan.r1_penalty(lambda x: (x @ w)[:, None], real)
  with pytest.raises(ValueError, match="one shape"):
    gan.gradient_penalty(critic_fn, real, fake[:3], key(0))


# ---------------------------------------------------------------- spectral normalisation


class _SNLayer(nn.Module):
  layer: nn.Module

  @nn.compact
  def __call__(self, x, train):
    return gan.maybe_spectral_norm(self.layer.clone(), x, True, train)


def _power_iterate(module, variables, x, steps):
  """`steps` train-mode calls, each storing the power iteration's new (u, sigma)."""
  def step(_, v):
    _, state = module.apply(v, x, train=True, mutable=["batch_stats"])
    return {**v, "batch_stats": state["batch_stats"]}
  return jax.jit(lambda v: jax.lax.fori_loop(0, steps, step, v))(variables)


@pytest.mark.parametrize("kind", ["dense", "conv"])
def test_spectral_norm_estimates_the_top_singular_value(kind):
  # Dense kernel [7, 5]; conv kernel [3, 3, 4, 6] normalised as the matrix [36, 6] (Miyato et al.).
  if kind == "dense":
    module, x = _SNLayer(nn.Dense(5, use_bias=False)), jnp.eye(7)
    probe = jnp.eye(7)  # Dense(I) = the normalised kernel
  else:
    module, x = _SNLayer(nn.Conv(6, (3, 3), padding="VALID", use_bias=False)), jnp.ones((1, 3, 3, 4))
    probe = jnp.eye(36).reshape(36, 3, 3, 4)  # one-hot patches read the kernel's rows back
  variables = module.init(key(3), x, train=False)
  params = variables["params"]
  kernel = next(iter(jax.tree_util.tree_leaves(params)))
  matrix = np.asarray(kernel, np.float64).reshape(-1, kernel.shape[-1])
  singular = np.linalg.svd(matrix, compute_uv=False)
  assert singular[1] / singular[0] < 0.95  # power iteration converges as (s2 / s1)^(2 steps)

  state = lambda v: v["batch_stats"]["SpectralNorm_0"]
  u_key = [k for k in state(variables) if k.endswith("/u")][0]
  u0 = np.asarray(state(variables)[u_key])
  module.apply(variables, x, train=False)  # eval mode: allowed without mutable, writes nothing
  variables = _power_iterate(module, variables, x, 300)
  sigma = float(state(variables)[u_key.replace("/u", "/sigma")])
  assert not np.allclose(np.asarray(state(variables)[u_key]), u0)
  assert sigma == pytest.approx(float(jnp.linalg.svd(jnp.asarray(matrix, jnp.float32), compute_uv=False)[0]),
                                rel=1e-5)

  normalised = np.asarray(module.apply(variables, probe, train=False), np.float64).reshape(matrix.shape)
  np.testing.assert_allclose(normalised, matrix / singular[0], rtol=1e-4, atol=1e-6)
  assert np.linalg.svd(normalised, compute_uv=False)[0] == pytest.approx(1.0, abs=1e-5)


def test_spectral_norm_discriminator_state_and_sigmas():
  # Every kernel of an SN discriminator gets a (u, sigma) pair in 'batch_stats', updated only in
  # train mode with mutable=['batch_stats'] (flax raises otherwise); the sigmas converge to the
  # kernels' top singular values.
  module = gan.MLPDiscriminator((12, 8), spectral_norm=True)
  x = jax.random.normal(key(0), (4, 3))
  variables = module.init(key(1), x, train=False)
  with pytest.raises(Exception, match='collection "batch_stats" is immutable'):
    module.apply(variables, x, train=True)
  variables = _power_iterate(module, variables, x, 300)
  sigmas = gan.spectral_sigmas(variables)
  assert len(sigmas) == 3
  for path, sigma in sigmas.items():
    layer = path.split("/")[1]  # 'SpectralNorm_0/Dense_0/kernel/sigma'
    top = np.linalg.svd(np.asarray(variables["params"][layer]["kernel"]), compute_uv=False)[0]
    assert float(sigma) == pytest.approx(top, rel=1e-4), path
  logits = module.apply(variables, x, train=False)
  assert logits.shape == (4,)


# ---------------------------------------------------------------- networks


def _shapes(module, x):
  variables = jax.eval_shape(lambda: module.init(key(0), x, train=False))
  out, state = jax.eval_shape(lambda v: module.apply(v, x, train=True, mutable=["batch_stats"]), variables)
  return variables, out, state


@pytest.mark.parametrize("image_shape", [(8, 8, 1), (28, 28, 1), (64, 64, 3)])
def test_dcgan_and_resnet_shapes(image_shape):
  z100, z128 = jnp.zeros((2, 100)), jnp.zeros((2, 128))
  x = jnp.zeros((2,) + image_shape)
  generators = [(gan.DCGANGenerator(image_shape), z100), (gan.ResNetGenerator(image_shape, channels=32), z128)]
  for generator, z in generators:
    _, out, state = _shapes(generator, z)
    assert out.shape == (2,) + image_shape and out.dtype == jnp.float32
    assert "batch_stats" in state
  for discriminator in [gan.DCGANDiscriminator(), gan.DCGANDiscriminator(norm="none", spectral_norm=True),
                        gan.ResNetDiscriminator(channels=32)]:
    _, out, _ = _shapes(discriminator, x)
    assert out.shape == (2,)


def test_resnet_forward_and_spectral_state():
  g = gan.ResNetGenerator((8, 8, 1), latent_dim=8, channels=8)
  d = gan.ResNetDiscriminator(channels=8)
  z = jax.random.normal(key(0), (3, 8))
  g_vars = g.init(key(1), z, train=False)
  x, g_state = g.apply(g_vars, z, train=True, mutable=["batch_stats"])
  assert x.shape == (3, 8, 8, 1) and float(jnp.max(jnp.abs(x))) <= 1.0 and np.std(np.asarray(x)) > 0
  d_vars = d.init(key(2), x, train=False)
  logits, d_state = d.apply(d_vars, x, train=True, mutable=["batch_stats"])
  assert logits.shape == (3,) and np.all(np.isfinite(logits))
  # One (u, sigma) per kernel: 3 in each down-block (two 3x3 convs and the 1x1 shortcut), 2 in
  # each of the 2 plain blocks, 1 for the dense head.
  assert len(gan.spectral_sigmas(d_state)) == 2 * 3 + 2 * 2 + 1
  # 8 = 4 * 2: one up-block (2 BatchNorms) and the final BatchNorm, each with a mean and a var.
  assert len(jax.tree_util.tree_leaves(g_state)) == 2 * (2 + 1)


def test_mlp_networks_and_bad_inputs():
  g = gan.MLPGenerator(latent_dim=4, hidden_sizes=(16, 16), output_dim=2, batch_norm=True)
  z = jax.random.normal(key(0), (8, 4))
  variables = g.init(key(1), z, train=False)
  x, state = g.apply(variables, z, train=True, mutable=["batch_stats"])
  assert x.shape == (8, 2) and "batch_stats" in state
  d = gan.MLPDiscriminator((16,))
  assert d.apply(d.init(key(2), x, train=False), x, train=False).shape == (8,)
  with pytest.raises(ValueError, match=r"latent_dim=4"):
    g.init(key(1), jnp.zeros((8, 5)), train=False)
  with pytest.raises(ValueError, match=r"8 = 4 \* 2"):
    gan.DCGANGenerator((6, 6, 1)).init(key(0), jnp.zeros((1, 100)), train=False)
  with pytest.raises(ValueError, match=r"rank 4"):
    gan.DCGANDiscriminator().init(key(0), jnp.zeros((2, 64)), train=False)
  with pytest.raises(ValueError, match="'layer'"):
    gan.DCGANDiscriminator(norm="instance").init(key(0), jnp.zeros((1, 8, 8, 1)), train=False)
  with pytest.raises(ValueError, match="divisible by 4"):
    gan.ResNetDiscriminator(num_downsamplings=2).init(key(0), jnp.zeros((1, 6, 6, 1)), train=False)
  assert gan.resolution_plan(64, 64) == (4, 4, 4) and gan.resolution_plan(28, 28) == (7, 7, 2)
  assert gan.resolution_plan(8, 8) == (4, 4, 1) and gan.resolution_plan(8, 8, 2) == (2, 2, 2)


def test_batchnorm_train_and_eval_modes():
  # train=True: batch statistics (an example's output depends on the batch); train=False: running
  # averages, each example on its own.
  g = gan.DCGANGenerator((8, 8, 1), latent_dim=6, base_channels=8)
  z = jax.random.normal(key(0), (4, 6))
  variables = g.init(key(1), z, train=False)
  train_full, _ = g.apply(variables, z, train=True, mutable=["batch_stats"])
  train_half, _ = g.apply(variables, z[:2], train=True, mutable=["batch_stats"])
  assert not np.allclose(train_full[:2], train_half, atol=1e-4)
  np.testing.assert_allclose(g.apply(variables, z, train=False)[:2], g.apply(variables, z[:2], train=False),
                             atol=1e-6)
  with pytest.raises(Exception, match='collection "batch_stats" is immutable'):
    g.apply(variables, z, train=True)


# pytorch/examples dcgan/main.py, nz = 100, ngf = ndf = 64, nc = 3.
def _torch_dcgan():
  import torch
  from torch import nn as tnn
  nz, ngf, ndf, nc = 100, 64, 64, 3
  generator = tnn.Sequential(
      tnn.ConvTranspose2d(nz, ngf * 8, 4, 1, 0, bias=False), tnn.BatchNorm2d(ngf * 8), tnn.ReLU(True),
      tnn.ConvTranspose2d(ngf * 8, ngf * 4, 4, 2, 1, bias=False), tnn.BatchNorm2d(ngf * 4), tnn.ReLU(True),
      tnn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), tnn.BatchNorm2d(ngf * 2), tnn.ReLU(True),
      tnn.ConvTranspose2d(ngf * 2, ngf, 4, 2, 1, bias=False), tnn.BatchNorm2d(ngf), tnn.ReLU(True),
      tnn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), tnn.Tanh())
  lrelu = lambda: tnn.LeakyReLU(0.2, inplace=True)
  discriminator = tnn.Sequential(
      tnn.Conv2d(nc, ndf, 4, 2, 1, bias=False), lrelu(),
      tnn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), tnn.BatchNorm2d(ndf * 2), lrelu(),
      tnn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), tnn.BatchNorm2d(ndf * 4), lrelu(),
      tnn.Conv2d(ndf * 4, ndf * 8, 4, 2, 1, bias=False), tnn.BatchNorm2d(ndf * 8), lrelu(),
      tnn.Conv2d(ndf * 8, 1, 4, 1, 0, bias=False), tnn.Sigmoid())
  return torch, generator, discriminator


def _variables_from_torch(torch, sequential, transposed):
  """The flax variables of our DCGAN holding the weights of a torch DCGAN (layers in order)."""
  convs = [m for m in sequential if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
  norms = [m for m in sequential if isinstance(m, torch.nn.BatchNorm2d)]
  prefix = "ConvTranspose" if transposed else "Conv"
  params, stats = {}, {}
  for i, conv in enumerate(convs):
    weight = conv.weight.detach().numpy()
    # torch ConvTranspose2d [in, out, k, k] convolves with the flipped kernel; Conv2d is [out, in, k, k];
    # flax's kernels are [k, k, in, out].
    kernel = weight.transpose(2, 3, 0, 1)[::-1, ::-1] if transposed else weight.transpose(2, 3, 1, 0)
    params[f"{prefix}_{i}"] = {"kernel": jnp.asarray(np.ascontiguousarray(kernel))}
  for i, norm in enumerate(norms):
    params[f"BatchNorm_{i}"] = {"scale": jnp.asarray(norm.weight.detach().numpy()),
                                "bias": jnp.asarray(norm.bias.detach().numpy())}
    stats[f"BatchNorm_{i}"] = {"mean": jnp.asarray(norm.running_mean.numpy()),
                               "var": jnp.asarray(norm.running_var.numpy())}
  return {"params": params, "batch_stats": stats}


def _check_structure(variables, module, x):
  expected = jax.eval_shape(lambda: module.init(key(0), x, train=False))
  shapes = lambda tree: jax.tree_util.tree_map(lambda a: tuple(a.shape), tree)
  assert shapes(variables) == shapes(expected)
  return gan.count_params(expected)


def test_dcgan_64_is_pytorch_examples_dcgan():
  torch, t_gen, t_disc = _torch_dcgan()
  torch.manual_seed(0)
  for module in list(t_gen) + list(t_disc):
    if isinstance(module, (torch.nn.Conv2d, torch.nn.ConvTranspose2d)):  # the example's weights_init
      torch.nn.init.normal_(module.weight, 0.0, 0.02)
    elif isinstance(module, torch.nn.BatchNorm2d):  # N(1, 0.02) in the example; wider here
      torch.nn.init.normal_(module.weight, 1.0, 0.2)
      torch.nn.init.normal_(module.bias, 0.0, 0.2)
  num = lambda m: sum(p.numel() for p in m.parameters())
  assert (num(t_gen), num(t_disc)) == (3_576_704, 2_765_568)
  g, d = gan.DCGANGenerator((64, 64, 3)), gan.DCGANDiscriminator()
  z = np.random.default_rng(0).standard_normal((4, 100)).astype(np.float32)
  g_vars = _variables_from_torch(torch, t_gen, transposed=True)
  assert _check_structure(g_vars, g, z) == num(t_gen)

  # Same weights -> same images, in train mode (batch statistics) and in eval mode (running ones).
  t_z = torch.from_numpy(z).reshape(4, 100, 1, 1)
  t_gen.train()
  with torch.no_grad():
    t_images = t_gen(t_z).numpy().transpose(0, 2, 3, 1)
  images, state = jax.jit(lambda v, z: g.apply(v, z, train=True, mutable=["batch_stats"]))(g_vars, z)
  np.testing.assert_allclose(images, t_images, atol=2e-5)
  assert np.std(t_images) > 0.1
  # One step of the running averages from (0, 1): means agree (momentum 0.1 in torch's convention);
  # torch keeps the unbiased variance, flax the biased one: var_torch = 0.9 + 0.1 n / (n - 1) var_batch.
  for i in range(4):
    t_norm = [m for m in t_gen if isinstance(m, torch.nn.BatchNorm2d)][i]
    stats_i = state["batch_stats"][f"BatchNorm_{i}"]
    np.testing.assert_allclose(stats_i["mean"], t_norm.running_mean.numpy(), atol=1e-6)
    n = 4 * (4 * 2**i) ** 2  # examples x pixels per channel at this layer's resolution
    var_batch = (np.asarray(stats_i["var"]) - 0.9) / 0.1
    np.testing.assert_allclose(0.9 + 0.1 * var_batch * n / (n - 1), t_norm.running_var.numpy(), rtol=1e-4)
  t_gen.eval()
  with torch.no_grad():
    t_eval = t_gen(t_z).numpy().transpose(0, 2, 3, 1)
  eval_images = g.apply(_variables_from_torch(torch, t_gen, transposed=True), z, train=False)
  np.testing.assert_allclose(eval_images, t_eval, atol=2e-5)

  x = np.ascontiguousarray(t_images[:, ::-1])  # images in [-1, 1], [B, H, W, C]
  d_vars = _variables_from_torch(torch, t_disc, transposed=False)
  assert _check_structure(d_vars, d, x) == num(t_disc)
  t_disc.train()
  with torch.no_grad():
    t_x = torch.from_numpy(np.ascontiguousarray(x.transpose(0, 3, 1, 2)))
    t_logits = t_disc[:-1](t_x).reshape(-1).numpy()  # the logits version: no Sigmoid
    t_probs = t_disc(t_x).reshape(-1).numpy()
  logits, _ = d.apply(d_vars, x, train=True, mutable=["batch_stats"])
  np.testing.assert_allclose(logits, t_logits, atol=1e-4)
  np.testing.assert_allclose(jax.nn.sigmoid(logits), t_probs, atol=1e-5)
  assert np.std(t_logits) > 1e-2  # distinct logits: the comparison is not of constants


# ---------------------------------------------------------------- mode coverage


def _pacgan_metric(points, means, std, threshold=3.0):
  """PacGAN's MetricLogger loop (fjxmlzn/PacGAN, extensions.py), restated in numpy."""
  counts = np.zeros(len(means))
  for x in points:
    dist = [math.sqrt(np.sum((x - m) ** 2 / std**2)) for m in means]
    j = int(np.argmin(dist))
    if dist[j] < threshold:
      counts[j] += 1
  return counts


@pytest.mark.parametrize("name", toy2d.MIXTURES)
def test_mode_coverage_of_exact_mixture_samples(name):
  centres, std = toy2d.mixture_modes(name)
  n = 20_000
  samples = np.asarray(toy2d.sample(name, jax.random.key(5), n))
  result = gan.toy2d_mode_coverage(name, samples)
  assert int(result["modes_captured"]) == len(centres)
  assert int(jnp.sum(result["mode_counts"])) == round(float(result["high_quality_fraction"]) * n)
  # P(high quality) for a sample of mode 0 = P(it lies in any of the disjoint balls B(c_k, 3 s)) =
  # sum_k P(noncentral chi^2_2(|c_0 - c_k|^2 / s^2) < 9); the k = 0 term is chi^2_2's 0.98889.
  lam = np.sum((centres - centres[0]) ** 2, -1) / std**2
  expected = stats.chi2.cdf(9, 2) + sum(stats.ncx2.cdf(9, 2, l) for l in lam[1:])
  se = math.sqrt(expected * (1 - expected) / n)
  assert float(result["high_quality_fraction"]) == pytest.approx(expected, abs=4 * se)
  assert stats.chi2.cdf(9, 2) == pytest.approx(1 - math.exp(-4.5))
  # Counts spread evenly: KL to uniform of a multinomial histogram ~ (K - 1) / (2 N).
  assert float(result["kl_to_uniform"]) < 5 * (len(centres) - 1) / (2 * n)


def test_mode_coverage_of_three_modes_and_pacgan_reference():
  centres, std = toy2d.mixture_modes("grid25")
  rng = np.random.default_rng(0)
  chosen = np.array([0, 5, 17])
  samples = centres[rng.choice(chosen, 2500)] + std * rng.standard_normal((2500, 2))
  result = gan.mode_coverage(samples, centres, std)
  assert int(result["modes_captured"]) == 3
  assert set(np.flatnonzero(np.asarray(result["mode_counts"]))) == set(chosen)
  assert float(result["kl_to_uniform"]) == pytest.approx(math.log(25 / 3), abs=0.01)
  # Samples spread around and between the modes: the same counts as PacGAN's loop.
  wide = rng.uniform(-5, 5, (600, 2))
  near = centres[rng.integers(25, size=600)] + 2.5 * std * rng.standard_normal((600, 2))
  points = np.concatenate([wide, near]).astype(np.float32)
  ours = gan.mode_coverage(points, centres, std)
  reference = _pacgan_metric(points.astype(np.float64), centres, std)
  np.testing.assert_array_equal(ours["mode_counts"], reference)
  assert int(ours["modes_captured"]) == np.count_nonzero(reference)
  assert float(ours["high_quality_fraction"]) == pytest.approx(reference.sum() / len(points))


def test_mode_coverage_edge_cases():
  centres = np.array([[0.0, 0.0], [10.0, 0.0], [0.0, 10.0]])
  one_each = gan.mode_coverage(centres, centres, 1.0)
  assert int(one_each["modes_captured"]) == 3 and float(one_each["kl_to_uniform"]) == pytest.approx(0.0)
  collapsed = gan.mode_coverage(np.zeros((5, 2)), centres, 1.0)
  assert int(collapsed["modes_captured"]) == 1
  assert float(collapsed["kl_to_uniform"]) == pytest.approx(math.log(3), rel=1e-6)
  # min_count: a mode with one high-quality sample is captured at min_count=1, not at 2.
  mixed = np.concatenate([np.zeros((4, 2)), [[10.0, 0.5]]])
  assert int(gan.mode_coverage(mixed, centres, 1.0)["modes_captured"]) == 2
  assert int(gan.mode_coverage(mixed, centres, 1.0, min_count=2)["modes_captured"]) == 1
  # 3 std is a strict boundary; far samples are not high quality, and with none the KL is NaN.
  edge = gan.mode_coverage(np.array([[2.999, 0.0], [3.0, 0.0], [3.001, 0.0]]), centres, 1.0)
  assert int(edge["mode_counts"][0]) == 1
  far = gan.mode_coverage(np.full((3, 2), 5.0), centres, 1.0)
  assert float(far["high_quality_fraction"]) == 0.0 and np.isnan(float(far["kl_to_uniform"]))
  with pytest.raises(ValueError, match=r"\[K, D=2\]"):
    gan.mode_coverage(np.zeros((3, 2)), np.zeros((3, 3)), 1.0)
  with pytest.raises(ValueError, match="not a Gaussian mixture"):
    toy2d.mixture_modes("rings")


def test_image_scale_round_trip():
  levels = jnp.arange(256, dtype=jnp.uint8).reshape(1, 16, 16, 1)
  x = data_levels.to_model_space(levels, (16, 16, 1), 256)
  assert float(x.min()) == -1.0 and float(x.max()) == 1.0
  np.testing.assert_array_equal(gan.generator_output_to_levels(x, 256), levels)
  with pytest.raises(ValueError, match=r"\[-1.0, 1.0\]"):
    gan.generator_output_to_levels(x * 1.1, 256)
  with pytest.raises(ValueError, match="integer levels"):
    data_levels.to_model_space(x, (16, 16, 1), 256)
