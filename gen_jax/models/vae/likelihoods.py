"""Decoder likelihoods p(x | z): the observation models of the VAEs.

Every likelihood is a small frozen dataclass (hashable: safe to close over in a `jax.jit`-compiled
step) with one API:

  params_per_dim        decoder outputs per data dimension P
  log_prob(out, x)      log p(x | z) in nats per example [B], summed over all data dimensions
  log_prob_per_dim(out, x)   the same, not summed: x's shape
  sample(rng, out)      x ~ p(x | z), in the data's own dtype convention (below)
  mean(out)             E[x | z] as float32 in data scale (levels for images), for grids

`out` is the decoder output for a batch: [B, *event_shape[:-1], C * P] for images [B, H, W, C] and
[B, D * P] for vectors [B, D]. Its last axis is parameter-major: parameter p of channel c is
out[..., p * C + c] (see `split_params`). `x` is the data as stored:

  Bernoulli                        x in {0, 1} (binarized images uint8 [B, H, W, 1], or float32 vectors)
  Gaussian                         float32 vectors [B, D] (a density: continuous data only)
  DiscretizedLogistic(Mixture)     integer levels x in {0, ..., L-1} (uint8 images)

The discrete likelihoods are probability mass functions over the L levels (they sum to one exactly
over each dimension), so an ELBO built on them bounds the log-likelihood of the discrete data and
bits/dim = -ELBO / (D ln 2) compares with published tables, with no dequantization term.
"""
from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import checks
from gen_jax.data.spec import DataSpec
from gen_jax.models.vae import gaussian

LIKELIHOODS = ("bernoulli", "gaussian", "discretized_logistic", "discretized_logistic_mixture")


def split_params(out: jax.Array, params_per_dim: int) -> jax.Array:
  """[..., C * P] -> [..., P, C]: parameter p of channel c is out[..., p * C + c]."""
  if out.shape[-1] % params_per_dim:
    raise ValueError(f"the decoder output's last axis must be a multiple of params_per_dim="
                     f"{params_per_dim} (C * {params_per_dim}), got shape {tuple(out.shape)}")
  return out.reshape(out.shape[:-1] + (params_per_dim, out.shape[-1] // params_per_dim))


def levels_to_centres(x: jax.Array, num_levels: int) -> jax.Array:
  """Level x in {0, ..., L-1} -> the centre 2 x / (L - 1) - 1 of its bin in [-1, 1] (float32).

  The bins [c - 1/(L-1), c + 1/(L-1)) tile [-1 - 1/(L-1), 1 + 1/(L-1)); the networks see x on this
  scale too.
  """
  return x.astype(jnp.float32) * (2.0 / (num_levels - 1)) - 1.0


def to_model_space(x: jax.Array, event_shape, num_levels: int | None) -> jax.Array:
  """Data as stored -> the networks' space: integer levels -> bin centres in [-1, 1] (images, checked);
  float vectors (num_levels None) -> float32. Raises ValueError on a wrong shape, dtype or range."""
  checks.check_event_shape(x, tuple(event_shape), "x")
  if num_levels is None:
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise ValueError(f"x must be float vectors for a model with num_levels=None, got dtype {x.dtype}")
    return x.astype(jnp.float32)
  check_levels(x, num_levels)
  return levels_to_centres(x, num_levels)


def check_levels(x: jax.Array, num_levels: int, name: str = "x") -> None:
  if not jnp.issubdtype(x.dtype, jnp.integer):
    raise ValueError(f"{name} must hold integer levels in [0, {num_levels - 1}] (uint8 images), "
                     f"got dtype {x.dtype}")
  checks.check_range(x, 0, num_levels - 1, f"{name} (num_levels={num_levels})")


def _log_one_minus_exp_neg(delta: jax.Array) -> jax.Array:
  """log(1 - exp(-delta)) for delta > 0, accurate for tiny delta (where it is log delta - delta/2)."""
  tiny = delta < 1e-6
  safe = jnp.where(tiny, 1.0, delta)
  return jnp.where(tiny, jnp.log(jnp.where(tiny, delta, 1.0)) - 0.5 * delta, jnp.log(-jnp.expm1(-safe)))


def bin_edge(j: jax.Array, num_levels: int) -> jax.Array:
  """The lower edge (2 j - 1) / (L - 1) - 1 of level j's bin (= the upper edge of level j - 1), float32."""
  return (2.0 * jnp.asarray(j, jnp.float32) - 1.0) / (num_levels - 1) - 1.0


def discretized_logistic_log_prob(x: jax.Array, mean: jax.Array, log_scale: jax.Array,
                                  num_levels: int) -> jax.Array:
  """Log-mass of level x under a logistic discretized to L bins on [-1, 1], per dimension (nats).

  Level x has bin centre c = 2 x / (L - 1) - 1 and half-width h = 1 / (L - 1); the edge bins absorb
  the tails (Salimans et al. 2017, "PixelCNN++", eq. 2):

    P(x) = sigma(a) - sigma(b),  a = (c + h - mean) / s,  b = (c - h - mean) / s,  s = exp(log_scale),

  with sigma(b) := 0 for x = 0 and sigma(a) := 1 for x = L - 1, so the L masses sum to one. The
  difference is never formed: sigma(a) - sigma(b) = sigma(a) sigma(-b) (1 - exp(-(a - b))), so

    log P(x) = -softplus(-a) [x < L-1] - softplus(b) [x > 0] + log(1 - exp(-(a - b))) [0 < x < L-1],

  finite and accurate at every scale. PixelCNN++ subtracts the two CDFs and falls back to the
  density at the bin centre times the bin width when the difference underflows; here that limit is
  taken inside `_log_one_minus_exp_neg` (log(1 - exp(-w)) -> log w for tiny bins w = a - b).
  Neighbouring bins share the float32 value of their common edge (`bin_edge`) and a - b is the
  rounded width between the rounded edges, so the masses telescope to one in float32 too (to ~1e-6,
  also where s is far below float32's resolution of the edges).

  Args:
    x: integer levels in {0, ..., L-1}.
    mean, log_scale: the logistic's location (on the [-1, 1] scale) and log-scale, x's shape.
    num_levels: L >= 2.
  """
  level = x.astype(jnp.float32)                                  # (x + 1 would wrap in uint8)
  lower_edge, upper_edge = bin_edge(level, num_levels), bin_edge(level + 1.0, num_levels)
  inverse_scale = jnp.exp(-log_scale)
  a = (upper_edge - mean) * inverse_scale
  b = (lower_edge - mean) * inverse_scale
  not_first = x > 0
  not_last = x < num_levels - 1
  width_term = _log_one_minus_exp_neg((upper_edge - lower_edge) * inverse_scale)
  return (jnp.where(not_last, -jax.nn.softplus(-a), 0.0)
          + jnp.where(not_first, -jax.nn.softplus(b), 0.0)
          + jnp.where(not_first & not_last, width_term, 0.0))


def _expected_level(mean: jax.Array, log_scale: jax.Array, weights: jax.Array,
                    num_levels: int) -> jax.Array:
  """E[x] = sum_{k=1}^{L-1} P(x >= k) of a mixture of discretized logistics.

  mean, log_scale, weights: [..., K, C] (weights sum to one over K) -> [..., C] float32 levels.
  P(x >= k) = sum_j w_j sigma((mean_j - t_k) / s_j) with t_k = (2k - 1) / (L - 1) - 1, the lower edge
  of bin k.
  """
  inverse_scale = jnp.exp(-log_scale)

  def add_tail(k, total):
    edge = bin_edge(k, num_levels)
    return total + jnp.sum(weights * jax.nn.sigmoid((mean - edge) * inverse_scale), axis=-2)

  return jax.lax.fori_loop(1, num_levels, add_tail, jnp.zeros(mean.shape[:-2] + mean.shape[-1:]))


def _sample_discretized_logistic(rng: jax.Array, mean: jax.Array, log_scale: jax.Array,
                                 num_levels: int) -> jax.Array:
  """Level of y ~ Logistic(mean, s): the bin round((y + 1) (L - 1) / 2), edge bins taking the tails."""
  y = mean + jnp.exp(log_scale) * jax.random.logistic(rng, mean.shape, jnp.float32)
  level = jnp.floor((y + 1.0) * (0.5 * (num_levels - 1)) + 0.5)
  return jnp.clip(level, 0, num_levels - 1).astype(jnp.uint8)


class Likelihood:
  """Shared API; subclasses define `params_per_dim` and `log_prob_per_dim`."""

  params_per_dim: int

  def _params(self, out: jax.Array, x: jax.Array | None = None) -> jax.Array:
    """out [..., C * P] -> [..., P, C], checked against x [..., C] when given."""
    if x is not None:
      expected = tuple(x.shape[:-1]) + (x.shape[-1] * self.params_per_dim,)
      if tuple(out.shape) != expected:
        raise ValueError(f"decoder output must have shape {expected} (x's shape {tuple(x.shape)} with "
                         f"{self.params_per_dim} parameters per channel on the last axis) for "
                         f"{type(self).__name__}, got {tuple(out.shape)}")
    return split_params(out, self.params_per_dim)

  def log_prob_per_dim(self, out: jax.Array, x: jax.Array) -> jax.Array:
    raise NotImplementedError

  def log_prob(self, out: jax.Array, x: jax.Array) -> jax.Array:
    """log p(x | z) in nats per example, [B]."""
    log_p = self.log_prob_per_dim(out, x)
    return jnp.sum(log_p.reshape(log_p.shape[0], -1), axis=-1)


@dataclasses.dataclass(frozen=True)
class Bernoulli(Likelihood):
  """p(x | z) = prod_i Bernoulli(x_i; sigmoid(l_i)) over binarized data x in {0, 1}; out = logits l.

  log p = x l - softplus(l) per dimension. Attributes: dtype of samples, 'uint8' (binarized images)
  or 'float32' (vectors).
  """
  dtype: str = "uint8"

  @property
  def params_per_dim(self) -> int:
    return 1

  def log_prob_per_dim(self, out: jax.Array, x: jax.Array) -> jax.Array:
    logits = self._params(out, x)[..., 0, :]
    if checks.is_concrete(x) and x.size and not np.isin(np.asarray(x), (0, 1)).all():
      raise ValueError("x must be binarized (values in {0, 1}) for the Bernoulli likelihood, got values "
                       f"in [{np.min(x)}, {np.max(x)}]")
    return x.astype(jnp.float32) * logits - jax.nn.softplus(logits)

  def sample(self, rng: jax.Array, out: jax.Array) -> jax.Array:
    logits = self._params(out)[..., 0, :]
    return jax.random.bernoulli(rng, jax.nn.sigmoid(logits)).astype(self.dtype)

  def mean(self, out: jax.Array) -> jax.Array:
    return jax.nn.sigmoid(self._params(out)[..., 0, :])


@dataclasses.dataclass(frozen=True)
class Gaussian(Likelihood):
  """p(x | z) = N(x; m, diag(s^2)) for continuous vectors.

  Attributes:
    log_std: a fixed log s shared by every dimension (out = m, P = 1), or None to learn it per
      dimension (out = [m, log s], P = 2). A learned s can shrink without bound on data that
      concentrates on a subspace (the density is unbounded); use a fixed one there.
  """
  log_std: float | None = None

  @property
  def params_per_dim(self) -> int:
    return 1 if self.log_std is not None else 2

  def _mean_log_std(self, params: jax.Array) -> tuple[jax.Array, jax.Array]:
    mean = params[..., 0, :]
    if self.log_std is not None:
      return mean, jnp.full_like(mean, self.log_std)
    return mean, params[..., 1, :]

  def log_prob_per_dim(self, out: jax.Array, x: jax.Array) -> jax.Array:
    if not jnp.issubdtype(x.dtype, jnp.floating):
      raise ValueError(f"x must be float (continuous data) for the Gaussian likelihood, got dtype {x.dtype}")
    mean, log_std = self._mean_log_std(self._params(out, x))
    return gaussian.log_prob(x, mean, log_std)

  def sample(self, rng: jax.Array, out: jax.Array) -> jax.Array:
    return gaussian.reparameterize(rng, *self._mean_log_std(self._params(out)))

  def mean(self, out: jax.Array) -> jax.Array:
    return self._params(out)[..., 0, :]


@dataclasses.dataclass(frozen=True)
class DiscretizedLogistic(Likelihood):
  """Discretized logistic over L levels per dimension (PixelCNN++'s bins, one component).

  out = [mean, log_scale] (P = 2), the logistic on the [-1, 1] scale of the bin centres
  (`discretized_logistic_log_prob`). Attributes: num_levels L.
  """
  num_levels: int

  def __post_init__(self):
    if isinstance(self.num_levels, bool) or not isinstance(self.num_levels, (int, np.integer)) \
        or not 2 <= self.num_levels <= 256:
      raise ValueError(f"num_levels must be an integer in [2, 256] (levels are stored as uint8), "
                       f"got {self.num_levels!r}")

  @property
  def params_per_dim(self) -> int:
    return 2

  def log_prob_per_dim(self, out: jax.Array, x: jax.Array) -> jax.Array:
    check_levels(x, self.num_levels)
    params = self._params(out, x)
    return discretized_logistic_log_prob(x, params[..., 0, :], params[..., 1, :], self.num_levels)

  def sample(self, rng: jax.Array, out: jax.Array) -> jax.Array:
    params = self._params(out)
    return _sample_discretized_logistic(rng, params[..., 0, :], params[..., 1, :], self.num_levels)

  def mean(self, out: jax.Array) -> jax.Array:
    params = self._params(out)
    return _expected_level(params[..., 0:1, :], params[..., 1:2, :], jnp.ones_like(params[..., 0:1, :]),
                           self.num_levels)


@dataclasses.dataclass(frozen=True)
class DiscretizedLogisticMixture(DiscretizedLogistic):
  """Mixture of K discretized logistics per dimension (Salimans et al. 2017), channels independent.

  P(x) = sum_k pi_k P_k(x) with P_k the discretized logistic of `discretized_logistic_log_prob`;
  out = [logits of pi (K), means (K), log-scales (K)] (P = 3K). PixelCNN++'s coupling of the RGB
  channels' means is left out: each channel is its own mixture given z.

  Attributes: num_levels L, num_components K.
  """
  num_components: int = 5

  def __post_init__(self):
    super().__post_init__()
    checks.check_positive_int(self.num_components, "num_components")

  @property
  def params_per_dim(self) -> int:
    return 3 * self.num_components

  def _components(self, out, x=None) -> tuple[jax.Array, jax.Array, jax.Array]:
    """(log pi, means, log-scales), each [..., K, C]."""
    params = self._params(out, x)
    k = self.num_components
    logits, means, log_scales = params[..., :k, :], params[..., k:2 * k, :], params[..., 2 * k:, :]
    return jax.nn.log_softmax(logits, axis=-2), means, log_scales

  def log_prob_per_dim(self, out: jax.Array, x: jax.Array) -> jax.Array:
    check_levels(x, self.num_levels)
    log_weights, means, log_scales = self._components(out, x)
    log_p = discretized_logistic_log_prob(x[..., None, :], means, log_scales, self.num_levels)
    return jax.nn.logsumexp(log_weights + log_p, axis=-2)

  def sample(self, rng: jax.Array, out: jax.Array) -> jax.Array:
    log_weights, means, log_scales = self._components(out)
    component_rng, logistic_rng = jax.random.split(rng)
    k = jax.random.categorical(component_rng, log_weights, axis=-2)[..., None, :]  # [..., 1, C]
    pick = lambda a: jnp.take_along_axis(a, k, axis=-2)[..., 0, :]
    return _sample_discretized_logistic(logistic_rng, pick(means), pick(log_scales), self.num_levels)

  def mean(self, out: jax.Array) -> jax.Array:
    log_weights, means, log_scales = self._components(out)
    return _expected_level(means, log_scales, jnp.exp(log_weights), self.num_levels)


def make_likelihood(name: str, is_image: bool, num_levels: int | None, **options) -> Likelihood:
  """The likelihood `name` for data of that kind (see `get_likelihood`)."""
  if name not in LIKELIHOODS:
    raise ValueError(f"unknown likelihood {name!r}: expected one of {list(LIKELIHOODS)}")
  kind = f"{'images' if is_image else 'vectors'} with num_levels={num_levels}"
  if name == "bernoulli":
    if is_image and num_levels != 2:
      raise ValueError(f"the bernoulli likelihood needs binarized data (num_levels=2), got {kind}; use "
                       "'discretized_logistic' or 'discretized_logistic_mixture' for more levels")
    options = {"dtype": "uint8" if is_image else "float32", **options}
    likelihood_class = Bernoulli
  elif name == "gaussian":
    if num_levels is not None:
      raise ValueError(f"the gaussian likelihood is a density for continuous data (num_levels=None), got "
                       f"{kind}: use a discrete likelihood, so the bound is on the discrete data")
    likelihood_class = Gaussian
  else:
    if num_levels is None:
      raise ValueError(f"the {name} likelihood is discrete and needs data with num_levels (integer "
                       f"levels), got continuous {kind}; use 'gaussian' or 'bernoulli'")
    options = {"num_levels": num_levels, **options}
    likelihood_class = DiscretizedLogistic if name == "discretized_logistic" else DiscretizedLogisticMixture
  fields = {f.name for f in dataclasses.fields(likelihood_class)}
  unknown = sorted(set(options) - fields)
  if unknown:
    raise ValueError(f"unknown options {unknown} for the {name} likelihood: expected some of {sorted(fields)}")
  return likelihood_class(**options)


def get_likelihood(name: str, spec: DataSpec, **options) -> Likelihood:
  """The decoder likelihood `name` for the data described by `spec`.

  Args:
    name: 'bernoulli' (binarized data, num_levels=2 or {0, 1}-valued vectors), 'gaussian' (continuous
      vectors; option log_std), 'discretized_logistic' (discrete data), 'discretized_logistic_mixture'
      (discrete data; option num_components).
    spec: the data's `DataSpec`.
    **options: fields of the likelihood's dataclass.

  Raises:
    ValueError: unknown name or option, a discrete likelihood on continuous data, a Gaussian density
      on discrete data, or Bernoulli on more than two levels.
  """
  return make_likelihood(name, spec.kind == "image", spec.num_levels, **options)


def resolve_likelihood(likelihood: "str | Likelihood", is_image: bool, num_levels: int | None) -> "Likelihood":
  """A model's `likelihood` field (a name or an instance) as an instance whose levels match the model's."""
  observation = likelihood if isinstance(likelihood, Likelihood) else make_likelihood(likelihood, is_image,
                                                                                         num_levels)
  if getattr(observation, "num_levels", num_levels) != num_levels:
    raise ValueError(f"the likelihood's num_levels ({observation.num_levels}) must equal the model's "
                     f"({num_levels})")
  return observation
