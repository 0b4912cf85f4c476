"""The engine's shared contracts across families: carried state (GAN batch statistics, the EBM's
replay buffer) is checkpointed but never averaged by the EMA and resumes bit-identically; config.optim
reaches a GAN's players or is refused; a family's config section refuses keys it does not know;
old checkpoints fail with a message naming their format."""
import shutil

import jax
import numpy as np
import pytest

import gen_jax
from experiments.configs import ebm_toy2d, gan_digits, vae_digits
from gen_jax.data.spec import DataSpec
from gen_jax.drivers import loop

DIGITS = DataSpec("digits", (8, 8, 1), 17, "image")
TOY = DataSpec("toy2d/eight_gaussians", (2,), None, "vector")


def tiny_gan_config(num_steps=4):
  config = gan_digits.get_config("cpu")  # DCGAN: BatchNorm in both players
  config.model.update(channels=8, latent_dim=8)
  config.train.update(num_steps=num_steps, batch_size=16, log_every=2, eval_every=num_steps,
                      sample_every=num_steps, save_every=2, ema_decay=0.9)
  config.eval.num_samples = 8
  return config


def tiny_ebm_config(num_steps=4):
  config = ebm_toy2d.get_config("eight_gaussians,cpu")
  config.model.update(hidden_sizes=(16,), langevin_steps=3, grid_size=32)
  config.ebm.update(buffer_size=64, sample_steps=3)
  config.train.update(num_steps=num_steps, batch_size=32, steps_per_call=2, log_every=2, eval_every=num_steps,
                      sample_every=num_steps, save_every=2, ema_decay=0.9)
  config.eval.update(batch_size=500, num_samples=16)
  return config


def _resumed_equals_straight(make_config, tmp_path):
  """Trains 4 steps straight and, from a copy holding only the step-2 checkpoint, resumes to 4: every
  leaf of the final states (params, carried state, EMA, optimizer) is bit-identical. Returns the state."""
  straight = loop.train_and_evaluate(make_config(), str(tmp_path / "straight"))
  shutil.copytree(tmp_path / "straight", tmp_path / "resumed")
  shutil.rmtree(tmp_path / "resumed" / "checkpoints" / "4")
  resumed = loop.train_and_evaluate(make_config(), str(tmp_path / "resumed"))
  assert int(resumed.step) == 4
  assert jax.tree.structure(straight) == jax.tree.structure(resumed)
  for a, b in zip(jax.tree.leaves(straight), jax.tree.leaves(resumed)):
    np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
  return straight


def test_gan_batch_statistics_are_carried_not_averaged_and_resume_bit_identically(tmp_path):
  state = _resumed_equals_straight(tiny_gan_config, tmp_path)
  stats = state.model_state["model"]["batch_stats"]
  assert "generator" in stats  # the DCGAN generator's BatchNorm running statistics
  assert "batch_stats" not in state.ema_params["model"] and "batch_stats" not in state.params["model"]
  # Evaluation takes the EMA of the trained params with the current statistics, not an average of them.
  variables = state.eval_variables
  jax.tree.map(np.testing.assert_array_equal, variables["model"]["batch_stats"], stats)
  jax.tree.map(np.testing.assert_array_equal, variables["model"]["params"], state.ema_params["model"]["params"])
  assert any(np.any(np.asarray(a) != np.asarray(b)) for a, b in
             zip(jax.tree.leaves(state.ema_params), jax.tree.leaves(state.params)))  # the EMA does act
  run = gen_jax.load_run(str(tmp_path / "resumed"))
  jax.tree.map(np.testing.assert_array_equal, run.all_params["model"]["batch_stats"], stats)


def test_ebm_replay_buffer_is_carried_not_averaged_and_resumes_bit_identically(tmp_path):
  state = _resumed_equals_straight(tiny_ebm_config, tmp_path)
  assert state.model_state["buffer"].shape == (64, 2)
  assert "buffer" not in state.ema_params and "buffer" not in state.params
  np.testing.assert_array_equal(state.eval_variables["buffer"], state.model_state["buffer"])
  run = gen_jax.load_run(str(tmp_path / "resumed"))  # with the EMA: the buffer is the chains' own states
  np.testing.assert_array_equal(run.all_params["buffer"], state.model_state["buffer"])


def _first_update_moves(config):
  task = gen_jax.models.build_task(config, DIGITS)
  x = gen_jax.data.load_dataset("digits", "train").data[:16]
  params, state = task.init(jax.random.key(0), x)
  new_params, *_ = jax.jit(task.update)(params, state, task.optimizer.init(params), x, jax.random.key(1),
                                        jax.numpy.int32(0))
  moved = lambda name: any(np.any(np.asarray(a) != np.asarray(b)) for a, b in zip(
      jax.tree.leaves(params["model"]["params"][name]), jax.tree.leaves(new_params["model"]["params"][name])))
  return moved("generator"), moved("discriminator")


def test_config_optim_reaches_the_gan_players_or_is_refused():
  config = tiny_gan_config()
  assert _first_update_moves(config) == (True, True)
  config.optim.warmup_steps = 5  # step 0 of a linear warm-up from 0: a zero learning rate for both players
  assert _first_update_moves(config) == (False, False)
  config = tiny_gan_config()
  config.optim.learning_rate = 1e-3  # a GAN has a rate per player: one shared rate would do nothing
  with pytest.raises(ValueError, match=r"unknown config.optim field\(s\) \['learning_rate'\]"):
    gen_jax.models.build_task(config, DIGITS)
  config = tiny_gan_config()
  config.optim.grad_clip_norm = -1.0
  with pytest.raises(ValueError, match="grad_clip_norm"):
    gen_jax.models.build_task(config, DIGITS)


def test_a_misspelt_key_in_a_family_section_fails_at_build_time_naming_the_known_keys():
  config = tiny_gan_config()
  config.gan.n_critc = 5
  with pytest.raises(ValueError, match=r"unknown config.gan key\(s\) \['n_critc'\]: gan_task takes "
                                       r"\['gradient_penalty', 'loss', 'n_critic', 'r1_penalty'\]"):
    gen_jax.models.build_task(config, DIGITS)
  config = vae_digits.get_config("cpu")
  config.vae.bta = 2.0
  with pytest.raises(ValueError, match=r"\['bta'\]: vae_task takes \['beta', 'kl_warmup_steps'\]"):
    gen_jax.models.build_task(config, DIGITS)
  config = tiny_ebm_config()
  config.optim.warmup = 10
  with pytest.raises(ValueError, match=r"unknown config.optim field\(s\) \['warmup'\]"):
    gen_jax.models.build_task(config, TOY)


def test_fields_that_moved_or_copy_the_data_are_refused():
  config = vae_digits.get_config("cpu")
  config.loss = {"beta": 2.0}  # the section an older config used
  with pytest.raises(ValueError, match="config.loss no longer acts: set config.vae"):
    gen_jax.models.build_task(config, DIGITS)
  config = vae_digits.get_config("cpu")
  config.model.num_levels = 17
  with pytest.raises(ValueError, match="grey levels come from the data"):
    gen_jax.models.build_task(config, DIGITS)
  assert gen_jax.models.build_task(vae_digits.get_config("cpu"), DIGITS).model.num_levels == 17


def test_a_checkpoint_of_the_earlier_format_fails_naming_its_format(tmp_path):
  loop.train_and_evaluate(tiny_ebm_config(num_steps=2), str(tmp_path))
  (tmp_path / "checkpoint_format.json").unlink()  # as a run written before format 2
  with pytest.raises(ValueError, match="checkpoint format 1 .* reads format 2"):
    gen_jax.load_run(str(tmp_path))
  with pytest.raises(ValueError, match="checkpoint format 1"):
    loop.train_and_evaluate(tiny_ebm_config(num_steps=4), str(tmp_path))
