"""Toy 2-D densities of the flows literature, with exact (or quadrature-exact) log-densities.

The samplers follow the conventions of FFJORD's `toy_data.py` (Grathwohl et al. 2019), which most
flow papers reuse, with random instead of evenly spaced positions along curves (the same
distribution in the limit). Every density has `sample(name, rng, num) -> [num, 2] float32`, and
`log_prob(name, x) -> [num]` in nats where a closed form exists:

  two_moons       sklearn `make_moons(noise=0.1)` * 2 + (-1, -0.2): t ~ U(0, pi), moon k w.p. 1/2,
                  mean m_0(t) = (-1, -0.2) + 2 (cos t, sin t), m_1(t) = (1, 0.8) - 2 (cos t, sin t),
                  x = m_k(t) + N(0, 0.2^2 I).
                  p(x) = 1/2 sum_k (1/pi) int_0^pi N(x; m_k(t), 0.2^2 I) dt, by Gauss-Legendre
                  quadrature in t (error below float32 resolution; checked against scipy.quad).
  eight_gaussians centres 4 (cos k pi/4, sin k pi/4), std 0.5, all divided by 1.414 (FFJORD):
                  p(x) = 1/8 sum_k N(x; 4 c_k / 1.414, (0.5 / 1.414)^2 I).
  checkerboard    FFJORD: uniform on the 8 squares of side 2 in [-4, 4)^2 with
                  floor(x1 / 2) + floor(x2 / 2) even: p(x) = 1/32 there, 0 (log p = -inf) elsewhere.
  rings           4 circles of radius R_k in {0.75, 1.5, 2.25, 3}, w.p. 1/4 each (FFJORD: 3 * {1/4,
                  1/2, 3/4, 1}), angle ~ U(0, 2 pi), x = R_k (cos, sin) + N(0, 0.08^2 I) (FFJORD's
                  isotropic noise). Averaging the Gaussian over the angle gives the closed form
                  (Rice distribution in the radius r = |x|, with its 1 / (2 pi r) Jacobian folded in):
                  p(x | k) = exp(-(r - R_k)^2 / (2 s^2)) i0e(r R_k / s^2) / (2 pi s^2),  s = 0.08,
                  i0e(z) = exp(-z) I_0(z) the scaled modified Bessel function.
  swiss_roll      sklearn `make_swiss_roll(noise=1)` columns (0, 2) / 5: t ~ U(1.5 pi, 4.5 pi),
                  x = (t cos t, t sin t) / 5 + N(0, 0.2^2 I);
                  p(x) = (1 / 3 pi) int N(x; (t cos t, t sin t) / 5, 0.2^2 I) dt, by quadrature in t.
  pinwheel        FFJORD: 5 arms, radial N(1, 0.3^2), tangential N(0, 0.1^2), rotated by
                  angle 2 pi k / 5 + 0.25 exp(radial), times 2. A non-injective warp of a 2-D Gaussian:
                  no closed-form density, `log_prob` raises NotImplementedError.
  grid25          the 2-D grid of the mode-collapse literature (VEEGAN, Srivastava et al. 2017;
                  PacGAN, Lin et al. 2018, whose released config we follow): 25 Gaussians of std
                  0.05 centred on {-4, -2, 0, 2, 4}^2, equal weights:
                  p(x) = 1/25 sum_k N(x; c_k, 0.05^2 I).

The two Gaussian mixtures (eight_gaussians, grid25) give their centres and common std through
`mixture_modes(name)`, for the mode-coverage measures of `gen_jax.models.gan.mode_coverage`.

A model's test NLL (nats) is held against `true_nll(name, x_test)`, the true density's NLL on the
same test samples; `entropy` estimates the differential entropy E_p[-log p], the best NLL possible
in expectation.
"""
from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import checks

NAMES = ("two_moons", "eight_gaussians", "checkerboard", "rings", "swiss_roll", "pinwheel", "grid25")
MIXTURES = ("eight_gaussians", "grid25")  # the isotropic Gaussian mixtures: `mixture_modes`

_MOONS_STD = 0.2
_MOONS_CENTRES = ((-1.0, -0.2), (1.0, 0.8))
_MOONS_SIGNS = (1.0, -1.0)
_EIGHT_SCALE = 4.0
_EIGHT_STD = 0.5
_EIGHT_DIVISOR = 1.414
_RING_RADII = (0.75, 1.5, 2.25, 3.0)
_RING_STD = 0.08
_ROLL_T = (1.5 * math.pi, 4.5 * math.pi)
_ROLL_STD = 0.2
_PINWHEEL = dict(radial_std=0.3, tangential_std=0.1, num_arms=5, rate=0.25)
_GRID_COORDS = (-4.0, -2.0, 0.0, 2.0, 4.0)
_GRID_STD = 0.05

_QUADRATURE_NODES = {"two_moons": 256, "swiss_roll": 1024}
_LOG_PROB_BATCH = 1024  # points per chunk for the quadrature densities (bounds memory)


def _check_name(name: str) -> None:
  if name not in NAMES:
    raise ValueError(f"unknown toy2d density {name!r}; expected one of {list(NAMES)}")


# ---------------------------------------------------------------------------------------------
# Samplers.


def _sample_two_moons(rng, num):
  k_rng, t_rng, n_rng = jax.random.split(rng, 3)
  k = jax.random.bernoulli(k_rng, 0.5, (num,)).astype(jnp.int32)
  t = jax.random.uniform(t_rng, (num,), maxval=math.pi)
  centres = jnp.asarray(_MOONS_CENTRES)[k]
  signs = jnp.asarray(_MOONS_SIGNS)[k][:, None]
  mean = centres + 2.0 * signs * jnp.stack([jnp.cos(t), jnp.sin(t)], -1)
  return mean + _MOONS_STD * jax.random.normal(n_rng, (num, 2))


def _eight_centres():
  angles = jnp.arange(8) * (math.pi / 4)
  return _EIGHT_SCALE * jnp.stack([jnp.cos(angles), jnp.sin(angles)], -1) / _EIGHT_DIVISOR


def _sample_eight_gaussians(rng, num):
  k_rng, n_rng = jax.random.split(rng)
  k = jax.random.randint(k_rng, (num,), 0, 8)
  return _eight_centres()[k] + (_EIGHT_STD / _EIGHT_DIVISOR) * jax.random.normal(n_rng, (num, 2))


def _sample_checkerboard(rng, num):
  r1, r2, r3 = jax.random.split(rng, 3)
  x1 = jax.random.uniform(r1, (num,)) * 4 - 2
  x2 = jax.random.uniform(r2, (num,)) - jax.random.randint(r3, (num,), 0, 2) * 2
  x2 = x2 + jnp.mod(jnp.floor(x1), 2)
  return 2 * jnp.stack([x1, x2], -1)


def _sample_rings(rng, num):
  k_rng, a_rng, n_rng = jax.random.split(rng, 3)
  radius = jnp.asarray(_RING_RADII)[jax.random.randint(k_rng, (num,), 0, len(_RING_RADII))]
  angle = jax.random.uniform(a_rng, (num,), maxval=2 * math.pi)
  mean = radius[:, None] * jnp.stack([jnp.cos(angle), jnp.sin(angle)], -1)
  return mean + _RING_STD * jax.random.normal(n_rng, (num, 2))


def _roll_mean(t):
  return jnp.stack([t * jnp.cos(t), t * jnp.sin(t)], -1) / 5.0


def _sample_swiss_roll(rng, num):
  t_rng, n_rng = jax.random.split(rng)
  t = jax.random.uniform(t_rng, (num,), minval=_ROLL_T[0], maxval=_ROLL_T[1])
  return _roll_mean(t) + _ROLL_STD * jax.random.normal(n_rng, (num, 2))


def _sample_pinwheel(rng, num):
  p = _PINWHEEL
  k_rng, f_rng = jax.random.split(rng)
  arm = jax.random.randint(k_rng, (num,), 0, p["num_arms"])
  features = jax.random.normal(f_rng, (num, 2)) * jnp.asarray([p["radial_std"], p["tangential_std"]])
  features = features.at[:, 0].add(1.0)
  angles = 2 * math.pi * arm / p["num_arms"] + p["rate"] * jnp.exp(features[:, 0])
  c, s = jnp.cos(angles), jnp.sin(angles)
  # FFJORD: einsum("ti,tij->tj", features, [[c, -s], [s, c]]).
  x = jnp.stack([features[:, 0] * c + features[:, 1] * s, -features[:, 0] * s + features[:, 1] * c], -1)
  return 2 * x


def _grid_centres():
  xx, yy = jnp.meshgrid(jnp.asarray(_GRID_COORDS), jnp.asarray(_GRID_COORDS), indexing="ij")
  return jnp.stack([xx.ravel(), yy.ravel()], -1)  # [25, 2]


def _sample_grid25(rng, num):
  k_rng, n_rng = jax.random.split(rng)
  k = jax.random.randint(k_rng, (num,), 0, len(_GRID_COORDS) ** 2)
  return _grid_centres()[k] + _GRID_STD * jax.random.normal(n_rng, (num, 2))


_SAMPLERS = {
    "two_moons": _sample_two_moons,
    "eight_gaussians": _sample_eight_gaussians,
    "checkerboard": _sample_checkerboard,
    "rings": _sample_rings,
    "swiss_roll": _sample_swiss_roll,
    "pinwheel": _sample_pinwheel,
    "grid25": _sample_grid25,
}


@functools.partial(jax.jit, static_argnums=(0, 2))
def _sample(name, rng, num):
  return _SAMPLERS[name](rng, num).astype(jnp.float32)


def sample(name: str, rng: jax.Array, num: int) -> jax.Array:
  """`num` samples of toy density `name`, float32 [num, 2]."""
  _check_name(name)
  checks.check_positive_int(num, "num")
  return _sample(name, rng, num)


# ---------------------------------------------------------------------------------------------
# Log-densities (nats).


def _log_normal_2d(x, mean, std):
  """log N(x; mean, std^2 I) for x [..., 2]."""
  return -0.5 * jnp.sum(jnp.square((x - mean) / std), -1) - 2 * math.log(std) - math.log(2 * math.pi)


@functools.lru_cache(maxsize=None)
def _gauss_legendre(num_nodes: int, low: float, high: float) -> tuple[np.ndarray, np.ndarray]:
  """Nodes on [low, high] and log of weights normalised to sum to 1 (the uniform density of t)."""
  nodes, weights = np.polynomial.legendre.leggauss(num_nodes)
  t = 0.5 * (high - low) * nodes + 0.5 * (high + low)
  return t.astype(np.float32), np.log(weights / weights.sum()).astype(np.float32)


def _curve_log_prob(x, mean_fn, t_range, std, num_nodes):
  """log of E_{t ~ U(t_range)} N(x; mean_fn(t), std^2 I), by Gauss-Legendre quadrature in t."""
  t, log_w = _gauss_legendre(num_nodes, *t_range)
  means = mean_fn(jnp.asarray(t))  # [nodes, 2]

  def chunk(xb):  # [batch, 2] -> [batch]
    return jax.nn.logsumexp(_log_normal_2d(xb[:, None, :], means, std) + log_w, axis=-1)

  return jax.lax.map(chunk, x[:, None, :], batch_size=_LOG_PROB_BATCH)[:, 0]


def _log_prob_two_moons(x):
  n = _QUADRATURE_NODES["two_moons"]
  per_moon = [
      _curve_log_prob(
          x, lambda t, c=c, s=s: jnp.asarray(c) + 2.0 * s * jnp.stack([jnp.cos(t), jnp.sin(t)], -1),
          (0.0, math.pi), _MOONS_STD, n)
      for c, s in zip(_MOONS_CENTRES, _MOONS_SIGNS)
  ]
  return jax.nn.logsumexp(jnp.stack(per_moon, -1), axis=-1) - math.log(2)


def _log_prob_eight_gaussians(x):
  log_k = _log_normal_2d(x[:, None, :], _eight_centres(), _EIGHT_STD / _EIGHT_DIVISOR)
  return jax.nn.logsumexp(log_k, axis=-1) - math.log(8)


def _log_prob_checkerboard(x):
  inside = jnp.all((x >= -4) & (x < 4), axis=-1)
  even = jnp.mod(jnp.floor(x[:, 0] / 2) + jnp.floor(x[:, 1] / 2), 2) == 0
  return jnp.where(inside & even, -math.log(32.0), -jnp.inf)


def _log_prob_rings(x):
  r = jnp.linalg.norm(x, axis=-1)[:, None]  # [num, 1]
  radii = jnp.asarray(_RING_RADII)
  s2 = _RING_STD**2
  log_k = (-jnp.square(r - radii) / (2 * s2) + jnp.log(jax.scipy.special.i0e(r * radii / s2))
           - math.log(2 * math.pi * s2))
  return jax.nn.logsumexp(log_k, axis=-1) - math.log(len(_RING_RADII))


def _log_prob_swiss_roll(x):
  return _curve_log_prob(x, _roll_mean, _ROLL_T, _ROLL_STD, _QUADRATURE_NODES["swiss_roll"])


def _log_prob_grid25(x):
  log_k = _log_normal_2d(x[:, None, :], _grid_centres(), _GRID_STD)
  return jax.nn.logsumexp(log_k, axis=-1) - math.log(len(_GRID_COORDS) ** 2)


_LOG_PROBS = {
    "two_moons": _log_prob_two_moons,
    "eight_gaussians": _log_prob_eight_gaussians,
    "checkerboard": _log_prob_checkerboard,
    "rings": _log_prob_rings,
    "swiss_roll": _log_prob_swiss_roll,
    "grid25": _log_prob_grid25,
}


def has_log_prob(name: str) -> bool:
  _check_name(name)
  return name in _LOG_PROBS


@functools.partial(jax.jit, static_argnums=0)
def _log_prob(name, x):
  return _LOG_PROBS[name](x.astype(jnp.float32))


def log_prob(name: str, x: jax.Array) -> jax.Array:
  """Exact log-density of toy density `name` at x [num, 2], in nats, shape [num].

  Raises:
    NotImplementedError: for 'pinwheel', which has no closed-form density.
  """
  _check_name(name)
  if name not in _LOG_PROBS:
    raise NotImplementedError(
        f"toy2d density {name!r} has no closed-form log-density (a non-injective warp of a 2-D "
        f"Gaussian); densities with one: {sorted(_LOG_PROBS)}")
  x = jnp.asarray(x)
  checks.check_event_shape(x, (2,), "x")
  return _log_prob(name, x)


def true_nll(name: str, x: jax.Array) -> jax.Array:
  """-mean_i log p(x_i) in nats per example: the true density's NLL on the set x [num, 2]."""
  return -jnp.mean(log_prob(name, x))


def entropy(name: str, rng: jax.Array, num: int = 100_000) -> tuple[float, float]:
  """Monte-Carlo differential entropy H(p) = E_p[-log p(x)] in nats, with its standard error.

  Returns:
    (estimate, standard error), both in nats; from `num` fresh samples.
  """
  nll = -log_prob(name, sample(name, rng, num))
  return float(jnp.mean(nll)), float(jnp.std(nll) / math.sqrt(num))


def mixture_modes(name: str) -> tuple[np.ndarray, float]:
  """(centres [K, 2] float64, std) of an equal-weight isotropic Gaussian mixture in `MIXTURES`.

  eight_gaussians: K = 8, centres 4 (cos k pi/4, sin k pi/4) / 1.414, std 0.5 / 1.414 (FFJORD);
  grid25: K = 25, centres {-4, -2, 0, 2, 4}^2 (row-major in (x1, x2)), std 0.05.
  """
  _check_name(name)
  if name == "eight_gaussians":
    angles = np.arange(8) * (math.pi / 4)
    centres = _EIGHT_SCALE * np.stack([np.cos(angles), np.sin(angles)], -1) / _EIGHT_DIVISOR
    return centres, _EIGHT_STD / _EIGHT_DIVISOR
  if name == "grid25":
    xx, yy = np.meshgrid(_GRID_COORDS, _GRID_COORDS, indexing="ij")  # as `_grid_centres`
    return np.stack([xx.ravel(), yy.ravel()], -1), _GRID_STD
  raise ValueError(f"toy2d density {name!r} is not a Gaussian mixture with known modes; expected one "
                   f"of {list(MIXTURES)}")
