"""GAN objectives as pure functions of discriminator logits, and the critic-gradient penalties.

D(x) = sigmoid(l(x)) for logits l; every loss is minimised by its own player and averaged over the
batch (logits [B]). log D = -softplus(-l) and log(1 - D) = -softplus(l) exactly, so no loss forms
log(sigmoid(l)), which underflows to -inf for l below about -88 in float32.

  minimax (Goodfellow et al. 2014, eq. 1):
    D:  -E_x log D(x) - E_z log(1 - D(G(z)))  = E softplus(-l_real) + E softplus(l_fake)
    G:   E_z log(1 - D(G(z)))                  = -E softplus(l_fake)
  non-saturating G (Goodfellow et al. 2014, sec. 3):
    G:  -E_z log D(G(z))                       = E softplus(-l_fake)
  Wasserstein (Arjovsky et al. 2017; the critic's output is l, unbounded):
    D:   E_z l(G(z)) - E_x l(x)                G:  -E_z l(G(z))
  hinge (Lim & Ye 2017, "Geometric GAN"; Miyato et al. 2018):
    D:   E_x relu(1 - l(x)) + E_z relu(1 + l(G(z)))      G:  -E_z l(G(z))

At the Nash point of the original game (p_g = p_data, D = 1/2, l = 0) the values are: minimax D
2 log 2 and G -log 2, non-saturating G log 2, Wasserstein 0 and 0, hinge D 2 and G 0.

Penalties on the critic's input gradient, for a `critic_fn(x [B, ...]) -> logits [B]` in which
example i's logit depends on example i only (so d sum_i l_i / d x_i = d l_i / d x_i: no BatchNorm in
train mode):

  gradient_penalty (WGAN-GP, Gulrajani et al. 2017, eq. 3): E_{x_hat} (||grad l(x_hat)||_2 - 1)^2,
    x_hat = eps x_real + (1 - eps) x_fake, eps ~ U[0, 1] per example; the paper weighs it by 10.
  r1_penalty (Mescheder et al. 2018, "Which training methods for GANs do actually converge?"):
    E_{x ~ p_data} ||grad l(x)||_2^2; the paper's regulariser is gamma / 2 times this (the weighting
    is left to the caller).
"""
from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

Critic = Callable[[jax.Array], jax.Array]  # x [B, ...] -> logits [B]
DiscriminatorLoss = Callable[[jax.Array, jax.Array], jax.Array]  # (real_logits, fake_logits) -> scalar
GeneratorLoss = Callable[[jax.Array], jax.Array]  # fake_logits -> scalar
LOSSES = ("minimax", "non_saturating", "wasserstein", "hinge")


def _check_logits(logits: jax.Array, name: str) -> None:
  if logits.ndim != 1:
    raise ValueError(f"{name} must be discriminator logits of shape [B], got {tuple(logits.shape)}")


def minimax_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """-E log D(x) - E log(1 - D(G(z))) = E softplus(-l_real) + E softplus(l_fake) (nats)."""
  _check_logits(real_logits, "real_logits")
  _check_logits(fake_logits, "fake_logits")
  return jnp.mean(jax.nn.softplus(-real_logits)) + jnp.mean(jax.nn.softplus(fake_logits))


def minimax_generator_loss(fake_logits: jax.Array) -> jax.Array:
  """E log(1 - D(G(z))) = -E softplus(l_fake): Goodfellow's saturating generator objective."""
  _check_logits(fake_logits, "fake_logits")
  return -jnp.mean(jax.nn.softplus(fake_logits))


def non_saturating_generator_loss(fake_logits: jax.Array) -> jax.Array:
  """-E log D(G(z)) = E softplus(-l_fake): strong gradients where D rejects the fakes."""
  _check_logits(fake_logits, "fake_logits")
  return jnp.mean(jax.nn.softplus(-fake_logits))


def wasserstein_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """E l(G(z)) - E l(x): minus the critic's estimate of the Wasserstein-1 distance."""
  _check_logits(real_logits, "real_logits")
  _check_logits(fake_logits, "fake_logits")
  return jnp.mean(fake_logits) - jnp.mean(real_logits)


def wasserstein_generator_loss(fake_logits: jax.Array) -> jax.Array:
  """-E l(G(z))."""
  _check_logits(fake_logits, "fake_logits")
  return -jnp.mean(fake_logits)


def hinge_discriminator_loss(real_logits: jax.Array, fake_logits: jax.Array) -> jax.Array:
  """E relu(1 - l(x)) + E relu(1 + l(G(z)))."""
  _check_logits(real_logits, "real_logits")
  _check_logits(fake_logits, "fake_logits")
  return jnp.mean(jax.nn.relu(1.0 - real_logits)) + jnp.mean(jax.nn.relu(1.0 + fake_logits))


def hinge_generator_loss(fake_logits: jax.Array) -> jax.Array:
  """-E l(G(z)) (Miyato et al. 2018; the same as the Wasserstein generator loss)."""
  _check_logits(fake_logits, "fake_logits")
  return -jnp.mean(fake_logits)


_LOSS_PAIRS = {
    "minimax": (minimax_discriminator_loss, minimax_generator_loss),
    "non_saturating": (minimax_discriminator_loss, non_saturating_generator_loss),
    "wasserstein": (wasserstein_discriminator_loss, wasserstein_generator_loss),
    "hinge": (hinge_discriminator_loss, hinge_generator_loss),
}


def get_losses(name: str) -> tuple[DiscriminatorLoss, GeneratorLoss]:
  """(discriminator_loss(real_logits, fake_logits), generator_loss(fake_logits)) of loss `name`."""
  if name not in _LOSS_PAIRS:
    raise ValueError(f"unknown GAN loss {name!r}: expected one of {list(LOSSES)}")
  return _LOSS_PAIRS[name]


def discriminator_accuracy(real_logits: jax.Array, fake_logits: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(fraction of real examples with l > 0, fraction of fakes with l < 0); l = 0 counts as wrong."""
  _check_logits(real_logits, "real_logits")
  _check_logits(fake_logits, "fake_logits")
  return jnp.mean(real_logits > 0), jnp.mean(fake_logits < 0)


def critic_input_gradients(critic_fn: Critic, x: jax.Array) -> jax.Array:
  """d l_i / d x_i for every example, x's shape, through d (sum_i l_i) / dx (see the module docstring)."""
  def total(x):
    logits = critic_fn(x)
    if logits.shape != x.shape[:1]:
      raise ValueError(f"critic_fn must map x [B, ...] to logits [B] = {x.shape[:1]}, got "
                       f"{tuple(logits.shape)}")
    return jnp.sum(logits)
  return jax.grad(total)(x)


def critic_input_gradient_norms(critic_fn: Critic, x: jax.Array) -> jax.Array:
  """||d l_i / d x_i||_2 per example [B], over all of x_i's axes (also a training-health metric)."""
  g = critic_input_gradients(critic_fn, x).reshape(x.shape[0], -1)
  # sqrt(s + tiny) keeps the derivative finite where the gradient vanishes (the exact norm's is NaN).
  return jnp.sqrt(jnp.sum(jnp.square(g), axis=-1) + 1e-12)


def random_interpolates(rng: jax.Array, real: jax.Array, fake: jax.Array) -> jax.Array:
  """x_hat = eps real + (1 - eps) fake, one eps ~ U[0, 1] per example (WGAN-GP's sampling of x_hat)."""
  if real.shape != fake.shape:
    raise ValueError(f"real and fake must have one shape, got {tuple(real.shape)} and {tuple(fake.shape)}")
  eps = jax.random.uniform(rng, (real.shape[0],) + (1,) * (real.ndim - 1), dtype=real.dtype)
  return eps * real + (1.0 - eps) * fake


def gradient_penalty(critic_fn: Critic, real: jax.Array, fake: jax.Array, rng: jax.Array,
                     target: float = 1.0) -> jax.Array:
  """E (||grad l(x_hat)||_2 - target)^2 at `random_interpolates(rng, real, fake)` (WGAN-GP, unweighted)."""
  x_hat = random_interpolates(rng, real, fake)
  return jnp.mean(jnp.square(critic_input_gradient_norms(critic_fn, x_hat) - target))


def r1_penalty(critic_fn: Critic, real: jax.Array) -> jax.Array:
  """E ||grad l(x)||_2^2 on real data (Mescheder et al. 2018); the regulariser is gamma / 2 times it."""
  g = critic_input_gradients(critic_fn, real).reshape(real.shape[0], -1)
  return jnp.mean(jnp.sum(jnp.square(g), axis=-1))
