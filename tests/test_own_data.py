"""The trainer on a researcher's own data (arrays, an .npz through experiments.main), what it prints,
its TensorBoard files, and a workdir that holds another model's run."""
import os

import numpy as np
import pytest
from tensorboard.backend.event_processing import event_accumulator

import gen_jax
from experiments.configs import realnvp_toy2d
from gen_jax.data import dataset_from_arrays, load_dataset
from gen_jax.drivers import loop
from gen_jax.train.metrics_log import read_metrics
from tests.conftest import run_python


def tiny_config(num_steps=4):
  config = realnvp_toy2d.get_config("cpu")
  config.model.update(num_couplings=2, hidden=16)
  config.train.update(num_steps=num_steps, batch_size=64, steps_per_call=2, log_every=2, eval_every=num_steps,
                      sample_every=num_steps, save_every=2)
  config.eval.update(batch_size=500, num_samples=100)
  return config


def ring(seed, num):
  """Points on a noisy unit circle: not one of the bundled densities."""
  rng = np.random.default_rng(seed)
  angle = rng.uniform(0, 2 * np.pi, num)
  return (np.stack([np.cos(angle), np.sin(angle)], 1) + 0.05 * rng.normal(size=(num, 2))).astype(np.float32)


def test_a_numpy_array_trains_prints_its_config_and_writes_tensorboard(tmp_path, capsys):
  train, test = ring(0, 1000), ring(1, 500)
  loop.train_and_evaluate(tiny_config(), str(tmp_path), train_data=train, test_data=test)
  out = capsys.readouterr().out
  assert "realnvp on arrays (train) (2,): starting in" in out and "num_couplings: 2" in out  # the resolved config
  assert "step 2/4: train/loss=" in out  # no terminal under pytest: a line per log step, no bar
  metrics = read_metrics(str(tmp_path / "metrics.jsonl"))
  evals = [m for m in metrics if "eval/nll" in m]
  assert [m["step"] for m in evals] == [4]

  run = gen_jax.load_run(str(tmp_path))
  assert run.config.data.name == "arrays (train)" and run.spec.event_shape == (2,)
  # The logged eval is the run's log-likelihood of the test array (one batch of 500: the same average).
  np.testing.assert_allclose(-np.mean(run.log_likelihood(test)), evals[0]["eval/nll"], rtol=1e-5)

  accumulator = event_accumulator.EventAccumulator(str(tmp_path))  # beside metrics.jsonl
  accumulator.Reload()
  losses = {m["step"]: m["train/loss"] for m in metrics if "train/loss" in m}
  events = accumulator.Scalars("train/loss")
  assert {e.step: e.value for e in events} == pytest.approx(losses, rel=1e-6)
  assert [e.step for e in accumulator.Scalars("eval/nll")] == [4]

  # Resuming is information, with the step it resumes from.
  loop.train_and_evaluate(tiny_config(6), str(tmp_path), train_data=train, test_data=test)
  assert "resuming from the checkpoint at step 4" in capsys.readouterr().out


def test_own_data_is_checked_before_any_training(tmp_path):
  with pytest.raises(ValueError, match="both train_data and test_data"):
    loop.train_and_evaluate(tiny_config(), str(tmp_path), train_data=ring(0, 100))
  with pytest.raises(ValueError, match=r"vectors must be float32 \[N, D\], got dtype float64"):
    loop.train_and_evaluate(tiny_config(), str(tmp_path), train_data=ring(0, 100).astype(np.float64),
                            test_data=ring(1, 100))
  with pytest.raises(ValueError, match="same kind of data"):
    loop.train_and_evaluate(tiny_config(), str(tmp_path), train_data=ring(0, 100),
                            test_data=np.zeros((10, 3), np.float32))
  with pytest.raises(ValueError, match="uint8 levels"):
    dataset_from_arrays(np.zeros((4, 8, 8, 1), np.float32))
  with pytest.raises(ValueError, match="must lie in"):
    dataset_from_arrays(np.full((4, 8, 8, 1), 17, np.uint8), num_levels=17)
  assert not os.listdir(tmp_path)


def test_a_workdir_of_another_model_is_refused_naming_what_differs(tmp_path):
  train, test = ring(0, 500), ring(1, 200)
  loop.train_and_evaluate(tiny_config(2), str(tmp_path), train_data=train, test_data=test)
  wider = tiny_config(4)
  wider.model.hidden = 32
  with pytest.raises(ValueError, match=r"another run; this config differs in: model.hidden: 16 -> 32"):
    loop.train_and_evaluate(wider, str(tmp_path), train_data=train, test_data=test)
  with pytest.raises(ValueError, match=r"data event_shape: \(2,\) -> \(3,\)"):
    loop.train_and_evaluate(tiny_config(4), str(tmp_path), train_data=np.zeros((100, 3), np.float32),
                            test_data=np.zeros((50, 3), np.float32))
  # More steps of the same model resume.
  loop.train_and_evaluate(tiny_config(4), str(tmp_path), train_data=train, test_data=test)
  assert gen_jax.load_run(str(tmp_path)).step == 4


def test_an_npz_trains_through_experiments_main(tmp_path):
  path = tmp_path / "ring.npz"
  np.savez(path, train=ring(0, 1000), test=ring(1, 500))
  assert load_dataset(f"npz:{path}", "test").data.shape == (500, 2)
  result = run_python(["-m", "experiments.main", "--config=experiments/configs/realnvp_toy2d.py:cpu",
                       f"--workdir={tmp_path / 'run'}", f"--config.data.name=npz:{path}",
                       "--config.model.num_couplings=2", "--config.model.hidden=16",
                       "--config.train.num_steps=2", "--config.train.steps_per_call=2",
                       "--config.train.log_every=2", "--config.train.eval_every=2",
                       "--config.train.sample_every=2", "--config.train.save_every=2"])
  assert result.returncode == 0, result.stderr[-3000:]
  assert "realnvp on npz:" in result.stdout
  assert "eval/nll" in read_metrics(str(tmp_path / "run" / "metrics.jsonl"))[-1]
  with pytest.raises(FileNotFoundError, match="expected an .npz file"):
    load_dataset(f"npz:{tmp_path / 'missing.npz'}", "train")
