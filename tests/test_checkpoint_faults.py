"""Checkpoints, metric logs and config under faults: flipped bytes, truncated and empty steps, a torn
metrics line, a second process, out-of-range fields, a changed model."""
import glob
import os
import shutil
import subprocess
import sys

import jax
import jax.numpy as jnp
import numpy as np
import orbax.checkpoint as ocp
import pytest

from gen_jax.drivers import loop
from gen_jax.drivers import workdir_lock
from gen_jax.train import checkpoint
from gen_jax.train import sharding
from gen_jax.train.metrics_log import MetricsLog, read_metrics
from tests.conftest import REPO
from tests.test_train_loop import params_of, tiny_toy_config


def _flip(path, count=64):
  data = bytearray(open(path, "rb").read())
  middle = len(data) // 2
  for i in range(middle, min(middle + count, len(data))):
    data[i] ^= 0xFF
  open(path, "wb").write(data)


def _truncate(path):
  with open(path, "r+b") as f:
    f.truncate(os.path.getsize(path) // 2)


def _largest_data_file(step_dir):
  return max(glob.glob(os.path.join(step_dir, "default", "**", "d", "*"), recursive=True), key=os.path.getsize)


def test_flipped_bytes_that_orbax_restores_silently_are_detected(tmp_path):
  state = {"w": jnp.asarray(np.random.default_rng(0).normal(size=4096), jnp.float32), "b": jnp.zeros(3)}
  checkpoint.save(checkpoint.make_manager(str(tmp_path), 3), 1, state)
  _flip(_largest_data_file(tmp_path / "1"))
  manager = checkpoint.make_manager(str(tmp_path), 3)
  abstract = jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype), state)
  silent = manager.restore(1, args=ocp.args.StandardRestore(abstract))  # Orbax alone: no error
  assert float(jnp.max(jnp.abs(silent["w"] - state["w"]))) > 1.0
  with pytest.raises(checkpoint.DamagedCheckpoint, match=rf"{tmp_path}/1: 1 of 2 arrays differ .*\['w'\]"):
    checkpoint.restore_verified(manager, abstract, 1)
  with pytest.raises(checkpoint.DamagedCheckpoint, match="no checkpoint .* restores"):
    checkpoint.restore_newest_intact(manager, abstract)


def _faults_config(num_steps):
  config = tiny_toy_config(num_steps=num_steps, k=4)
  config.train.keep_checkpoints = 6
  return config


@pytest.fixture(scope="module")
def trained_to_16(tmp_path_factory):
  """A tiny run saved at steps 4, 8, 12, 16 (and the uninterrupted 24-step reference)."""
  root = tmp_path_factory.mktemp("faults")
  loop.train_and_evaluate(_faults_config(16), str(root / "to16"))
  loop.train_and_evaluate(_faults_config(24), str(root / "reference"))
  return root


def test_damaged_newest_steps_are_named_set_aside_and_the_run_resumes_bit_identically(trained_to_16, tmp_path,
                                                                                        capsys):
  workdir = tmp_path / "run"
  shutil.copytree(trained_to_16 / "to16", workdir)
  steps = workdir / "checkpoints"
  _truncate(_largest_data_file(steps / "16"))  # a truncated data file
  _truncate(steps / "12" / "default" / "manifest.ocdbt")  # a truncated manifest
  _truncate(steps / "8" / "default" / "_METADATA")  # a truncated tree metadata
  os.makedirs(steps / "20")  # an empty step directory
  with open(workdir / "metrics.jsonl", "a") as f:  # a kill during an append
    f.write('{"step": 16, "train/lo')
  with pytest.raises(checkpoint.DamagedCheckpoint, match=f"{steps}/20 cannot be restored"):
    loop.train_and_evaluate(_faults_config(24), str(workdir), strict_resume=True)
  assert sorted(os.listdir(steps)) == ["12", "16", "20", "4", "8"]  # strict: nothing moved
  capsys.readouterr()
  loop.train_and_evaluate(_faults_config(24), str(workdir))
  out = capsys.readouterr().out
  for step in (20, 16, 12, 8):
    assert f"checkpoint {steps}/{step} cannot be restored (" in out
  assert "resuming from the checkpoint at step 4" in out
  assert sorted(os.listdir(workdir / checkpoint.DAMAGED_DIR)) == ["12", "16", "20", "8"]  # moved, not deleted
  for a, b in zip(params_of(workdir), params_of(trained_to_16 / "reference")):
    np.testing.assert_array_equal(a, b)
  timeless = lambda path: [{k: v for k, v in m.items() if k != "train/steps_per_sec"} for m in read_metrics(path)]
  assert timeless(workdir / "metrics.jsonl") == timeless(trained_to_16 / "reference" / "metrics.jsonl")


def test_a_changed_model_names_the_arrays_and_fields_that_differ(trained_to_16, tmp_path):
  workdir = tmp_path / "run"
  shutil.copytree(trained_to_16 / "to16", workdir)
  config = _faults_config(24)
  config.optim.grad_clip_norm = 0.0  # no clipping: the optimizer state loses its clip slot
  with pytest.raises(ValueError, match=r"another train state \(\d+ arrays differ: .*opt_state.*optim.grad_clip_norm: "
                                       r"100.0 -> 0.0"):
    loop.train_and_evaluate(config, str(workdir))


@pytest.mark.parametrize("field, value, message", [
    ("train.keep_checkpoints", 0, r"config.train.keep_checkpoints must be an integer >= 1, got 0"),
    ("train.num_steps", 0, r"train.num_steps must be an integer >= 1"),
    ("train.num_steps", -5, r"train.num_steps must be an integer >= 1"),
    ("optim.learning_rate", -1e-3, r"optim.learning_rate must be a number > 0.0"),
    ("train.ema_decay", 2.0, r"train.ema_decay must be a number \[0.0, 1.0\), got 2.0"),
    ("optim.b2", 1.0, r"optim.b2 must be a number \[0.0, 1.0\)"),
    ("train.batch_size", 0, r"train.batch_size must be an integer >= 1"),
    ("optim.eps", float("nan"), r"optim.eps must be a number > 0.0, got nan"),
])
def test_out_of_range_fields_are_refused_before_any_work(field, value, message, tmp_path):
  config = tiny_toy_config()
  section, key = field.split(".")
  config[section][key] = value
  with pytest.raises(ValueError, match=message):
    loop.train_and_evaluate(config, str(tmp_path / "run"))
  assert not os.path.exists(tmp_path / "run")  # refused before the workdir is made


def test_a_second_process_on_a_workdir_is_refused(tmp_path):
  hold = (f"import sys, time; sys.path.insert(0, {REPO!r}); from gen_jax.drivers import workdir_lock\n"
          f"with workdir_lock.hold({str(tmp_path)!r}):\n  print('held', flush=True); time.sleep(60)")
  holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
  try:
    assert holder.stdout.readline().strip() == "held"
    with pytest.raises(RuntimeError, match=rf"{tmp_path} is in use: another process \(pid {holder.pid}\)"):
      loop.train_and_evaluate(tiny_toy_config(), str(tmp_path))
  finally:
    holder.kill()
    holder.wait()
  with workdir_lock.hold(str(tmp_path)):  # the kill released it
    pass


def test_a_torn_metrics_line_is_dropped_and_readers_skip_one_in_progress(tmp_path, caplog):
  path = tmp_path / "metrics.jsonl"
  path.write_text('{"step": 1, "a": 1.0}\n{"step": 2, "a": 2.0}\n{"step": 3, "a"')
  assert read_metrics(path) == [{"step": 1, "a": 1.0}, {"step": 2, "a": 2.0}]  # a line being written
  with MetricsLog(str(path), resume_step=2) as log:
    log.write(3, {"a": 3.0})
  assert "line 3 is torn" in caplog.text
  assert read_metrics(path) == [{"step": s, "a": float(s)} for s in (1, 2, 3)]
  path.write_text('{"step": 1, "a": 1.0}\n{"step": 2, "a{"step": 3}\n{"step": 4, "a": 4.0}\n')
  with pytest.raises(ValueError, match=r"metrics.jsonl: line 2 is not a JSON object"):
    read_metrics(path)


def test_value_checks_survive_jit_when_asked_for():
  """A VAE's ELBO fed levels of 20 where L = 17: eager raises, jit alone gives a number, `checked` raises."""
  from gen_jax import checks, models
  from gen_jax.data import DataSpec
  from gen_jax.train.step import make_init_state
  from tests.test_vae_task import tiny_digits_config
  task = models.build_task(tiny_digits_config(), DataSpec("digits", (8, 8, 1), 17, "image"))
  init_state, _ = make_init_state(task, 0.0, sharding.make_mesh(jax.devices()[:1]))
  x = np.full((2, 8, 8, 1), 20, np.uint8)
  params = init_state(jax.random.key(0), x.clip(0, 16)).eval_variables
  elbo, key = task.log_likelihoods["elbo"], jax.random.key(1)
  with pytest.raises(ValueError, match=r"x \(num_levels=17\) must lie in \[0, 16\], got values in \[20"):
    elbo(params, x, key)
  assert np.isfinite(np.asarray(jax.jit(elbo)(params, x, key))).all()  # jit alone: a finite, wrong bound
  with pytest.raises(ValueError, match=r"must lie in \[0, 16\], got values in \[20"):
    checks.checked(jax.jit(elbo))(params, x, key)
  np.testing.assert_array_equal(checks.checked(jax.jit(elbo))(params, x.clip(0, 16), key),
                                jax.jit(elbo)(params, x.clip(0, 16), key))


def test_an_empty_batch_is_a_clear_error(trained_to_16):
  import gen_jax
  from gen_jax import data
  with pytest.raises(ValueError, match=r"data must hold at least one example, got shape \(0, 8, 8, 1\)"):
    data.dataset_from_arrays(np.zeros((0, 8, 8, 1), np.uint8))
  with pytest.raises(ValueError, match=r"x must hold at least one example, got shape \(0, 2\)"):
    gen_jax.load_run(str(trained_to_16 / "to16")).log_likelihood(np.zeros((0, 2), np.float32))
