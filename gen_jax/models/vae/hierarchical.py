"""Hierarchical VAE for images with top-down inference (Ladder VAE / IAF-VAE / NVAE).

Latents z_1 (top, coarsest) ... z_L (bottom, finest) are spatial, [B, h_l, w_l, latent_channels],
and the generative model is top-down (Sønderby et al. 2016; Kingma et al. 2016):

  p(x, z) = p(z_1) prod_{l>1} p(z_l | z_<l) p(x | z),    p(z_1) = N(0, I),
  p(z_l | z_<l) = N(mu_p, sigma_p^2),  (mu_p, log sigma_p) = prior_head(s_l),

where s_l is the top-down state after z_1 ... z_{l-1} (a ResNet that upsamples as it descends) and
p(x | z) is the likelihood of the decoder's output on the final state. Inference shares the
top-down pass ("bidirectional inference"): a bottom-up ResNet computes features f_l of x at each
latent's scale, and the posterior is the prior corrected by a residual (NVAE, Vahdat & Kautz 2020,
eq. 2, written on log sigma):

  q(z_1 | x) = N(mu_q, sigma_q^2),  (mu_q, log sigma_q) = posterior_head(f_1),
  q(z_l | x, z_<l) = N(mu_p + dmu, sigma_p^2 exp(2 dlog_sigma)),
  (dmu, dlog_sigma) = posterior_head([s_l, f_l]).

The ELBO sums the analytic KL of each layer given the sampled z_<l (`gaussian.kl_diag_gaussians`),

  ELBO(x) = E_q[log p(x | z)] - sum_l E_q(z_<l | x)[KL(q(z_l | x, z_<l) || p(z_l | z_<l))]
          <= log p(x),

and the IWAE bound (Burda et al. 2016) uses the log-weights of all layers sampled from q,
  log w = log p(x | z) + sum_l [log p(z_l | z_<l) - log q(z_l | x, z_<l)],
  IWAE_k(x) = log (1/k) sum_{i<=k} w_i,
accumulated over chunks of samples with a running logsumexp (memory O(chunk_size), not O(k)).

Images enter as stored, integer levels x in {0, ..., L-1} (uint8 [B, H, W, C]); the networks see
the bin centres 2 x / (L - 1) - 1 in [-1, 1] (`gen_jax.data.levels.levels_to_centres`, as in `VAE`) and the
likelihood scores the levels, so the bounds are on the discrete data. Values in nats per example.
"""
from __future__ import annotations

import math
from typing import Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import checks
from gen_jax.data import levels
from gen_jax.distributions import gaussian
from gen_jax.distributions import likelihoods as likelihoods_lib
from gen_jax.models.vae.vae import check_finite, check_num_samples, largest_divisor_at_most
from gen_jax.nn import ResidualBlock


# Output layers of the Gaussian heads and the decoder start HEAD_INIT_SCALE times LeCun's variance:
# log-stds and likelihood log-scales near 0 (unit scale) at initialisation instead of O(1) random
# values whose exponentials give KLs and reconstruction losses of thousands of nats.
HEAD_INIT_SCALE = 0.1
HEAD_INIT = nn.initializers.variance_scaling(HEAD_INIT_SCALE, "fan_in", "truncated_normal")


def halved_sizes(height: int, width: int, count: int) -> list[tuple[int, int]]:
  """[(H, W), ceil halves, ...]: the spatial sizes after 0..count stride-2 "SAME" convolutions."""
  sizes = [(height, width)]
  for _ in range(count):
    h, w = sizes[-1]
    sizes.append((-(-h // 2), -(-w // 2)))
  return sizes


def _sum_latent_dims(x: jax.Array) -> jax.Array:
  return jnp.sum(x.reshape(x.shape[0], -1), axis=-1)


class Upsample(nn.Module):
  """Nearest-neighbour resize to `size` (any size, e.g. 4 -> 7), then conv3x3."""
  channels: int
  size: tuple[int, int]

  @nn.compact
  def __call__(self, h: jax.Array) -> jax.Array:
    h = jax.image.resize(h, (h.shape[0], *self.size, h.shape[-1]), "nearest")
    return nn.Conv(self.channels, (3, 3), padding="SAME")(h)


class GaussianHead(nn.Module):
  """relu -> conv3x3 -> (mean, log_std), each [B, h, w, latent_channels]."""
  latent_channels: int

  @nn.compact
  def __call__(self, h: jax.Array) -> tuple[jax.Array, jax.Array]:
    out = nn.Conv(2 * self.latent_channels, (3, 3), padding="SAME", kernel_init=HEAD_INIT)(nn.relu(h))
    return jnp.split(out, 2, axis=-1)


class HierarchicalVAE(nn.Module):
  """Hierarchical VAE with top-down inference on images [B, H, W, C] of levels {0, ..., L-1}.

  Latent layer l (l = 0 the top) lives at the spatial size of x after
  `first_latent_downsamples + num_latent_layers - 1 - l` halvings (ceil): with the defaults, 2x2 and
  4x4 for 8x8 digits; with `first_latent_downsamples=2`, 4x4 and 7x7 for 28x28. Every per-layer
  output (latents, `kl_per_layer` columns) is ordered top (coarsest) to bottom.

  Methods (all with `model.apply(variables, ..., method=...)`; create the parameters with
  `model.init(key, x, rng, method=model.elbo)`):
    elbo(x, rng) -> dict(elbo, reconstruction, kl [B], kl_per_layer [B, num_latent_layers]);
    importance_log_weight(x, rng) -> dict(log_weight, reconstruction [B],
      log_q_minus_log_p_per_layer [B, num_latent_layers]): one sample of log p(x, z) - log q(z | x);
    iwae_bound(x, rng, k, chunk_size) -> [B];  log_prob_estimate(x, rng, k, chunk_size) -> [B];
    encode(x, rng=None) -> latents (posterior sample, or with rng None each layer's posterior mean
      given the means above it);
    decode(latents) -> the likelihood's parameters `out` [B, H, W, C * params_per_dim];
    decode_mean(latents) -> E[x | z] [B, H, W, C];  posterior_mean(x) -> encode(x, rng=None);
    sample(rng, num) -> [num, H, W, C] from the likelihood.

  Attributes:
    event_shape: (H, W, C).
    num_levels: L, the number of levels of the stored images (2 for binarized data), in [2, 256].
    likelihood: p(x | z), a name from `likelihoods.LIKELIHOODS` (default options) or a likelihood
      instance (e.g. `DiscretizedLogisticMixture(256, 10)`); its num_levels must equal the model's.
    num_latent_layers: stochastic layers L >= 2.
    latent_channels: channels of every latent layer.
    hidden_channels: width of the bottom-up and top-down ResNets.
    num_blocks: residual blocks per scale in each pass.
    first_latent_downsamples: halvings of x to the bottom latent layer (>= 1).
  """
  event_shape: tuple
  num_levels: int
  likelihood: str | likelihoods_lib.Likelihood = "discretized_logistic"
  num_latent_layers: int = 2
  latent_channels: int = 4
  hidden_channels: int = 32
  num_blocks: int = 1
  first_latent_downsamples: int = 1

  def __post_init__(self):
    shape = tuple(self.event_shape)
    if len(shape) != 3 or not all(isinstance(n, (int, np.integer)) and n > 0 for n in shape):
      raise ValueError(f"event_shape must be (H, W, C) with positive integer sizes, "
                       f"got {self.event_shape!r}")
    object.__setattr__(self, "event_shape", tuple(int(n) for n in shape))
    if self.num_latent_layers < 2:
      raise ValueError(f"num_latent_layers must be >= 2 (a hierarchy), got {self.num_latent_layers}")
    if self.first_latent_downsamples < 1:
      raise ValueError(f"first_latent_downsamples must be >= 1, got {self.first_latent_downsamples}")
    if isinstance(self.num_levels, bool) or not isinstance(self.num_levels, (int, np.integer)) \
        or not 2 <= self.num_levels <= 256:
      raise ValueError(f"num_levels must be an integer in [2, 256] (uint8 images), got {self.num_levels!r}")
    checks.check_positive_int(self.latent_channels, "latent_channels")
    checks.check_positive_int(self.hidden_channels, "hidden_channels")
    self.observation  # resolves the likelihood now: a mismatch is an error at construction
    super().__post_init__()

  @property
  def observation(self) -> likelihoods_lib.Likelihood:
    """The likelihood p(x | z) as an object (`likelihood` resolved from its name)."""
    return likelihoods_lib.resolve_likelihood(self.likelihood, True, self.num_levels)

  @property
  def scale_sizes(self) -> list[tuple[int, int]]:
    """Spatial size after 0, 1, ... halvings, down to the top latent layer's."""
    height, width, _ = self.event_shape
    return halved_sizes(height, width, self.first_latent_downsamples + self.num_latent_layers - 1)

  @property
  def latent_scales(self) -> list[int]:
    """Number of halvings of each latent layer, top first."""
    bottom = self.first_latent_downsamples
    return [bottom + self.num_latent_layers - 1 - l for l in range(self.num_latent_layers)]

  @property
  def latent_shapes(self) -> list[tuple[int, int, int]]:
    """Shape of one example's latent of each layer, top first."""
    sizes = self.scale_sizes
    return [(*sizes[s], self.latent_channels) for s in self.latent_scales]

  def setup(self):
    width, sizes, num_scales = self.hidden_channels, self.scale_sizes, len(self.scale_sizes) - 1
    blocks = lambda: [ResidualBlock(width) for _ in range(self.num_blocks)]
    # Bottom-up: scale 0 (x's size), then one stride-2 convolution + blocks per halving.
    self.input_conv = nn.Conv(width, (3, 3), padding="SAME")
    self.down_convs = [nn.Conv(width, (3, 3), strides=(2, 2), padding="SAME")
                       for _ in range(num_scales)]
    self.down_blocks = [blocks() for _ in range(num_scales)]
    # Top-down: z_1 -> state; per lower layer upsample + blocks, prior head, posterior head,
    # z -> state; then upsample to x's size and map to the likelihood's parameters.
    self.top_posterior = GaussianHead(self.latent_channels)
    scales = self.latent_scales
    self.td_upsamples = [Upsample(width, sizes[s]) for s in scales[1:]]
    self.td_blocks = [blocks() for _ in scales[1:]]
    self.priors = [GaussianHead(self.latent_channels) for _ in scales[1:]]
    self.posteriors = [GaussianHead(self.latent_channels) for _ in scales[1:]]
    self.latent_projections = [nn.Conv(width, (1, 1)) for _ in scales]
    self.latent_blocks = [blocks() for _ in scales]
    self.decoder_upsamples = [Upsample(width, sizes[s]) for s in reversed(range(scales[-1]))]
    self.decoder_blocks = [blocks() for _ in range(scales[-1])]
    channels = self.event_shape[-1] * self.observation.params_per_dim
    self.output_conv = nn.Conv(channels, (3, 3), padding="SAME", kernel_init=HEAD_INIT)

  # -- the two passes ----------------------------------------------------------------------------

  def network_input(self, x: jax.Array) -> jax.Array:
    """Checked integer levels [B, H, W, C] -> bin centres 2 x / (L - 1) - 1 in [-1, 1]."""
    checks.check_event_shape(x, self.event_shape, "x (images)")
    levels.check_levels(x, self.num_levels)
    return levels.levels_to_centres(x, self.num_levels)

  def bottom_up(self, x: jax.Array) -> list[jax.Array]:
    """Features of x at each latent layer's scale, top first: [B, h_l, w_l, hidden_channels]."""
    h = self.input_conv(self.network_input(x))
    features = {}
    for scale, (conv, blocks) in enumerate(zip(self.down_convs, self.down_blocks), start=1):
      h = features[scale] = self._apply_blocks(blocks, conv(nn.relu(h)))
    return [features[s] for s in self.latent_scales]

  def _apply_blocks(self, blocks: Sequence[nn.Module], h: jax.Array) -> jax.Array:
    for block in blocks:
      h = block(h)
    return h

  def top_down(self, batch_size: int, rng: jax.Array | None,
               features: Sequence[jax.Array] | None = None,
               latents: Sequence[jax.Array] | None = None, use_mean: bool = False):
    """The generative pass, sampling each layer from q (features given) or p, or taking `latents`.

    Returns (out, layers): `out` the likelihood's parameters [B, H, W, C * params_per_dim]; per
    layer (top first) a dict with z, prior (mean, log_std) and, with features, posterior
    (mean, log_std). `use_mean` takes each layer's mean instead of a sample (rng unused).
    """
    num_layers = self.num_latent_layers
    keys = (None,) * num_layers if rng is None else jax.random.split(rng, num_layers)
    layers, state = [], None
    for l, latent_shape in enumerate(self.latent_shapes):
      if l == 0:
        zeros = jnp.zeros((batch_size, *latent_shape), jnp.float32)
        prior = (zeros, zeros)
        posterior = None if features is None else self.top_posterior(features[0])
      else:
        state = self._apply_blocks(self.td_blocks[l - 1], self.td_upsamples[l - 1](state))
        prior = self.priors[l - 1](state)
        posterior = None
        if features is not None:  # NVAE's residual posterior: relative to the prior
          delta_mean, delta_log_std = self.posteriors[l - 1](jnp.concatenate([state, features[l]], -1))
          posterior = (prior[0] + delta_mean, prior[1] + delta_log_std)
      if latents is not None:
        z = latents[l]
      else:
        mean, log_std = prior if posterior is None else posterior
        z = mean if use_mean else gaussian.reparameterize(keys[l], mean, log_std)
      projected = self.latent_projections[l](z)
      state = projected if state is None else state + projected
      state = self._apply_blocks(self.latent_blocks[l], state)
      layers.append({"z": z, "prior": prior, "posterior": posterior})
    for upsample, blocks in zip(self.decoder_upsamples, self.decoder_blocks):
      state = self._apply_blocks(blocks, upsample(state))
    return self.output_conv(nn.relu(state)), layers

  # -- objectives --------------------------------------------------------------------------------

  def _posterior_pass(self, x: jax.Array, rng: jax.Array, features=None):
    """(reconstruction log p(x | z) [B], layers) for z ~ q(z | x) drawn with `rng`."""
    features = self.bottom_up(x) if features is None else features
    out, layers = self.top_down(x.shape[0], rng, features=features)
    return self.observation.log_prob(out, x), layers

  def elbo(self, x: jax.Array, rng: jax.Array) -> dict[str, jax.Array]:
    """ELBO with the analytic KL of each layer given the sampled z_<l, nats per example.

    Returns:
      {"elbo": [B], "reconstruction": [B] log p(x | z) at one z ~ q(z | x), "kl": [B],
       "kl_per_layer": [B, num_latent_layers] (top first)}; elbo = reconstruction - kl.

    Raises:
      ValueError: x not [B, H, W, C] levels in [0, L-1].
      FloatingPointError: non-finite values outside `jit`.
    """
    reconstruction, layers = self._posterior_pass(x, rng)
    kl_per_layer = jnp.stack(
        [_sum_latent_dims(gaussian.kl_diag_gaussians(*layer["posterior"], *layer["prior"]))
         for layer in layers], axis=-1)
    kl = jnp.sum(kl_per_layer, axis=-1)
    terms = {"elbo": reconstruction - kl, "reconstruction": reconstruction, "kl": kl,
             "kl_per_layer": kl_per_layer}
    check_finite(terms)
    return terms

  def __call__(self, x: jax.Array, rng: jax.Array) -> dict[str, jax.Array]:
    return self.elbo(x, rng)

  def importance_log_weight(self, x: jax.Array, rng: jax.Array, features=None
                            ) -> dict[str, jax.Array]:
    """log w = log p(x | z) - sum_l [log q(z_l | x, z_<l) - log p(z_l | z_<l)] at one z ~ q(z | x).

    Draws the z of `elbo(x, rng)` (same reconstruction term); E_q[log w] = ELBO, and the mean of
    the per-layer log-ratios is a Monte-Carlo estimate of `kl_per_layer`.

    Returns:
      {"log_weight": [B], "reconstruction": [B],
       "log_q_minus_log_p_per_layer": [B, num_latent_layers] (top first)}.
    """
    reconstruction, layers = self._posterior_pass(x, rng, features)
    log_ratios = jnp.stack(
        [_sum_latent_dims(gaussian.log_prob(layer["z"], *layer["posterior"])
                          - gaussian.log_prob(layer["z"], *layer["prior"])) for layer in layers],
        axis=-1)
    return {"log_weight": reconstruction - jnp.sum(log_ratios, axis=-1),
            "reconstruction": reconstruction, "log_q_minus_log_p_per_layer": log_ratios}

  def iwae_bound(self, x: jax.Array, rng: jax.Array, k: int, chunk_size: int | None = None
                 ) -> jax.Array:
    """IWAE_k(x) = log (1/k) sum_i w_i, all layers of z_i ~ q(z | x) (Burda et al. 2016), [B] nats.

    Sample i is `importance_log_weight(x, fold_in(rng, i))`, so the value does not depend on
    chunk_size with a vmap-invariant key (threefry, JAX's default; "rbg" keys draw other bits under
    vmap). The chunks run in a scan with a running logsumexp: memory grows with chunk_size * B.

    Args:
      x: images [B, H, W, C], levels in [0, L-1].
      rng: a `jax.random` key.
      k: number of importance samples, > 0 (k = 1: the ELBO with every KL estimated by its sample).
      chunk_size: samples per chunk, a divisor of k (default: k, one chunk).

    Raises:
      ValueError: bad x, k <= 0 or chunk_size not a positive divisor of k.
      FloatingPointError: non-finite values outside `jit`.
    """
    chunk_size = check_num_samples(k, chunk_size)
    features = self.bottom_up(x)
    log_weights = nn.vmap(
        lambda module, key: module.importance_log_weight(x, key, features)["log_weight"],
        variable_axes={"params": None}, split_rngs={"params": False})

    def add_chunk(module, log_sum, start):
      keys = jax.vmap(jax.random.fold_in, (None, 0))(rng, start + jnp.arange(chunk_size))
      chunk = log_weights(module, keys)                                  # [chunk_size, B]
      return jnp.logaddexp(log_sum, jax.nn.logsumexp(chunk, axis=0)), None

    scan = nn.scan(add_chunk, variable_broadcast="params", split_rngs={"params": False})
    log_sum, _ = scan(self, jnp.full(x.shape[:1], -jnp.inf, jnp.float32), jnp.arange(0, k, chunk_size))
    bound = log_sum - math.log(k)
    check_finite(bound, "IWAE bound")
    return bound

  def log_prob_estimate(self, x: jax.Array, rng: jax.Array, k: int = 5000,
                        chunk_size: int | None = None) -> jax.Array:
    """log p(x) estimated by importance sampling: `iwae_bound` with k = 5000 (Burda et al. 2016).

    A stochastic lower bound converging to log p(x) as k grows; chunk_size defaults to the largest
    divisor of k that is <= 100.
    """
    checks.check_positive_int(k, "k (importance samples)")
    if chunk_size is None:
      chunk_size = largest_divisor_at_most(k, 100)
    return self.iwae_bound(x, rng, k, chunk_size)

  # -- latent space ------------------------------------------------------------------------------

  def encode(self, x: jax.Array, rng: jax.Array | None = None) -> list[jax.Array]:
    """Posterior latents of each layer, top first: a sample z ~ q(z | x), or with rng None each
    layer's posterior mean given the means above it. Shapes [B, *latent_shapes[l]]."""
    _, layers = self.top_down(x.shape[0], rng, features=self.bottom_up(x), use_mean=rng is None)
    return [layer["z"] for layer in layers]

  def decode(self, latents: Sequence[jax.Array]) -> jax.Array:
    """The likelihood's parameters [B, H, W, C * params_per_dim] given every layer's latent."""
    if len(latents) != self.num_latent_layers:
      raise ValueError(f"latents must be a sequence of {self.num_latent_layers} arrays (top first), "
                       f"got {len(latents)}")
    for l, (z, shape) in enumerate(zip(latents, self.latent_shapes)):
      checks.check_event_shape(z, shape, f"latents[{l}]")
    out, _ = self.top_down(latents[0].shape[0], None, latents=latents)
    return out

  def decode_mean(self, latents: Sequence[jax.Array]) -> jax.Array:
    """E[x | z], float32 in levels [B, H, W, C], given every layer's latent (top first)."""
    return self.observation.mean(self.decode(latents))

  def posterior_mean(self, x: jax.Array) -> list[jax.Array]:
    """Each layer's posterior mean given the means above it (top first): `encode(x, rng=None)`."""
    return self.encode(x, None)

  def sample(self, rng: jax.Array, num: int) -> jax.Array:
    """`num` images [num, H, W, C]: z ~ p(z) layer by layer, then x ~ p(x | z)."""
    checks.check_positive_int(num, "num")
    latent_rng, data_rng = jax.random.split(rng)
    out, _ = self.top_down(num, latent_rng)
    return self.observation.sample(data_rng, out)
