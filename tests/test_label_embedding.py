"""gen_jax.nn.label_embedding: the label check and the guided output of a conditional model on one doubled batch."""
import jax
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.nn.label_embedding import check_labels, guidance_scale_is_one, guided_output

K = 3


def recording_model(calls):
  """apply(x [B, 2], shift (scalar or [B]), labels [B]) = x * (labels + 1) + shift, each call's batch recorded."""
  def apply(x, shift, labels):
    calls.append(x.shape[0])
    return x * (labels[:, None] + 1.0) + jnp.reshape(shift, (-1, 1))
  return apply


@pytest.mark.parametrize("scale", [0.0, 2.5, jnp.float32(1.0)])
def test_guided_output_is_one_doubled_call_combining_conditional_and_null(scale):
  x = jnp.asarray(np.random.default_rng(0).normal(size=(5, 2)), jnp.float32)
  labels = jnp.array([0, 1, 2, 0, 1], jnp.int32)
  calls = []
  out = guided_output(recording_model(calls), (x, jnp.float32(0.5)), labels, K, scale)
  assert calls == [10]  # conditional and null halves in one evaluation
  conditional = np.asarray(x) * (np.asarray(labels)[:, None] + 1.0) + 0.5
  unconditional = np.asarray(x) * (K + 1.0) + 0.5
  expected = unconditional + float(scale) * (conditional - unconditional)
  np.testing.assert_allclose(np.asarray(out), expected, rtol=1e-6)


def test_a_python_scale_of_one_skips_the_null_half():
  x = jnp.ones((4, 2))
  labels = jnp.array([0, 1, 2, 2], jnp.int32)
  calls = []
  out = guided_output(recording_model(calls), (x, jnp.zeros((4,))), labels, K, 1)
  assert calls == [4]
  np.testing.assert_allclose(np.asarray(out), np.asarray(labels)[:, None] + np.ones((4, 2)) * 1.0)
  assert guidance_scale_is_one(1) and guidance_scale_is_one(1.0)
  assert not guidance_scale_is_one(jnp.float32(1.0)) and not guidance_scale_is_one(2.0)


def test_check_labels():
  np.testing.assert_array_equal(check_labels(np.array([0, 3, 2], np.int64), 3, K), [0, 3, 2])
  assert check_labels(jnp.array([1, 2], jnp.uint8), 2, K).dtype == jnp.int32
  assert check_labels(None, 4, 0) is None
  with pytest.raises(ValueError, match="labels were given to an unconditional model"):
    check_labels(jnp.zeros((4,), jnp.int32), 4, 0)
  with pytest.raises(ValueError, match=r"num_classes=3\) needs labels \[num\] = \(4,\)"):
    check_labels(None, 4, K, "num")
  with pytest.raises(ValueError, match=r"must lie in \{0, ..., 3\} \(3 = the null label\), got values in \[0, 7\]"):
    check_labels(jnp.array([0, 7]), 2, K)
  with pytest.raises(ValueError, match=r"integers of shape \[batch\] = \(2,\), got float32 \(2,\)"):
    check_labels(jnp.zeros((2,)), 2, K)
  with pytest.raises(ValueError, match=r"integers of shape \[batch\] = \(2,\), got int32 \(2, 1\)"):
    check_labels(jnp.zeros((2, 1), jnp.int32), 2, K)


def test_check_labels_under_jit():
  """Labels closed over by a jitted function are concrete: checked (the comparison must not be traced);
  labels that are the jitted function's arguments are traced: range unchecked, passed through as int32."""
  ok = jnp.array([0, 3])
  np.testing.assert_array_equal(jax.jit(lambda: check_labels(ok, 2, K))(), [0, 3])
  bad = jnp.array([0, 7])
  with pytest.raises(ValueError, match=r"got values in \[0, 7\]"):
    jax.jit(lambda: check_labels(bad, 2, K))()
  traced = jax.jit(lambda labels: check_labels(labels, 2, K))(jnp.array([0, 7], jnp.uint8))
  assert traced.dtype == jnp.int32
