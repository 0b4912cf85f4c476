"""The phase (sub-pixel) transposed convolution against jax.lax.conv_transpose, flax's ConvTranspose
and torch's ConvTranspose2d: values and both gradients."""
import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.nn.conv_transpose import PhaseConvTranspose, phase_conv_transpose

DIMENSIONS = ("NHWC", "HWIO", "NHWC")
# (input side (H, W), kernel, stride, flax padding): DCGAN's 4x4/2 (torch padding 1), a stride-1
# layer (DCGAN's first, on a 1x1 input), stride 3, unequal paddings, padding that crops (negative).
CASES = [((4, 5), (4, 4), (2, 2), ((2, 2), (2, 2))),
         ((1, 1), (4, 4), (1, 1), ((3, 3), (3, 3))),
         ((3, 4), (6, 3), (3, 1), ((3, 4), (1, 1))),
         ((5, 3), (4, 2), (2, 2), ((1, 3), (0, 2))),
         ((6, 6), (4, 4), (2, 2), ((-1, 1), (1, -1)))]


def _inputs(side, kernel_size, seed=0):
  kx, kk = jax.random.split(jax.random.key(seed))
  x = jax.random.normal(kx, (2, *side, 3), jnp.float64)
  kernel = jax.random.normal(kk, (*kernel_size, 3, 5), jnp.float64)
  return x, kernel


@pytest.mark.parametrize("side, kernel_size, strides, padding", CASES)
def test_equals_conv_transpose_values_and_gradients(side, kernel_size, strides, padding):
  with jax.enable_x64():
    x, kernel = _inputs(side, kernel_size)
    reference = lambda x, k: jax.lax.conv_transpose(x, k, strides, padding, dimension_numbers=DIMENSIONS)
    phases = lambda x, k: phase_conv_transpose(x, k, strides, padding)
    expected, got = reference(x, kernel), phases(x, kernel)
    assert got.shape == expected.shape
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)
    cotangent = jax.random.normal(jax.random.key(7), expected.shape, jnp.float64)
    grads = lambda f: jax.grad(lambda x, k: jnp.sum(f(x, k) * cotangent), (0, 1))(x, kernel)
    for g, e in zip(grads(phases), grads(reference)):
      np.testing.assert_allclose(g, e, rtol=1e-12, atol=1e-12)


def test_module_is_flax_conv_transpose_with_the_same_parameters():
  x = jax.random.normal(jax.random.key(0), (2, 7, 7, 4))
  args = dict(features=6, kernel_size=(4, 4), strides=(2, 2), padding=((2, 2), (2, 2)))
  ours, flax_ct = PhaseConvTranspose(**args), nn.ConvTranspose(**args)
  params = flax_ct.init(jax.random.key(1), x)
  assert jax.tree_util.tree_map(jnp.shape, ours.init(jax.random.key(1), x)) == \
      jax.tree_util.tree_map(jnp.shape, params)
  np.testing.assert_allclose(ours.apply(params, x), flax_ct.apply(params, x), atol=1e-5)


def test_equals_torch_conv_transpose2d():
  import torch
  torch.manual_seed(0)
  layer = torch.nn.ConvTranspose2d(8, 4, 4, stride=2, padding=1, bias=False).double()
  x = torch.randn(3, 8, 5, 6, dtype=torch.float64)
  expected = layer(x).detach().numpy().transpose(0, 2, 3, 1)
  # torch [in, out, k, k] convolves with the flipped kernel; flax padding k - 1 - p = 2.
  kernel = layer.weight.detach().numpy().transpose(2, 3, 0, 1)[::-1, ::-1]
  with jax.enable_x64():
    got = phase_conv_transpose(jnp.asarray(x.numpy().transpose(0, 2, 3, 1)), jnp.asarray(kernel.copy()),
                               (2, 2), ((2, 2), (2, 2)))
    np.testing.assert_allclose(got, expected, rtol=1e-12, atol=1e-12)


def test_rejects_what_it_cannot_split_into_equal_phases():
  x, kernel = _inputs((4, 4), (3, 3))
  with pytest.raises(ValueError, match="multiples of the stride"):
    phase_conv_transpose(x, kernel, (2, 2), ((1, 1), (1, 1)))
  with pytest.raises(ValueError, match=r"\[B, H, W, C_in\]"):
    phase_conv_transpose(x[0], kernel, (2, 2), ((2, 2), (2, 2)))
