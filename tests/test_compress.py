"""Lossless compression: the coder's length against -log2 P on known laws, bit-exact round trips of a
PixelCNN's and a VAE's codes, and refusals of damaged files and of another model's files."""
import dataclasses
import os
import subprocess
import sys

import jax
import numpy as np
import pytest

from gen_jax import compress, models
from gen_jax.compress import bits_back, container, entropy_coder
from gen_jax.data import DataSpec, load_dataset
from gen_jax.drivers.run import Run
from gen_jax.train import sharding
from gen_jax.train.step import make_init_state
from gen_jax.train.task import BitsBack
from experiments.configs import pixelcnn_digits, vae_digits
from tests.conftest import REPO

DIGITS = DataSpec("digits", (8, 8, 1), 17, "image")


def test_the_code_length_is_within_a_few_bits_of_minus_log2_p():
  rng = np.random.default_rng(0)
  probs = rng.dirichlet(np.full(17, 0.3), size=2000)
  symbols = np.array([rng.choice(17, p=p) for p in probs])
  ideal = -np.sum(np.log2(probs[np.arange(len(symbols)), symbols]))
  stack = entropy_coder.Stack()
  frequencies = entropy_coder.quantize(np.log(probs))
  assert (frequencies.sum(axis=1) == 2 ** entropy_coder.PRECISION).all() and frequencies.min() >= 1
  stack.push(symbols, frequencies)
  assert abs(32 * len(stack.words()) - ideal) < 64  # ANS's 64-bit state: its start and end, nothing more
  np.testing.assert_array_equal(entropy_coder.Stack(stack.words()).pop(frequencies), symbols)


def test_a_bits_back_chain_whose_decoder_ignores_z_costs_minus_log2_p_x():
  """q = the prior and p(x | z) = p(x): the bits taken for z all come back, the net length is -log2 P(x)."""
  rng = np.random.default_rng(1)
  table = np.log(rng.dirichlet(np.ones(5), size=(4, 3)))  # [*event_shape, L]: p(x) per dimension
  fake = BitsBack(posterior=lambda v, x: (np.zeros((x.shape[0], 2), np.float32), np.ones((x.shape[0], 2), np.float32)),
                  observation_log_probs=lambda v, z: np.broadcast_to(table, (z.shape[0],) + table.shape))
  images = np.stack([[[rng.choice(5, p=np.exp(table[i, j])) for j in range(3)] for i in range(4)]
                     for _ in range(40)]).astype(np.uint8)[..., None][..., 0]
  words, initial_bits = bits_back.encode_words(fake, None, images, 8, 2, 8, seed=0)
  quantized = entropy_coder.quantize(np.broadcast_to(table, images.shape + (5,)))
  ideal = entropy_coder.code_length_bits(images.reshape(-1), quantized)
  assert abs(32 * len(words) - initial_bits - ideal) < 64
  np.testing.assert_array_equal(bits_back.decode_words(fake, None, words, 40, (4, 3), 8, 2, 8, 0), images)


def _tiny_run(config, name):
  task = models.build_task(config, DIGITS)
  init_state, _ = make_init_state(task, 0.0, sharding.make_mesh(jax.devices()[:1]))
  x = load_dataset("digits", "train").data[:8]
  variables = init_state(jax.random.key(0), x).eval_variables
  return Run(config=config, model=task.model, params=variables["model"], all_params=variables, task=task, spec=DIGITS,
             step=0, workdir=name)


@pytest.fixture(scope="module")
def pixelcnn_run():
  config = pixelcnn_digits.get_config("cpu")
  config.model.update(dict(channels=8, num_layers=2, head_channels=16))
  return _tiny_run(config, "tiny_pixelcnn")


@pytest.fixture(scope="module")
def vae_run():
  config = vae_digits.get_config("cpu")
  config.model.latent_dim, config.model.channels = 4, (8, 8)
  return _tiny_run(config, "tiny_vae")


@pytest.fixture(scope="module")
def test_images():
  return load_dataset("digits", "test").data[:37]


def test_pixelcnn_codes_round_trip_and_cost_the_exact_nll(pixelcnn_run, test_images):
  data = compress.encode(pixelcnn_run, test_images, batch_size=16)  # 3 batches, the last padded
  np.testing.assert_array_equal(compress.decode(pixelcnn_run, data), test_images)
  header, words = container.unpack(data)
  nll_bits = -float(np.sum(pixelcnn_run.log_likelihood(test_images))) / np.log(2)
  assert abs(32 * len(words) - nll_bits) < 64, (32 * len(words), nll_bits)
  assert header["coder"] == "autoregressive" and header["count"] == 37


def test_vae_bits_back_round_trips_near_its_elbo(vae_run, test_images):
  data = compress.encode(vae_run, test_images, batch_size=16)
  np.testing.assert_array_equal(compress.decode(vae_run, data), test_images)
  header, words = container.unpack(data)
  net_bits = 32 * len(words) - header["initial_bits"]
  elbo_bits = -float(np.sum(vae_run.log_likelihood(test_images, "elbo"))) / np.log(2)
  assert abs(net_bits - elbo_bits) < 0.05 * elbo_bits, (net_bits, elbo_bits)  # one-sample estimates of one bound


def test_damaged_data_and_another_models_data_are_refused(pixelcnn_run, vae_run, test_images):
  data = compress.encode(pixelcnn_run, test_images[:5])
  with pytest.raises(ValueError, match="F is truncated"):
    compress.decode(pixelcnn_run, data[:-3], "F")
  flipped = bytearray(data)
  flipped[-5] ^= 1
  with pytest.raises(ValueError, match="F is corrupted"):
    compress.decode(pixelcnn_run, bytes(flipped), "F")
  with pytest.raises(ValueError, match="not gen_jax compressed data"):
    compress.decode(pixelcnn_run, b"PNG....", "F")
  with pytest.raises(ValueError, match=r"F was written with another model \('pixelcnn' at step 0"):
    compress.decode(vae_run, data, "F")
  retrained = dataclasses.replace(pixelcnn_run, all_params=jax.tree.map(lambda a: a + 1e-3, pixelcnn_run.all_params))
  with pytest.raises(ValueError, match="another model"):
    compress.decode(retrained, data, "F")
  with pytest.raises(ValueError, match="must lie in"):
    compress.encode(pixelcnn_run, test_images[:2] + 17)
  with pytest.raises(ValueError, match="at least one"):
    compress.encode(pixelcnn_run, test_images[:0])


@pytest.mark.slow
def test_the_command_line_encodes_and_decodes_a_run(tmp_path):
  from gen_jax.drivers import loop
  config = pixelcnn_digits.get_config("cpu")
  config.model.update(dict(channels=8, num_layers=2, head_channels=16))
  config.train.update(dict(num_steps=2, steps_per_call=1, log_every=1, eval_every=2, sample_every=2, save_every=2))
  loop.train_and_evaluate(config, str(tmp_path / "run"))
  command = [sys.executable, "-m", "gen_jax.compress", f"--workdir={tmp_path / 'run'}", "--num=20"]
  encoded = subprocess.run(command + [f"--out={tmp_path / 'x.gjc'}"], cwd=REPO, capture_output=True, text=True)
  assert encoded.returncode == 0, encoded.stderr[-2000:]
  assert "20 images" in encoded.stdout
  decoded = subprocess.run(command + [f"--decode={tmp_path / 'x.gjc'}", f"--out={tmp_path / 'x.npz'}", "--check"],
                           cwd=REPO, capture_output=True, text=True)
  assert decoded.returncode == 0 and "identical to the first 20 images" in decoded.stdout, decoded.stderr[-2000:]
  (tmp_path / "bad.gjc").write_bytes((tmp_path / "x.gjc").read_bytes()[:-1])
  bad = subprocess.run(command + [f"--decode={tmp_path / 'bad.gjc'}", f"--out={tmp_path / 'y.npz'}"], cwd=REPO,
                       capture_output=True, text=True)
  assert bad.returncode == 2 and f"{tmp_path / 'bad.gjc'} is truncated" in bad.stderr
  assert not os.path.exists(tmp_path / "y.npz")
