"""The convolutions gen_jax's models use, on XLA:CPU's Eigen path (the flag gen_jax sets) and on the
default YNN path: forward and both gradients equal a float64 NumPy convolution within float32 round-off.
Also: when gen_jax sets the flag, and when it leaves XLA_FLAGS alone."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax import xla_cpu_flags
from tests.conftest import run_python

DIMENSIONS = ("NHWC", "HWIO", "NHWC")
# name: (input [N, H, W, C], kernel [kh, kw, C, O], strides, explicit padding, lhs (input) dilation)
KINDS = {
    "3x3 s1 (U-Net, Glow, EBM)": ((4, 16, 16, 32), (3, 3, 32, 32), (1, 1), ((1, 1), (1, 1)), (1, 1)),
    "1x1 (U-Net skip, Glow)": ((4, 16, 16, 32), (1, 1, 32, 48), (1, 1), ((0, 0), (0, 0)), (1, 1)),
    "4x4 s2 (DCGAN critic)": ((4, 16, 16, 32), (4, 4, 32, 48), (2, 2), ((1, 1), (1, 1)), (1, 1)),
    "2x2 phase of a 4x4 s2 transpose (DCGAN generator)": ((4, 8, 8, 32), (2, 2, 32, 48), (1, 1),
                                                          ((1, 0), (1, 0)), (1, 1)),
    "4x4 s2 transpose as an input-dilated conv": ((4, 8, 8, 32), (4, 4, 32, 16), (1, 1), ((2, 2), (2, 2)),
                                                  (2, 2)),
    "2x3 masked, asymmetric padding (PixelCNN vertical stack)": ((4, 12, 12, 16), (2, 3, 16, 32), (1, 1),
                                                                 ((1, 0), (1, 1)), (1, 1)),
}


def _patches(x, kernel_hw, strides, padding, lhs_dilation):
  """[N, H', W', C, kh, kw] windows of the dilated, zero-padded input (float64), and that padded shape."""
  n, h, w, c = x.shape
  (dh, dw), (sh, sw) = lhs_dilation, strides
  dilated = np.zeros((n, (h - 1) * dh + 1, (w - 1) * dw + 1, c), np.float64)
  dilated[:, ::dh, ::dw] = x
  padded = np.pad(dilated, ((0, 0), *padding, (0, 0)))
  windows = np.lib.stride_tricks.sliding_window_view(padded, kernel_hw, axis=(1, 2))
  return windows[:, ::sh, ::sw], padded.shape


def reference(x, kernel, cotangent, strides, padding, lhs_dilation):
  """float64 (y, dL/dx, dL/dkernel) for L = sum(y * cotangent), written out tap by tap."""
  x, kernel, g = (np.asarray(a, np.float64) for a in (x, kernel, cotangent))
  kh, kw = kernel.shape[:2]
  patches, padded_shape = _patches(x, (kh, kw), strides, padding, lhs_dilation)
  y = np.einsum("nijcab,abco->nijo", patches, kernel)
  d_kernel = np.einsum("nijcab,nijo->abco", patches, g)
  d_patches = np.einsum("nijo,abco->nijcab", g, kernel)
  d_padded = np.zeros(padded_shape)
  (sh, sw), (oh, ow) = strides, y.shape[1:3]
  for a in range(kh):
    for b in range(kw):
      d_padded[:, a:a + sh * (oh - 1) + 1:sh, b:b + sw * (ow - 1) + 1:sw] += d_patches[..., a, b]
  (top, _), (left, _) = padding
  d_dilated = d_padded[:, top:top + (x.shape[1] - 1) * lhs_dilation[0] + 1,
                       left:left + (x.shape[2] - 1) * lhs_dilation[1] + 1]
  d_x = d_dilated[:, ::lhs_dilation[0], ::lhs_dilation[1]]
  # The scale of float32 round-off: the same sums over absolute values.
  scales = (np.einsum("nijcab,abco->nijo", np.abs(patches), np.abs(kernel)).max(),
            np.abs(d_x).max() + np.abs(d_patches).max() * kh * kw, np.abs(d_kernel).max())
  return (y, d_x, d_kernel), scales


def max_relative_errors(kinds=KINDS, mistake=None):
  """{kind: [max |error| / scale] for y, dx, dkernel} of float32 XLA against the float64 reference."""
  errors = {}
  for i, (name, (x_shape, k_shape, strides, padding, lhs_dilation)) in enumerate(kinds.items()):
    kx, kk, kg = jax.random.split(jax.random.key(i), 3)
    x = jax.random.normal(kx, x_shape)
    kernel = jax.random.normal(kk, k_shape) / np.sqrt(np.prod(k_shape[:3]))
    conv = lambda x, k: jax.lax.conv_general_dilated(x, k, strides, padding, lhs_dilation=lhs_dilation,
                                                     dimension_numbers=DIMENSIONS)
    if mistake == "flipped kernel":
      conv = lambda x, k, conv=conv: conv(x, k[::-1, ::-1])
    y, vjp = jax.jit(lambda x, k: jax.vjp(conv, x, k))(x, kernel)
    cotangent = jax.random.normal(kg, y.shape)
    got = (y, *jax.jit(vjp)(cotangent))
    expected, scales = reference(x, kernel, cotangent, strides, padding, lhs_dilation)
    errors[name] = [float(np.max(np.abs(np.asarray(g, np.float64) - e)) / s)
                    for g, e, s in zip(got, expected, scales)]
  return errors


def _assert_round_off(errors):
  for name, per_output in errors.items():
    for output, error in zip(("y", "d_input", "d_kernel"), per_output):
      assert error < 2e-6, f"{name} {output}: error {error:.2e} of the scale"


def test_eigen_path_convolutions_equal_a_float64_reference():
  if xla_cpu_flags.not_applied is not None:
    pytest.skip(f"gen_jax did not set its XLA:CPU flag here: {xla_cpu_flags.not_applied}")
  assert xla_cpu_flags.FLAG in os.environ["XLA_FLAGS"]
  _assert_round_off(max_relative_errors())


def test_default_path_convolutions_equal_a_float64_reference():
  script = ("import json, gen_jax\nfrom tests.test_convolutions import max_relative_errors\n"
            "assert gen_jax.xla_cpu_flags.not_applied is not None\nprint(json.dumps(max_relative_errors()))")
  env = {"XLA_FLAGS": "", xla_cpu_flags.OPT_OUT: "0"}
  result = run_python(["-c", script], env)
  assert result.returncode == 0, result.stderr[-3000:]
  _assert_round_off(json.loads(result.stdout.splitlines()[-1]))


def test_the_reference_sees_a_mistake():
  """A kernel read back to front (a correlation vs convolution mix-up) is far outside round-off."""
  errors = max_relative_errors({k: v for k, v in KINDS.items() if k.startswith("3x3")}, mistake="flipped kernel")
  assert min(errors.values())[0] > 1e-2


@pytest.mark.parametrize("env, applied", [
    ({"XLA_FLAGS": ""}, True),
    ({"XLA_FLAGS": "--xla_force_host_platform_device_count=2"}, True),
    ({"XLA_FLAGS": "", xla_cpu_flags.OPT_OUT: "0"}, False),
    ({"XLA_FLAGS": "--xla_cpu_experimental_ynn_fusion_type=individual_convolution"}, False),
])
def test_gen_jax_sets_its_flag_only_where_allowed(env, applied):
  script = ("import os, jax, gen_jax\nprint(repr(gen_jax.xla_cpu_flags.not_applied)); "
            "print(os.environ['XLA_FLAGS']); print(jax.device_count())")
  result = run_python(["-c", script], {xla_cpu_flags.OPT_OUT: "1", **env})
  assert result.returncode == 0, result.stderr[-3000:]
  why_not, flags, devices = result.stdout.splitlines()[-3:]
  assert (why_not == "None") == applied
  assert flags == (f"{env['XLA_FLAGS']} {xla_cpu_flags.FLAG}".strip() if applied else env["XLA_FLAGS"])
  assert devices == ("2" if "device_count=2" in env["XLA_FLAGS"] else "1")


def test_a_backend_made_before_the_import_is_left_alone():
  script = ("import os, jax\njax.numpy.ones(1)\nimport gen_jax\nprint(gen_jax.xla_cpu_flags.not_applied); "
            "print(repr(os.environ['XLA_FLAGS']))")
  result = run_python(["-c", script], {"XLA_FLAGS": "", xla_cpu_flags.OPT_OUT: "1"})
  assert result.returncode == 0, result.stderr[-3000:]
  assert result.stdout.splitlines()[-2:] == ["a JAX backend was made before gen_jax was imported", "''"]
