"""Noise schedules of variance-preserving diffusion, all written as a log signal-to-noise ratio.

The forward process is z_t = alpha_t x + sigma_t eps, eps ~ N(0, I), t in [0, 1], with
alpha_t^2 + sigma_t^2 = 1 (variance preserving), so one function fixes everything: the log-SNR

  lambda(t) = log(alpha_t^2 / sigma_t^2),  alpha_t^2 = sigmoid(lambda),  sigma_t^2 = sigmoid(-lambda),

decreasing from lambda(0) (almost clean) to lambda(1) (almost pure noise). VDM (Kingma et al. 2021)
writes gamma(t) = -lambda(t). The schedules:

  DiscreteSchedule   DDPM's T states (Ho et al. 2020): betas b_1..b_T, abar_i = prod_{j<=i} (1 - b_j),
                     lambda_i = log(abar_i / (1 - abar_i)) at t_i = (i - 1) / (T - 1); in between,
                     lambda is linear in t (used only by samplers that leave the grid).
                     `linear_betas` (Ho et al.: 1e-4 ... 0.02 for T = 1000) and `cosine_betas`
                     (Nichol & Dhariwal 2021, s = 0.008, b <= 0.999).
  LinearLogSNR       lambda(t) = lambda_max + (lambda_min - lambda_max) t (VDM's "fixed linear" gamma).
  CosineLogSNR       lambda(t) = -2 log tan(pi t' / 2), t' = t_0 + (t_1 - t_0) t chosen so that
                     lambda(0) = lambda_max and lambda(1) = lambda_min (the cosine schedule of Nichol
                     & Dhariwal in continuous time, truncated; Kingma & Gao 2023, "Understanding
                     diffusion objectives", appendix).
  EDMLogSNR          lambda(t) = -2 rho log(sigma_min^(1/rho) + t (sigma_max^(1/rho) - sigma_min^(1/rho))),
                     sigma = exp(-lambda / 2): Karras et al. 2022 (EDM, eq. 5, rho = 7), so equal steps
                     of t are EDM's sampling discretization; sigma_min / max from lambda_max / min.
  LearnedLogSNR      VDM's learned monotone schedule (Kingma et al. 2021, appendix H):
                     lambda(t) = lambda_max + (lambda_min - lambda_max) s(t) with learned endpoints
                     and s(t) = (g(t) - g(0)) / (g(1) - g(0)) for a monotone network g (a linear term
                     plus a sigmoid layer of 1024 units, all weights non-negative).

A schedule is a frozen dataclass (static, hashable: it lives in configs and in jit's static
arguments). `init(rng)` gives its parameters (an empty dict for fixed schedules) and
`log_snr(params, t)` is a pure function, so jax.jvp gives dlambda/dt for the continuous-time ELBO
and the probability-flow ODE.
"""
from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np


def linear_betas(num_timesteps: int, beta_start: float = 1e-4, beta_end: float = 0.02) -> np.ndarray:
  """DDPM's betas, linear from beta_start to beta_end (Ho et al. 2020: T = 1000), float64 [T]."""
  _check_num_timesteps(num_timesteps)
  return np.linspace(beta_start, beta_end, num_timesteps, dtype=np.float64)


def cosine_betas(num_timesteps: int, offset: float = 0.008, max_beta: float = 0.999) -> np.ndarray:
  """Improved DDPM's betas (Nichol & Dhariwal 2021, eq. 17): abar(t) = f(t) / f(0),
  f(t) = cos^2(pi/2 (t/T + s) / (1 + s)), b_i = min(1 - abar_i / abar_{i-1}, max_beta); float64 [T]."""
  _check_num_timesteps(num_timesteps)
  steps = np.arange(num_timesteps + 1, dtype=np.float64) / num_timesteps
  f = np.cos((steps + offset) / (1 + offset) * math.pi / 2) ** 2
  return np.minimum(1 - f[1:] / f[:-1], max_beta)


def log_snr_from_betas(betas: np.ndarray) -> np.ndarray:
  """lambda_i = log(abar_i / (1 - abar_i)), abar_i = prod_{j<=i} (1 - b_j); float64, decreasing."""
  betas = np.asarray(betas, np.float64)
  if betas.ndim != 1 or betas.size < 2 or np.any(betas <= 0) or np.any(betas >= 1):
    raise ValueError(f"betas must be a vector of >= 2 values in (0, 1), got shape {betas.shape} "
                     f"and range [{betas.min() if betas.size else None}, {betas.max() if betas.size else None}]")
  log_abar = np.cumsum(np.log1p(-betas))
  return log_abar - np.log(-np.expm1(log_abar))


def _check_num_timesteps(num_timesteps: int) -> None:
  if not isinstance(num_timesteps, (int, np.integer)) or num_timesteps < 2:
    raise ValueError(f"num_timesteps must be an int >= 2, got {num_timesteps!r}")


def _check_range(log_snr_max: float, log_snr_min: float) -> None:
  if not log_snr_max > log_snr_min:
    raise ValueError(f"log_snr_max must exceed log_snr_min (lambda decreases from t=0 to t=1), got "
                     f"{log_snr_max} and {log_snr_min}")


@dataclasses.dataclass(frozen=True)
class DiscreteSchedule:
  """DDPM's discrete schedule: T log-SNRs at t_i = (i - 1) / (T - 1), linear in t in between."""
  log_snrs: tuple[float, ...]

  @classmethod
  def from_betas(cls, betas: np.ndarray) -> "DiscreteSchedule":
    return cls(tuple(float(v) for v in log_snr_from_betas(betas)))

  @property
  def num_timesteps(self) -> int:
    return len(self.log_snrs)

  def grid(self) -> np.ndarray:
    """The states' times t_i = (i - 1) / (T - 1), i = 1..T, float32 [T]."""
    return np.linspace(0.0, 1.0, self.num_timesteps, dtype=np.float32)

  def init(self, rng: jax.Array) -> dict:
    del rng
    return {}

  def log_snr(self, params: dict, t: jax.Array) -> jax.Array:
    del params
    return jnp.interp(t, jnp.asarray(self.grid()), jnp.asarray(self.log_snrs, jnp.float32))


@dataclasses.dataclass(frozen=True)
class _FixedRange:
  """A fixed (parameter-free) continuous schedule on [log_snr_min, log_snr_max]."""
  log_snr_max: float = 13.3
  log_snr_min: float = -5.0

  def __post_init__(self):
    _check_range(self.log_snr_max, self.log_snr_min)

  def init(self, rng: jax.Array) -> dict:
    del rng
    return {}


@dataclasses.dataclass(frozen=True)
class LinearLogSNR(_FixedRange):
  """lambda(t) = lambda_max + (lambda_min - lambda_max) t; VDM's defaults gamma in [-13.3, 5]."""

  def log_snr(self, params: dict, t: jax.Array) -> jax.Array:
    del params
    return self.log_snr_max + (self.log_snr_min - self.log_snr_max) * jnp.asarray(t, jnp.float32)


@dataclasses.dataclass(frozen=True)
class CosineLogSNR(_FixedRange):
  """lambda(t) = -2 log tan(pi/2 (t_0 + (t_1 - t_0) t)), truncated to [log_snr_min, log_snr_max]."""

  def log_snr(self, params: dict, t: jax.Array) -> jax.Array:
    del params
    # lambda = -2 log tan(pi u / 2)  <=>  u = (2 / pi) atan(exp(-lambda / 2)).
    u0 = 2 / math.pi * math.atan(math.exp(-self.log_snr_max / 2))
    u1 = 2 / math.pi * math.atan(math.exp(-self.log_snr_min / 2))
    u = u0 + (u1 - u0) * jnp.asarray(t, jnp.float32)
    return -2.0 * jnp.log(jnp.tan(math.pi / 2 * u))


@dataclasses.dataclass(frozen=True)
class EDMLogSNR(_FixedRange):
  """EDM's rho-spaced noise levels (eq. 5) as a log-SNR: rho-th roots of sigma linear in t."""
  rho: float = 7.0

  def log_snr(self, params: dict, t: jax.Array) -> jax.Array:
    del params
    root_min = math.exp(-self.log_snr_max / (2 * self.rho))  # sigma_min^(1/rho)
    root_max = math.exp(-self.log_snr_min / (2 * self.rho))
    return -2.0 * self.rho * jnp.log(root_min + (root_max - root_min) * jnp.asarray(t, jnp.float32))


@dataclasses.dataclass(frozen=True)
class LearnedLogSNR:
  """VDM's learned monotone schedule with learned endpoints (initialised as `LinearLogSNR`).

  g(t) = w_1 t + sum_k v_k sigmoid(a_k t + b_k) / num_features with w_1, v_k, a_k >= 0 (absolute
  values of the parameters), so g is non-decreasing and s(t) = (g(t) - g(0)) / (g(1) - g(0))
  goes from 0 to 1; lambda(t) = lambda_max + (lambda_min - lambda_max) s(t), and the endpoints
  stay ordered because lambda_max - lambda_min = softplus(.) > 0.
  """
  log_snr_max: float = 13.3
  log_snr_min: float = -5.0
  num_features: int = 1024

  def __post_init__(self):
    _check_range(self.log_snr_max, self.log_snr_min)

  def init(self, rng: jax.Array) -> dict:
    a_rng, v_rng = jax.random.split(rng)
    gap = self.log_snr_max - self.log_snr_min
    return {"log_snr_max": jnp.float32(self.log_snr_max),
            "gap": jnp.float32(gap + math.log(-math.expm1(-gap))),  # softplus^{-1}(gap)
            "linear": jnp.float32(1.0),
            "a": jax.random.normal(a_rng, (self.num_features,)),
            "b": jnp.zeros((self.num_features,)),
            "v": 0.1 * jax.random.normal(v_rng, (self.num_features,))}

  def shape(self, params: dict, t: jax.Array) -> jax.Array:
    """s(t) in [0, 1], non-decreasing, s(0) = 0, s(1) = 1."""
    def g(t):
      h = jax.nn.sigmoid(jnp.abs(params["a"]) * (2 * t[..., None] - 1) + params["b"])
      return jnp.abs(params["linear"]) * t + jnp.sum(jnp.abs(params["v"]) * h, -1) / self.num_features
    t = jnp.asarray(t, jnp.float32)
    g0, g1 = g(jnp.zeros(())), g(jnp.ones(()))
    return (g(t) - g0) / (g1 - g0)

  def log_snr(self, params: dict, t: jax.Array) -> jax.Array:
    return params["log_snr_max"] - jax.nn.softplus(params["gap"]) * self.shape(params, t)


def log_snr_and_derivative(schedule, params: dict, t: jax.Array) -> tuple[jax.Array, jax.Array]:
  """(lambda(t), dlambda/dt), both of t's shape, by forward-mode autodiff (one jvp)."""
  t = jnp.asarray(t, jnp.float32)
  return jax.jvp(lambda s: schedule.log_snr(params, s), (t,), (jnp.ones_like(t),))


SCHEDULES = ("linear_betas", "cosine_betas", "linear_log_snr", "cosine_log_snr", "edm_log_snr", "learned_log_snr")


def make_schedule(name: str, num_timesteps: int = 1000, log_snr_max: float = 13.3,
                  log_snr_min: float = -5.0):
  """A schedule by config name: discrete ones take num_timesteps, continuous ones the log-SNR range."""
  if name == "linear_betas":
    return DiscreteSchedule.from_betas(linear_betas(num_timesteps))
  if name == "cosine_betas":
    return DiscreteSchedule.from_betas(cosine_betas(num_timesteps))
  if name == "linear_log_snr":
    return LinearLogSNR(log_snr_max, log_snr_min)
  if name == "cosine_log_snr":
    return CosineLogSNR(log_snr_max, log_snr_min)
  if name == "edm_log_snr":
    return EDMLogSNR(log_snr_max, log_snr_min)
  if name == "learned_log_snr":
    return LearnedLogSNR(log_snr_max, log_snr_min)
  raise ValueError(f"schedule must be one of {SCHEDULES}, got {name!r}")
