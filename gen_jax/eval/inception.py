"""The FID Inception network: TensorFlow's 2015-12-05 InceptionV3 graph, as a Flax module.

FID (Heusel et al. 2017) is defined by one network: the `pool_3` features of the InceptionV3 graph
TensorFlow released on 2015-12-05 (Szegedy et al. 2016, "Rethinking the Inception Architecture").
TTUR, pytorch-fid, clean-fid and StyleGAN2-ADA all use its weights. It differs from torchvision's
InceptionV3 in its pooling: the average pools of the mixed blocks exclude padding from the count, and
the last block's pool branch is a max pool.

Layer names follow the TF graph (`conv`, `conv_1`, ..., `mixed`, ..., `mixed_10`; branches `conv`,
`tower`, `tower_1`, `tower_2`). Every convolution is conv -> batch norm (eps 1e-3, no scale) -> ReLU;
`fold_batch_norm` turns the four tensors into one kernel and bias, as the module stores them.

Outputs (`InceptionV3.__call__` returns a dict):
  pool3:   [N, 2048] average-pooled `mixed_10` (the FID features).
  spatial: [N, 2023] the first 7 channels of `mixed_6/conv` (17 x 17), flattened in NHWC order: the
           sFID features (Nash et al. 2021).
  logits:  [N, 1008] pool3 times the head's weights *without its bias*, when the weights have a head
           (`with_logits=True`): the logits of the original Inception Score code (Salimans et al.
           2016, which multiplies pool_3 by `softmax/logits/MatMul`'s weights) and torch-fidelity's
           `logits_unbiased`.
Input: [N, 299, 299, 3] float32, (x - 128) / 128 of an RGB image in [0, 255] (see `resize.py`).
"""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

BATCH_NORM_EPS = 1e-3
SPATIAL_CHANNELS = 7


def cpu_extra_padding():
  """Zero rows/columns appended (then cropped away) before each convolution on the CPU backend.

  XLA:CPU's convolutions ran 1.2-5x faster on these layers when the input was padded explicitly and a
  little beyond what the output needs (e.g. conv_1, 149 x 149 x 32 -> 32: 647 ms -> 251 ms for a batch
  of 32 with one extra row and column; the whole network 7.1 -> 13.7 images/s, with 1, 2 or 3 extra
  giving 13.7, 12.8, 12.7). Outputs are unchanged: the extra zeros only reach output positions that
  are cropped. Other backends use 0.
  """
  return 1 if jax.default_backend() == "cpu" else 0


class ConvReLU(nn.Module):
  """Convolution with the batch norm folded into kernel and bias, then ReLU."""
  features: int
  kernel_size: tuple
  strides: int = 1
  padding: object = "VALID"  # or ((top, bottom), (left, right))

  @nn.compact
  def __call__(self, x):
    (top, bottom), (left, right) = ((0, 0), (0, 0)) if self.padding == "VALID" else self.padding
    extra = cpu_extra_padding()
    out_h = (x.shape[1] + top + bottom - self.kernel_size[0]) // self.strides + 1
    out_w = (x.shape[2] + left + right - self.kernel_size[1]) // self.strides + 1
    x = jnp.pad(x, ((0, 0), (top, bottom + extra), (left, right + extra), (0, 0)))
    y = nn.Conv(self.features, self.kernel_size, self.strides, padding="VALID", name="conv2d")(x)
    return nn.relu(y[:, :out_h, :out_w])


def _same(kernel_size):
  return [((k - 1) // 2, (k - 1) // 2) for k in kernel_size]


def _conv(features, kernel_size, strides=1, padding=None, name=None):
  kernel_size = tuple(kernel_size)
  return ConvReLU(features, kernel_size, strides, _same(kernel_size) if padding is None else padding, name=name)


def _avg_pool_same(x):
  return nn.avg_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)), count_include_pad=False)


def _max_pool_valid(x):
  return nn.max_pool(x, (3, 3), (2, 2), padding="VALID")


class Tower(nn.Module):
  """A chain of ConvReLU layers named conv, conv_1, conv_2, ... (a TF graph 'tower')."""
  layers: tuple  # ((features, kernel_size, strides, padding or None), ...)

  @nn.compact
  def __call__(self, x):
    for i, (features, kernel_size, strides, padding) in enumerate(self.layers):
      x = _conv(features, kernel_size, strides, padding, name="conv" if i == 0 else f"conv_{i}")(x)
    return x


class InceptionA(nn.Module):
  """mixed, mixed_1, mixed_2 (35 x 35): 1x1 | 1x1-5x5 | 1x1-3x3-3x3 | avgpool-1x1."""
  pool_features: int

  @nn.compact
  def __call__(self, x):
    return jnp.concatenate([
        _conv(64, (1, 1), name="conv")(x),
        Tower(((48, (1, 1), 1, None), (64, (5, 5), 1, None)), name="tower")(x),
        Tower(((64, (1, 1), 1, None), (96, (3, 3), 1, None), (96, (3, 3), 1, None)), name="tower_1")(x),
        Tower(((self.pool_features, (1, 1), 1, None),), name="tower_2")(_avg_pool_same(x)),
    ], axis=-1)


class InceptionB(nn.Module):
  """mixed_3 (35 -> 17): 3x3/2 | 1x1-3x3-3x3/2 | maxpool/2."""

  @nn.compact
  def __call__(self, x):
    return jnp.concatenate([
        _conv(384, (3, 3), 2, "VALID", name="conv")(x),
        Tower(((64, (1, 1), 1, None), (96, (3, 3), 1, None), (96, (3, 3), 2, "VALID")), name="tower")(x),
        _max_pool_valid(x),
    ], axis=-1)


class InceptionC(nn.Module):
  """mixed_4 .. mixed_7 (17 x 17): factorised 7x7 convolutions. Returns (output, its 1x1 branch)."""
  channels_7x7: int

  @nn.compact
  def __call__(self, x):
    c = self.channels_7x7
    branch_1x1 = _conv(192, (1, 1), name="conv")(x)
    output = jnp.concatenate([
        branch_1x1,
        Tower(((c, (1, 1), 1, None), (c, (1, 7), 1, None), (192, (7, 1), 1, None)), name="tower")(x),
        Tower(((c, (1, 1), 1, None), (c, (7, 1), 1, None), (c, (1, 7), 1, None), (c, (7, 1), 1, None),
               (192, (1, 7), 1, None)), name="tower_1")(x),
        Tower(((192, (1, 1), 1, None),), name="tower_2")(_avg_pool_same(x)),
    ], axis=-1)
    return output, branch_1x1


class InceptionD(nn.Module):
  """mixed_8 (17 -> 8): 1x1-3x3/2 | 1x1-1x7-7x1-3x3/2 | maxpool/2."""

  @nn.compact
  def __call__(self, x):
    return jnp.concatenate([
        Tower(((192, (1, 1), 1, None), (320, (3, 3), 2, "VALID")), name="tower")(x),
        Tower(((192, (1, 1), 1, None), (192, (1, 7), 1, None), (192, (7, 1), 1, None),
               (192, (3, 3), 2, "VALID")), name="tower_1")(x),
        _max_pool_valid(x),
    ], axis=-1)


class InceptionE(nn.Module):
  """mixed_9, mixed_10 (8 x 8): expanded 1x3 / 3x1 branches; mixed_10 pools with a max pool."""
  pool: str  # "avg" (mixed_9) or "max" (mixed_10), as in the TF graph

  @nn.compact
  def __call__(self, x):
    a = _conv(384, (1, 1), name="tower_conv")(x)
    b = _conv(448, (1, 1), name="tower_1_conv")(x)
    b = _conv(384, (3, 3), name="tower_1_conv_1")(b)
    if self.pool == "avg":
      pooled = _avg_pool_same(x)
    else:
      pooled = nn.max_pool(x, (3, 3), (1, 1), padding=((1, 1), (1, 1)))
    return jnp.concatenate([
        _conv(320, (1, 1), name="conv")(x),
        _conv(384, (1, 3), name="tower_mixed_conv")(a),
        _conv(384, (3, 1), name="tower_mixed_conv_1")(a),
        _conv(384, (1, 3), name="tower_1_mixed_conv")(b),
        _conv(384, (3, 1), name="tower_1_mixed_conv_1")(b),
        _conv(192, (1, 1), name="tower_2_conv")(pooled),
    ], axis=-1)


class InceptionV3(nn.Module):
  """The FID InceptionV3. See the module docstring for inputs and outputs."""
  with_logits: bool = False
  num_classes: int = 1008

  @nn.compact
  def __call__(self, x):
    if x.ndim != 4 or x.shape[1:] != (299, 299, 3):
      raise ValueError(f"InceptionV3 expects [N, 299, 299, 3] inputs ((x - 128) / 128), got {x.shape}")
    x = _conv(32, (3, 3), 2, "VALID", name="conv")(x)        # 149
    x = _conv(32, (3, 3), 1, "VALID", name="conv_1")(x)      # 147
    x = _conv(64, (3, 3), 1, None, name="conv_2")(x)         # 147
    x = _max_pool_valid(x)                                   # 73
    x = _conv(80, (1, 1), name="conv_3")(x)
    x = _conv(192, (3, 3), 1, "VALID", name="conv_4")(x)     # 71
    x = _max_pool_valid(x)                                   # 35
    x = InceptionA(32, name="mixed")(x)
    x = InceptionA(64, name="mixed_1")(x)
    x = InceptionA(64, name="mixed_2")(x)
    x = InceptionB(name="mixed_3")(x)                        # 17
    x, _ = InceptionC(128, name="mixed_4")(x)
    x, _ = InceptionC(160, name="mixed_5")(x)
    x, mixed_6_conv = InceptionC(160, name="mixed_6")(x)
    x, _ = InceptionC(192, name="mixed_7")(x)
    x = InceptionD(name="mixed_8")(x)                        # 8
    x = InceptionE("avg", name="mixed_9")(x)
    x = InceptionE("max", name="mixed_10")(x)
    pool3 = jnp.mean(x, axis=(1, 2))
    outputs = {
        "pool3": pool3,
        "spatial": mixed_6_conv[..., :SPATIAL_CHANNELS].reshape(x.shape[0], -1),
    }
    if self.with_logits:
      outputs["logits"] = nn.Dense(self.num_classes, use_bias=False, name="output")(pool3)
    return outputs


def fold_batch_norm(weight, beta, mean, var, gamma=None, eps=BATCH_NORM_EPS):
  """conv(x, W) -> (. - mean) / sqrt(var + eps) * gamma + beta, as one conv with kernel and bias.

  Args:
    weight: torch layout [out, in, kh, kw].
  Returns:
    {"kernel": [kh, kw, in, out] (Flax layout), "bias": [out]}, float32.
  """
  scale = (np.ones_like(var) if gamma is None else gamma) / np.sqrt(var.astype(np.float64) + eps)
  kernel = weight.astype(np.float64) * scale[:, None, None, None]
  bias = beta - mean * scale
  return {"kernel": np.transpose(kernel, (2, 3, 1, 0)).astype(np.float32), "bias": bias.astype(np.float32)}
