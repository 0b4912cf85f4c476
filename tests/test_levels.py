"""gen_jax.data.levels: the one map between discrete levels and each model space."""
import jax.numpy as jnp
import numpy as np
import pytest

from gen_jax.data import levels


@pytest.mark.parametrize("num_levels", [2, 17, 256])
def test_centred_and_unit_spaces_round_trip_every_level(num_levels):
  x = jnp.arange(num_levels, dtype=jnp.uint8)
  centres = levels.levels_to_centres(x, num_levels)
  np.testing.assert_allclose(centres, 2 * np.arange(num_levels) / (num_levels - 1) - 1, atol=1e-7)
  np.testing.assert_array_equal(levels.centres_to_levels(centres, num_levels), x)
  # Anywhere inside a bin maps back to its level; beyond [-1, 1] the edge bins take the tails.
  half = 1.0 / (num_levels - 1)
  np.testing.assert_array_equal(levels.centres_to_levels(centres + 0.99 * half, num_levels), x)
  np.testing.assert_array_equal(levels.centres_to_levels(centres - 0.99 * half, num_levels), x)
  np.testing.assert_array_equal(levels.centres_to_levels(jnp.array([-3.0, 3.0]), num_levels), [0, num_levels - 1])
  # The unit space: y in [x / L, (x + 1) / L) is level x.
  for u in (0.0, 0.5, 0.999):
    y = (np.arange(num_levels) + u) / num_levels
    np.testing.assert_array_equal(levels.unit_to_levels(y, num_levels), x)


def test_to_model_space_checks_dtype_range_and_shape():
  x = jnp.zeros((2, 4, 4, 1), jnp.uint8)
  assert levels.to_model_space(x, (4, 4, 1), 17).dtype == jnp.float32
  with pytest.raises(ValueError, match="integer levels"):
    levels.to_model_space(x.astype(jnp.float32), (4, 4, 1), 17)
  with pytest.raises(ValueError, match=r"num_levels=17\) must lie in \[0, 16\]"):
    levels.to_model_space(x + 17, (4, 4, 1), 17)
  with pytest.raises(ValueError, match="shape"):
    levels.to_model_space(x, (4, 4, 3), 17)
  with pytest.raises(ValueError, match="float vectors"):
    levels.to_model_space(jnp.zeros((2, 3), jnp.int32), (3,), None)
  with pytest.raises(ValueError, match=r"integer in \[2, 256\]"):
    levels.check_num_levels(257)
  with pytest.raises(ValueError, match="uint8 levels need num_levels <= 256"):
    levels.centres_to_levels(jnp.zeros(3), 1024)


def test_bits_per_dim_is_nats_over_d_ln_2():
  np.testing.assert_allclose(levels.bits_per_dim(jnp.asarray(64 * np.log(17.0)), 64), np.log2(17.0), rtol=1e-6)
