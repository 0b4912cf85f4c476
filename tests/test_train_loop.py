"""The training loop: data parallelism, resumption after SIGKILL and SIGTERM, non-finite stops, eval masking."""
import json
import os
import signal
import subprocess
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import gen_jax
from gen_jax import models
from gen_jax.data import Dataset, DataSpec
from gen_jax.drivers import loop
from gen_jax.train import sharding
from gen_jax.train.metrics_log import read_metrics
from gen_jax.train.optimizer import make_optimizer
from gen_jax.train.task import Task, gradient_update
from experiments.configs import realnvp_toy2d
from tests.conftest import REPO, run_python

TOY_FLAGS = ["--config=experiments/configs/realnvp_toy2d.py:two_moons", "--config.model.num_couplings=4",
             "--config.model.hidden=16", "--config.train.batch_size=64", "--config.eval.batch_size=1000",
             "--config.eval.num_samples=200"]


def tiny_toy_config(num_steps=40, k=5):
  config = realnvp_toy2d.get_config("two_moons")
  config.model.num_couplings, config.model.hidden = 4, 16
  config.train.batch_size, config.eval.batch_size, config.eval.num_samples = 64, 1000, 200
  config.train.num_steps, config.train.steps_per_call = num_steps, k
  for name in ("log_every", "eval_every", "sample_every", "save_every"):
    config.train[name] = k
  return config


def params_of(workdir):
  return jax.tree.leaves(jax.device_get(gen_jax.load_run(workdir, use_ema=False).all_params))


def test_four_fake_devices_equal_one_device(tmp_path):
  """The same run on a 4-device mesh and on 1 device: equal loss trajectories and params."""
  script = f"""
import sys, json, jax, numpy as np
sys.path.insert(0, {REPO!r})
from tests.test_train_loop import tiny_toy_config
from gen_jax.drivers import loop
assert jax.device_count() == 4, jax.devices()
out = {{}}
for n in (1, 4):
  config = tiny_toy_config(num_steps=20, k=1)
  config.train.log_every = 1
  state = loop.train_and_evaluate(config, {str(tmp_path)!r} + f"/run{{n}}", devices=jax.devices()[:n])
  out[n] = [float(np.sum(np.abs(x))) for x in jax.tree.leaves(state.params)]
print(json.dumps(out))
"""
  result = run_python(["-c", script], {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
  assert result.returncode == 0, result.stderr[-3000:]
  losses = {n: [m["train/loss"] for m in read_metrics(tmp_path / f"run{n}" / "metrics.jsonl")
                if "train/loss" in m] for n in (1, 4)}
  assert len(losses[1]) == 20
  np.testing.assert_allclose(losses[4], losses[1], rtol=1e-5, atol=1e-5)
  assert losses[1][-1] < losses[1][0]  # it trains
  params = json.loads(result.stdout.strip().splitlines()[-1])
  np.testing.assert_allclose(params["4"], params["1"], rtol=1e-4)


def _main(workdir, *extra):
  return [sys.executable, "-m", "experiments.main", *TOY_FLAGS, f"--workdir={workdir}", *extra]


def test_sigkill_at_any_moment_then_resume_gives_identical_params(tmp_path):
  steps = ["--config.train.num_steps=300", "--config.train.steps_per_call=10", "--config.train.log_every=10",
           "--config.train.eval_every=100", "--config.train.sample_every=300", "--config.train.save_every=20"]
  reference = subprocess.run(_main(tmp_path / "reference", *steps), cwd=REPO, capture_output=True, text=True)
  assert reference.returncode == 0, reference.stderr[-3000:]

  killed = tmp_path / "killed"
  rng = np.random.default_rng(0)
  kills = 0
  for attempt in range(6):  # kill at random moments (start-up, training, saving), then let it finish
    proc = subprocess.Popen(_main(killed, *steps), cwd=REPO, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    if attempt < 3:
      time.sleep(rng.uniform(3.0, 9.0))
      if proc.poll() is None:
        proc.send_signal(signal.SIGKILL)
        kills += 1
    assert proc.wait(timeout=600) in (0, -signal.SIGKILL)
    if proc.returncode == 0:
      break
  assert kills >= 1 and proc.returncode == 0
  for a, b in zip(params_of(tmp_path / "reference"), params_of(killed), strict=True):
    np.testing.assert_array_equal(a, b)
  # Resumed runs log each step once, with the same training losses as the uninterrupted run.
  train = lambda d: [(m["step"], m["train/loss"]) for m in read_metrics(d / "metrics.jsonl") if "train/loss" in m]
  assert train(killed) == train(tmp_path / "reference")


def test_sigterm_saves_a_checkpoint_and_exits_cleanly(tmp_path):
  steps = ["--config.train.num_steps=100000", "--config.train.steps_per_call=10",
           "--config.train.log_every=10", "--config.train.eval_every=50000", "--config.train.sample_every=50000",
           "--config.train.save_every=50000"]
  proc = subprocess.Popen(_main(tmp_path, *steps), cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
                          text=True)
  metrics = tmp_path / "metrics.jsonl"
  deadline = time.time() + 120
  while not (metrics.exists() and metrics.read_text().count("\n") >= 3):
    assert proc.poll() is None and time.time() < deadline, proc.stderr.read()[-2000:] if proc.poll() else "slow"
    time.sleep(0.2)
  proc.send_signal(signal.SIGTERM)
  assert proc.wait(timeout=120) == 0
  run = gen_jax.load_run(str(tmp_path))
  assert run.step >= 30 and run.step % 10 == 0  # saved at a chunk boundary after the signal


def _quadratic_task(spec, optimizer):
  model = None

  def init(rng, batch):
    del rng, batch
    return {"model": {"w": jnp.ones(())}}, {}

  def loss(params, state, batch, rng, step):
    del batch, rng, step
    value = params["model"]["w"] ** 2  # overflows to inf after one huge Adam step
    return value, ({}, state)

  evaluate = lambda params, batch, rng: {"loss": jnp.zeros(batch.shape[0])}
  sample = lambda params, rng, num: jnp.zeros((num, 2))
  return Task(model=model, init=init, optimizer=optimizer, update=gradient_update(loss, optimizer), loss=loss,
              evaluate=evaluate, sample=sample)


def test_non_finite_loss_stops_the_run_naming_the_step(tmp_path, monkeypatch):
  monkeypatch.setattr(models, "build_task", lambda config, spec: _quadratic_task(
      spec, make_optimizer(config.optim, config.train.num_steps)))
  config = tiny_toy_config(num_steps=10, k=5)
  config.optim.learning_rate, config.optim.warmup_steps, config.optim.grad_clip_norm = 1e38, 0, 0.0
  with pytest.raises(FloatingPointError, match="non-finite loss .* at step 2"):
    loop.train_and_evaluate(config, str(tmp_path))


def test_evaluate_pads_and_masks_the_last_batch():
  data = np.arange(1003, dtype=np.float32).reshape(-1, 1) * np.ones((1, 2), np.float32)
  dataset = Dataset(data=data, labels=None, spec=DataSpec("toy", (2,), None, "vector"))
  task = Task(model=None, init=None, optimizer=None, update=None, sample=None,
              evaluate=lambda params, batch, rng: {"x": batch[:, 0], "one": jnp.ones(batch.shape[0])})
  mesh = sharding.make_mesh(jax.devices()[:1])
  result = loop.evaluate(task, None, dataset, 100, jax.random.key(0), mesh)
  assert result["one"] == 1.0
  np.testing.assert_allclose(result["x"], np.mean(data[:, 0]), rtol=1e-12)


def test_config_fields_must_align_with_steps_per_call(tmp_path):
  config = tiny_toy_config()
  config.train.eval_every = 7
  with pytest.raises(ValueError, match=r"train.eval_every must be a positive multiple of train.steps_per_call \(5\)"):
    loop.train_and_evaluate(config, str(tmp_path))
  config = tiny_toy_config()
  config.model.name = "nope"
  with pytest.raises(ValueError, match="model.name must be one of"):
    loop.train_and_evaluate(config, str(tmp_path))


def _conv_task(optimizer, convolve):
  """A one-layer convolutional (or, convolve=False, dense) regression: enough to choose the K-step plan."""
  def init(rng, batch):
    del batch
    return {"model": {"w": 0.1 * jax.random.normal(rng, (3, 3, 2, 2))}}, {}

  def loss(params, state, batch, rng, step):
    del step
    w = params["model"]["w"]
    noisy = batch + 0.01 * jax.random.normal(rng, batch.shape)
    y = (jax.lax.conv_general_dilated(noisy, w, (1, 1), "SAME", dimension_numbers=("NHWC", "HWIO", "NHWC"))
         if convolve else noisy @ w[1, 1])
    return jnp.mean((y - batch[..., ::-1]) ** 2), ({}, state)

  return Task(model=None, init=init, optimizer=optimizer, update=gradient_update(loss, optimizer), loss=loss,
              evaluate=None, sample=None)


@pytest.mark.parametrize("convolve", [True, False])
def test_k_steps_per_call_equal_a_scan_of_single_steps(convolve):
  """On CPU a step with a convolution runs K compiled single steps (XLA:CPU runs its gradient convolutions
  in a while loop 23-47x slower); without one it is a lax.scan. Either way: the scan's numbers."""
  from gen_jax.train import step as step_lib
  optimizer = make_optimizer(tiny_toy_config().optim, 100)
  task = _conv_task(optimizer, convolve)
  mesh = sharding.make_mesh(jax.devices()[:1])
  batches = jax.random.normal(jax.random.key(1), (4, 8, 6, 6, 2))
  init_state, state_sharding = step_lib.make_init_state(task, 0.9, mesh)
  steps = step_lib.make_train_steps(task, 0.9, mesh, state_sharding)
  key = jax.random.key(2)
  reference = jax.jit(lambda state: jax.lax.scan(
      lambda s, b: step_lib.train_step(s, b, key, task=task, ema_decay=0.9), state, batches))
  expected_state, expected = reference(init_state(jax.random.key(0), batches[0]))
  state, metrics = steps(init_state(jax.random.key(0), batches[0]), batches, key)
  assert steps.step_by_step is convolve
  assert int(state.step) == 4 and metrics["loss"].shape == (4,)
  np.testing.assert_allclose(metrics["loss"], expected["loss"], rtol=1e-5)
  for got, want in zip(jax.tree.leaves(state), jax.tree.leaves(expected_state)):
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-7)


def test_a_convolution_is_found_wherever_the_step_nests_it():
  from gen_jax.train.step import _has_convolution
  conv = lambda x: jax.lax.conv_general_dilated(x, jnp.ones((1, 1, 2, 2)), (1, 1), "SAME",
                                                dimension_numbers=("NHWC", "HWIO", "NHWC"))
  x = jnp.ones((1, 3, 3, 2))
  nestings = {"top": conv, "jit": jax.jit(conv), "remat": jax.checkpoint(conv),
              "cond": lambda x: jax.lax.cond(True, conv, lambda x: x, x),
              "scan": lambda x: jax.lax.scan(lambda c, _: (conv(c), None), x, None, length=2)[0],
              "grad": jax.grad(lambda x: jnp.sum(jax.jit(conv)(x)))}
  for name, f in nestings.items():
    assert _has_convolution(jax.make_jaxpr(f)(x)), name
  assert not _has_convolution(jax.make_jaxpr(lambda x: jnp.tanh(x @ jnp.ones((2, 2))))(x))
