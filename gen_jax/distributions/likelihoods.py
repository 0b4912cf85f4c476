"""Observation models p(x | .): the decoder likelihoods of the VAEs and the PixelCNN's outputs.

Every likelihood is a small frozen dataclass (hashable: safe to close over in a `jax.jit`-compiled
step) with one API:

  params_per_dim        decoder outputs per data dimension P
  log_prob(out, x)      log p(x | z) in nats per example [B], summed over all data dimensions
  log_prob_per_dim(out, x)   the same, not summed: x's shape
  sample(rng, out)      x ~ p(x | z), in the data's own dtype convention (below)
  mean(out)             E[x | z] as float32 in data scale (levels for images), for grids
  level_log_probs(out, L)    log p(x = l | z) for every level l: the table an entropy coder needs

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
from gen_jax.data.levels import check_levels, check_num_levels
from gen_jax.distributions import discretized
from gen_jax.distributions import gaussian

LIKELIHOODS = ("bernoulli", "gaussian", "discretized_logistic", "discretized_logistic_mixture")


def split_params(out: jax.Array, params_per_dim: int) -> jax.Array:
  """[..., C * P] -> [..., P, C]: parameter p of channel c is out[..., p * C + c]."""
  if out.shape[-1] % params_per_dim:
    raise ValueError(f"the decoder output's last axis must be a multiple of params_per_dim="
                     f"{params_per_dim} (C * {params_per_dim}), got shape {tuple(out.shape)}")
  return out.reshape(out.shape[:-1] + (params_per_dim, out.shape[-1] // params_per_dim))


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

  def level_log_probs(self, out: jax.Array, num_levels: int) -> jax.Array:
    """log p(x_i = l | z) for every level l of every dimension: [..., C, L] for out [..., C * P] (the
    whole table an entropy coder needs; `log_prob_per_dim` at x = l, level by level)."""
    num_channels = out.shape[-1] // self.params_per_dim
    levels = jnp.arange(num_levels, dtype=jnp.uint8 if num_levels <= 256 else jnp.int32)
    at = lambda level: self.log_prob_per_dim(out, jnp.full(out.shape[:-1] + (num_channels,), level, levels.dtype))
    return jnp.moveaxis(jax.lax.map(at, levels), 0, -1)


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
    check_num_levels(self.num_levels)

  @property
  def params_per_dim(self) -> int:
    return 2

  def log_prob_per_dim(self, out: jax.Array, x: jax.Array) -> jax.Array:
    check_levels(x, self.num_levels)
    params = self._params(out, x)
    return discretized.discretized_logistic_log_prob(x, params[..., 0, :], params[..., 1, :], self.num_levels)

  def sample(self, rng: jax.Array, out: jax.Array) -> jax.Array:
    params = self._params(out)
    return discretized.sample_discretized_logistic(rng, params[..., 0, :], params[..., 1, :], self.num_levels)

  def mean(self, out: jax.Array) -> jax.Array:
    params = self._params(out)
    return discretized.expected_level(params[..., 0:1, :], params[..., 1:2, :], jnp.ones_like(params[..., 0:1, :]),
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
    log_p = discretized.discretized_logistic_log_prob(x[..., None, :], means, log_scales, self.num_levels)
    return jax.nn.logsumexp(log_weights + log_p, axis=-2)

  def sample(self, rng: jax.Array, out: jax.Array) -> jax.Array:
    log_weights, means, log_scales = self._components(out)
    component_rng, logistic_rng = jax.random.split(rng)
    k = jax.random.categorical(component_rng, log_weights, axis=-2)[..., None, :]  # [..., 1, C]
    pick = lambda a: jnp.take_along_axis(a, k, axis=-2)[..., 0, :]
    return discretized.sample_discretized_logistic(logistic_rng, pick(means), pick(log_scales), self.num_levels)

  def mean(self, out: jax.Array) -> jax.Array:
    log_weights, means, log_scales = self._components(out)
    return discretized.expected_level(means, log_scales, jnp.exp(log_weights), self.num_levels)


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
