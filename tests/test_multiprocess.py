"""Multi-process runs on JAX's multi-controller runtime: 2 processes on this machine (CPU devices, gloo
collectives, the coordinator on 127.0.0.1) train the quick start like one process with the same global
batch, and a run resumes on another number of processes and devices to the same result."""
import os
import shutil
import signal
import socket
import subprocess
import sys
import time

import jax
import numpy as np
import pytest

import gen_jax
from gen_jax.drivers import distributed
from gen_jax.train.metrics_log import read_metrics
from tests.conftest import REPO

# the quick start (Glow on the 8x8 digits), shrunk to compile and run in seconds
QUICKSTART = ["--config=experiments/configs/quickstart.py", "--config.model.num_scales=1", "--config.model.num_steps=1",
              "--config.model.hidden_channels=8", "--config.train.batch_size=32", "--config.eval.batch_size=100",
              "--config.eval.num_samples=16", "--config.train.steps_per_call=1", "--config.train.log_every=1",
              "--config.train.eval_every=2", "--config.train.save_every=2", "--config.train.sample_every=100",
              "--config.train.keep_checkpoints=10"]
TOLERANCE = dict(rtol=1e-5, atol=1e-6)  # float32 sums reduced across processes in another order


def _free_port() -> int:
  with socket.socket() as s:
    s.bind(("127.0.0.1", 0))
    return s.getsockname()[1]


def start(workdir, num_steps, processes=1, devices=1, extra=()):
  """Starts `experiments.main` as `processes` processes with `devices` fake CPU devices each; returns the Popens."""
  port = _free_port()
  env = {**os.environ, "XLA_FLAGS": f"--xla_force_host_platform_device_count={devices}"}
  procs = []
  for i in range(processes):
    dist = [] if processes == 1 else [f"--coordinator_address=127.0.0.1:{port}", f"--num_processes={processes}",
                                      f"--process_id={i}"]
    log = open(f"{workdir}.p{i}.log", "w")
    procs.append(subprocess.Popen([sys.executable, "-m", "experiments.main", *QUICKSTART, *extra, *dist,
                                   f"--config.train.num_steps={num_steps}", f"--workdir={workdir}"],
                                  cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT))
  return procs


def wait(procs, workdir, timeout=300):
  try:
    codes = [p.wait(timeout=timeout) for p in procs]
  finally:
    for p in procs:
      if p.poll() is None:
        p.kill()
  logs = "\n".join(open(f"{workdir}.p{i}.log").read()[-2000:] for i in range(len(procs)))
  assert codes == [0] * len(procs), logs


def run(workdir, num_steps, processes=1, devices=1, extra=()):
  wait(start(workdir, num_steps, processes, devices, extra), workdir)


def metrics_of(workdir):
  """metrics.jsonl without the wall-clock speed."""
  return [{k: v for k, v in m.items() if k != "train/steps_per_sec"} for m in read_metrics(workdir / "metrics.jsonl")]


def assert_same_metrics(got, expected):
  assert [sorted(m) for m in got] == [sorted(m) for m in expected]  # the same lines, the same names
  for g, e in zip(got, expected):
    assert g["step"] == e["step"]
    np.testing.assert_allclose([g[k] for k in sorted(g)], [e[k] for k in sorted(e)], **TOLERANCE)


def params_of(workdir, step=None):
  return jax.tree.leaves(jax.device_get(gen_jax.load_run(str(workdir), step=step, use_ema=False).all_params))


def assert_same_params(got, expected):
  assert len(got) == len(expected)
  for g, e in zip(got, expected):
    np.testing.assert_allclose(g, e, **TOLERANCE)


@pytest.mark.parametrize("mode, address, num, index, message", [
    ("none", None, 2, None, "missing --coordinator_address, --process_id"),
    ("none", "127.0.0.1:1234", 2, 2, r"--process_id must be in \[0, 2\)"),
    ("none", "127.0.0.1", 2, 0, "HOST:PORT"),
    ("auto", None, 2, None, "drop --num_processes"),
    ("mpi", None, None, None, "must be one of none, auto"),
])
def test_bad_distributed_flags_fail_early_naming_what_was_expected(mode, address, num, index, message):
  with pytest.raises(ValueError, match=message):
    distributed.check_arguments(mode, address, num, index)
  assert not distributed.check_arguments("none", None, None, None)  # one process: nothing to start


@pytest.mark.slow
@pytest.mark.parametrize("flags, message", [
    (["--num_processes=2"], "missing --coordinator_address, --process_id"),
    (["--distributed=auto"], "--distributed=auto found no cluster that JAX detects"),  # none here
])
def test_experiments_main_refuses_a_multi_process_command_line_it_cannot_start(flags, message, tmp_path):
  env = {k: v for k, v in os.environ.items() if not k.startswith(("SLURM_", "OMPI_", "JAX_COORDINATOR"))}
  result = subprocess.run([sys.executable, "-m", "experiments.main", *QUICKSTART, *flags, f"--workdir={tmp_path}"],
                          cwd=REPO, capture_output=True, text=True, timeout=120, env=env)
  assert result.returncode != 0
  assert message in result.stderr
  assert not os.listdir(tmp_path)  # refused before anything was written


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
  """The reference (1 process, 1 device, 8 steps) and the same run on 2 processes for 4 steps, side by side."""
  root = tmp_path_factory.mktemp("multiprocess")
  reference, two = root / "reference", root / "two"
  procs = start(reference, 8) + start(two, 4, processes=2)
  wait(procs[:1], reference)
  wait(procs[1:], two)
  return reference, two


@pytest.mark.slow
def test_two_processes_train_like_one_with_the_same_global_batch(runs):
  reference, two = runs
  got, expected = metrics_of(two), [m for m in metrics_of(reference) if m["step"] <= 4]
  assert len(got) == 6 and [m["step"] for m in got] == [1, 2, 2, 3, 4, 4]  # train lines, eval at 2 and 4
  assert_same_metrics(got, expected)
  assert_same_params(params_of(two), params_of(reference, step=4))
  assert (two / "samples" / "step_4.png").exists()  # written by process 0
  assert len(list(two.glob("events.out.tfevents.*"))) == 1  # one TensorBoard writer: process 0's


@pytest.mark.slow
def test_a_two_process_checkpoint_resumes_on_one_process_and_on_two_with_two_devices_each(runs, tmp_path):
  reference, two = runs
  one, four = tmp_path / "one", tmp_path / "two_by_two"
  shutil.copytree(two, one)
  shutil.copytree(two, four)
  procs = start(one, 8, devices=2) + start(four, 8, processes=2, devices=2)
  wait(procs[:1], one)
  wait(procs[1:], four)
  expected_params, expected_metrics = params_of(reference), metrics_of(reference)
  for resumed in (one, four):
    assert "resuming from the checkpoint at step 4" in open(f"{resumed}.p0.log").read()
    assert_same_metrics(metrics_of(resumed), expected_metrics)
    assert_same_params(params_of(resumed), expected_params)


@pytest.mark.slow
def test_sigterm_to_one_of_two_processes_saves_one_checkpoint_that_resumes_to_the_uninterrupted_result(runs, tmp_path):
  reference, two = runs
  workdir = tmp_path / "preempted"
  shutil.copytree(two, workdir)  # at step 4; the SIGTERM comes while step 5 compiles
  procs = start(workdir, 8, processes=2)
  deadline = time.monotonic() + 120
  while "resuming from the checkpoint at step 4" not in open(f"{workdir}.p0.log").read():
    assert time.monotonic() < deadline and procs[0].poll() is None, open(f"{workdir}.p0.log").read()[-2000:]
    time.sleep(0.2)
  time.sleep(1.0)  # past the barrier that follows that line, into the loop (its SIGTERM handler)
  procs[1].send_signal(signal.SIGTERM)  # process 1 only: process 0 learns of it at the next step boundary
  wait(procs, workdir)  # both exit cleanly
  saved = sorted(int(p.name) for p in (workdir / "checkpoints").iterdir() if p.name.isdigit())
  assert 4 < saved[-1] < 8, saved  # stopped early, with a checkpoint where it stopped
  assert f"SIGTERM: saved a checkpoint at step {saved[-1]}" in open(f"{workdir}.p0.log").read()
  run(workdir, 8)  # resumed on 1 process
  assert_same_metrics(metrics_of(workdir), metrics_of(reference))
  assert_same_params(params_of(workdir), params_of(reference))


TOY_WITH_FID = """
import sys
sys.path.insert(0, {repo!r})
from gen_jax.drivers import distributed
num, index, port = {num}, {index}, {port}
if num > 1:
  distributed.initialize(coordinator_address=f"127.0.0.1:{{port}}", num_processes=num, process_id=index)
from gen_jax.drivers import loop
from tests.test_train_loop import tiny_toy_config
config = tiny_toy_config(num_steps=10, k=5)
config.eval.sample_metrics, config.eval.feature_network = ("fid",), "identity"
config.eval.sample_metrics_every, config.eval.sample_metrics_num_samples = 5, 400
loop.train_and_evaluate(config, {workdir!r})
"""


@pytest.mark.slow
def test_test_bits_per_dim_and_sample_fid_of_two_processes_equal_one_process(tmp_path):
  """The toy RealNVP with FID (identity features) during training: 2 processes log what 1 process logs."""
  port, procs = _free_port(), []
  for workdir, num in ((tmp_path / "one", 1), (tmp_path / "two", 2)):
    for i in range(num):
      log = open(f"{workdir}.p{i}.log", "w")
      script = TOY_WITH_FID.format(repo=REPO, num=num, index=i, port=port, workdir=str(workdir))
      procs.append((workdir, subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=log,
                                              stderr=subprocess.STDOUT)))
  wait([p for w, p in procs if w.name == "one"], tmp_path / "one")
  wait([p for w, p in procs if w.name == "two"], tmp_path / "two")
  one, two = metrics_of(tmp_path / "one"), metrics_of(tmp_path / "two")
  fid = [m["sample/fid"] for m in two if "sample/fid" in m]
  assert len(fid) == 2 and all(np.isfinite(fid)), two
  assert sum("eval/nll" in m for m in two) == 2
  # sample/seconds is a wall-clock time like steps_per_sec
  drop = lambda ms: [{k: v for k, v in m.items() if k != "sample/seconds"} for m in ms]
  assert_same_metrics(drop(two), drop(one))


@pytest.mark.slow
def test_two_processes_verify_checksums_set_a_damaged_step_aside_once_and_resume_from_the_intact_one(runs, tmp_path):
  from tests.test_checkpoint_faults import _flip, _largest_data_file
  reference, two = runs
  workdir = tmp_path / "damaged"
  shutil.copytree(two, workdir)
  _flip(_largest_data_file(workdir / "checkpoints" / "4"))  # bytes Orbax restores silently; the checksums do not
  run(workdir, 8, processes=2)
  log = open(f"{workdir}.p0.log").read()
  damaged = [line for line in log.splitlines() if "moved to" in line]
  assert len(damaged) == 1 and "checkpoints/4" in damaged[0], log  # named in one line
  assert "resuming from the checkpoint at step 2" in log, log
  assert os.listdir(workdir / "checkpoints_damaged") == ["4"]  # moved once, by process 0
  assert "moved to" not in open(f"{workdir}.p1.log").read()
  assert_same_metrics(metrics_of(workdir), metrics_of(reference))
  assert_same_params(params_of(workdir), params_of(reference))


SHARED_EVALUATION = """
import sys
sys.path.insert(0, {repo!r})
from gen_jax.drivers import distributed
num, index, port = {num}, {index}, {port}
if num > 1:
  distributed.initialize(coordinator_address=f"127.0.0.1:{{port}}", num_processes=num, process_id=index)
import jax, jax.numpy as jnp, ml_collections, numpy as np
from gen_jax.data import load_dataset
from gen_jax.eval import across_processes, features, likelihood, training_metrics
images = load_dataset("digits", "test").data  # 297 real images, uint8 [297, 8, 8, 1]
projection = np.random.default_rng(0).normal(size=(64, 12)).astype(np.float32)
network = features.FeatureNetwork("projection", lambda x: {{
    "features": jnp.reshape(x, (x.shape[0], -1)).astype(jnp.float32) @ projection,
    "logits": jnp.reshape(x, (x.shape[0], -1))[:, :10].astype(jnp.float32)}}, ("features", "logits"))
drawn = []
def sample_fn(params, key, n):  # a fake model: images of the test split, picked by the key
  drawn.append(int(jax.random.randint(key, (), 0, 10**6)))
  return images[jax.random.randint(key, (n,), 0, len(images))]
config = ml_collections.ConfigDict(dict(sample_metrics=("fid", "kid", "prdc", "is"), num_samples=32,
                                        sample_metrics_num_samples=150, feature_batch_size=20))
score = training_metrics.make_sample_metrics(config, network, lambda x: x, images, sample_fn)
scores = score(None, jax.random.key(7))
stats = features.feature_statistics(network, images, batch_size=40, across_processes=True)
few = features.feature_statistics(network, images[:30], batch_size=40, across_processes=True)  # 1 batch, 2 processes
extracted = features.extract_features(network, images, batch_size=40, across_processes=True)
chunks = across_processes.map_chunks(lambda c: {{"c": np.int64(c) * 2**40, "x": np.full(3, c / 7)}}, 5)
def log_likelihood(batch, rng):  # a factorized categorical over 17 levels, with noise keyed by the batch
  x = jnp.reshape(batch, (batch.shape[0], -1)).astype(jnp.float32)
  return jnp.sum(-jnp.log(17.0) - 0.01 * x, axis=1) + jax.random.normal(rng, (batch.shape[0],))
report = likelihood.evaluate_likelihood(log_likelihood, images, rng=jax.random.key(3), batch_size=64, num_dims=64,
                                        across_processes=True)
np.savez({out!r}, mu=stats.mu, sigma=stats.sigma, num=stats.num, few_mu=few.mu, few_sigma=few.sigma,
         features=extracted["features"], logits=extracted["logits"], drawn=drawn,
         scores=[scores[k] for k in sorted(scores) if k != "sample/seconds"],
         chunks_c=[c["c"] for c in chunks], chunks_x=np.stack([c["x"] for c in chunks]),
         mine=list(across_processes.own_chunks(5)),
         likelihood=[report.nll_nats, report.nll_stderr, report.bits_per_dim, report.num_examples])
"""


@pytest.mark.slow
def test_feature_statistics_features_sample_metrics_and_bits_per_dim_of_two_processes_equal_one_process(tmp_path):
  """`gen_jax.eval` shared out over 2 processes: each computes only its chunks (c mod 2), and the gathered
  statistics, features, sample metrics and test bits/dim equal one process's (digits' test split, a fixed
  feature network and log-likelihood)."""
  port, procs = _free_port(), []
  for name, num in (("one", 1), ("two", 2)):
    for i in range(num):
      script = SHARED_EVALUATION.format(repo=REPO, num=num, index=i, port=port, out=str(tmp_path / f"{name}{i}.npz"))
      log = open(tmp_path / f"{name}.p{i}.log", "w")
      procs.append((name, subprocess.Popen([sys.executable, "-c", script], cwd=REPO, stdout=log,
                                           stderr=subprocess.STDOUT)))
  # ~25 s; a process that fails leaves the other waiting in a gather: stop it sooner than the default
  wait([p for n, p in procs if n == "one"], tmp_path / "one", timeout=150)
  wait([p for n, p in procs if n == "two"], tmp_path / "two", timeout=150)
  one, two = (np.load(tmp_path / f"{name}.npz") for name in ("one0", "two0"))
  other = np.load(tmp_path / "two1.npz")
  for got in (two, other):  # every process holds the whole result
    for key in ("mu", "sigma", "num", "few_mu", "few_sigma", "features", "logits", "scores", "chunks_c", "chunks_x",
                "likelihood"):
      np.testing.assert_allclose(got[key], one[key], rtol=1e-12, atol=1e-14, err_msg=key)
  assert one["num"] == 297 and one["likelihood"][3] == 297 and np.all(one["chunks_c"] == np.arange(5) * 2**40)  # 8-byte values arrive whole
  assert list(two["mine"]) == [0, 2, 4] and list(other["mine"]) == [1, 3]
  # 150 samples in chunks of 32: 5 chunks, drawn 3 by process 0 and 2 by process 1, each once
  assert len(one["drawn"]) == 5 and len(two["drawn"]) == 3 and len(other["drawn"]) == 2
  assert sorted([*two["drawn"], *other["drawn"]]) == sorted(one["drawn"])
