"""Gated PixelCNN: an autoregressive model of discrete images with exact log-likelihood
(van den Oord et al. 2016, "Conditional Image Generation with PixelCNN Decoders"; output options
from "Pixel Recurrent Neural Networks" and PixelCNN++, Salimans et al. 2017).

The pixels x_1, ..., x_n of an image [H, W, C] (raster order) factorise as

  log P(x) = sum_i log P(x_i | x_<i)        (nats per example, exact: no dequantization),

with every conditional computed in one parallel pass of a causal network (`GatedLayer`s: vertical
and horizontal stacks of masked convolutions, type A then B, no blind spot). The conditional of a
pixel's C channels is a product over the channels, each given every earlier pixel (the data here
have C = 1; PixelCNN's ordering of R, G, B inside a pixel is left out). Its output distribution is

  "categorical"         an L-way softmax per channel (L = num_levels: 17 for digits, 256 for MNIST);
  "logistic_mixture"    a mixture of K discretized logistics per channel (PixelCNN++), 3K outputs.

Sampling is sequential: n passes of the network inside one `lax.fori_loop`, pass i drawing pixel i.
The conditionals of row r depend only on the rows r - R, ..., r (R = `receptive_rows`: the vertical
stack reaches k // 2 rows further up per layer), so each pass runs the network on that window of
R + 1 rows instead of the whole image: the same outputs, H / (R + 1) times less work (3x on MNIST).
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import checks
from gen_jax.models.autoregressive.gated_layer import GatedLayer
from gen_jax.data.levels import levels_to_centres, to_model_space
from gen_jax.distributions import Categorical, DiscretizedLogisticMixture, Likelihood

OUTPUTS = ("categorical", "logistic_mixture")


def receptive_rows(num_layers: int, kernel_size: int, first_kernel_size: int) -> int:
  """R: how many rows above a pixel its conditional reads (the type-A layer reads first_kernel_size
  // 2 rows above, every type-B layer's vertical stack k // 2 more)."""
  return first_kernel_size // 2 + (num_layers - 1) * (kernel_size // 2)


def sampling_window(row: jax.Array, height: int, window: int) -> jax.Array:
  """First row of the `window` rows whose last rows include `row` and the R = window - 1 rows above
  it (clamped inside the image: near the top the window starts at row 0)."""
  return jnp.clip(row - (window - 1), 0, height - window)


def pixel_likelihood(output: str, num_levels: int, num_components: int) -> Likelihood:
  """The per-pixel output distribution named `output` (see the module docstring)."""
  if output == "categorical":
    return Categorical(num_levels)
  if output == "logistic_mixture":
    return DiscretizedLogisticMixture(num_levels=num_levels, num_components=num_components)
  raise ValueError(f"output must be one of {OUTPUTS}, got {output!r}")


class PixelCNN(nn.Module):
  """Gated PixelCNN over uint8 images [B, H, W, C] with levels {0, ..., num_levels - 1}.

  Attributes:
    event_shape: (H, W, C).
    num_levels: L, the data's levels.
    channels: feature maps of each stack.
    num_layers: gated layers (the first of type A).
    kernel_size: k of the type-B layers (k x k vertical, 1 x k horizontal).
    first_kernel_size: k of the type-A first layer (7 in the paper).
    head_channels: width of the 1x1 output head.
    output: "categorical" or "logistic_mixture".
    num_components: K of the logistic mixture.

  Methods (with `model.apply(variables, ..., method=...)`):
    __call__(x) -> out [B, H, W, C * P]: the conditionals' parameters from x on the [-1, 1] scale of
      the bin centres (`levels_to_centres`); out at a pixel depends only on earlier pixels;
    log_prob(x) -> [B] nats, x the integer levels;  sample(rng, num) -> uint8 [num, H, W, C].
  """
  event_shape: tuple
  num_levels: int
  channels: int = 64
  num_layers: int = 5
  kernel_size: int = 3
  first_kernel_size: int = 7
  head_channels: int = 128
  output: str = "categorical"
  num_components: int = 5

  def __post_init__(self):
    shape = tuple(self.event_shape)
    if len(shape) != 3 or not all(isinstance(n, (int, np.integer)) and n > 0 for n in shape):
      raise ValueError(f"PixelCNN needs images: event_shape (H, W, C) of positive ints, got {self.event_shape!r}")
    object.__setattr__(self, "event_shape", tuple(int(n) for n in shape))
    for name in ("channels", "num_layers", "head_channels"):
      checks.check_positive_int(getattr(self, name), name)
    pixel_likelihood(self.output, self.num_levels, self.num_components)  # validates the three
    super().__post_init__()

  def setup(self):
    self.likelihood = pixel_likelihood(self.output, self.num_levels, self.num_components)
    self.layers = [GatedLayer(self.channels, self.first_kernel_size if i == 0 else self.kernel_size,
                              "A" if i == 0 else "B") for i in range(self.num_layers)]
    self.head_hidden = nn.Dense(self.head_channels)
    self.head_out = nn.Dense(self.event_shape[-1] * self.likelihood.params_per_dim)

  def __call__(self, x: jax.Array) -> jax.Array:
    checks.check_event_shape(x, self.event_shape, "x")
    return self.network(x)

  def network(self, x: jax.Array) -> jax.Array:
    """The causal network on images [B, h, W, C] of any height h (a window of rows when sampling)."""
    v = h = x
    for layer in self.layers:
      v, h = layer(v, h)
    return self.head_out(nn.elu(self.head_hidden(nn.elu(h))))

  def log_prob(self, x: jax.Array) -> jax.Array:
    """Exact log P(x) in nats per example [B], x integer levels [B, H, W, C] (checked)."""
    out = self(to_model_space(x, self.event_shape, self.num_levels))
    return self.likelihood.log_prob(out, x)

  def sample(self, rng: jax.Array, num: int) -> jax.Array:
    """`num` images uint8 [num, H, W, C], drawn pixel by pixel in raster order in one fori_loop."""
    checks.check_positive_int(num, "num")
    height, width, _ = self.event_shape
    x0 = jnp.zeros((num,) + self.event_shape, jnp.uint8)
    if self.is_initializing():
      self(levels_to_centres(x0, self.num_levels))                   # creates the parameters
    # The network as a pure function of its variables, callable inside lax.fori_loop (a bound linen
    # module cannot be called inside a raw JAX control-flow trace).
    variables, network = self.variables, self.clone(parent=None)

    def draw_pixel(i, x):
      out = network.apply(variables, x, i, method=PixelCNN.pixel_output)  # [num, 1, 1, C * P]
      value = self.likelihood.sample(jax.random.fold_in(rng, i), out)          # [num, 1, 1, C]
      return jax.lax.dynamic_update_slice(x, value.astype(jnp.uint8), (0, i // width, i % width, 0))

    return jax.lax.fori_loop(0, height * width, draw_pixel, x0)

  def pixel_output(self, x: jax.Array, i: jax.Array) -> jax.Array:
    """The conditional's parameters [B, 1, 1, C * P] of pixel i (raster order, may be traced) from the
    integer levels x [B, H, W, C], reading only the window of rows it depends on (pixels >= i are
    read but have no effect: the network is causal)."""
    height, width, num_channels = self.event_shape
    window = min(height, 1 + receptive_rows(self.num_layers, self.kernel_size, self.first_kernel_size))
    row, col = i // width, i % width
    start = sampling_window(row, height, window)
    rows = jax.lax.dynamic_slice(x, (0, start, 0, 0), (x.shape[0], window, width, num_channels))
    out = self.network(levels_to_centres(rows, self.num_levels))
    return jax.lax.dynamic_slice(out, (0, row - start, col, 0), (x.shape[0], 1, 1, out.shape[-1]))

  def pixel_log_probs(self, x: jax.Array, i: jax.Array) -> jax.Array:
    """log P(x_i = l | x_<i) for every level l of pixel i's channels: [B, C, L] (for entropy coding)."""
    return self.likelihood.level_log_probs(self.pixel_output(x, i), self.num_levels)[:, 0, 0]
