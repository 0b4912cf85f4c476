"""The GAN family on the training skeleton: the two-player step against a step written out by hand,
n_critic, health warnings, 4 fake devices == 1 device, and a tiny image run end to end."""
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import gen_jax
from experiments.configs import gan_digits, gan_mnist, gan_toy2d
from gen_jax.data.spec import DataSpec
from gen_jax.models.gan import losses
from gen_jax.models.gan.task import gan_model, gan_task
from gen_jax.drivers import loop
from tests.conftest import REPO
from tests.conftest import run_python
from gen_jax.data import load_dataset
from tests.run_contract import check_run_contract

def read_metrics(path):
  with open(path) as f:
    return [json.loads(line) for line in f]


SPEC = DataSpec(name="toy2d/eight_gaussians", event_shape=(2,), num_levels=None, kind="vector")


def tiny_toy_config(variant="ns", num_steps=6):
  config = gan_toy2d.get_config(f"eight_gaussians,cpu,{variant}")
  config.model.hidden_sizes = (16, 16)
  config.train.update(num_steps=num_steps, steps_per_call=1, batch_size=32, log_every=1, eval_every=num_steps,
                      sample_every=num_steps, save_every=num_steps)
  config.eval.num_samples = 64
  return config


def test_configs_build_for_every_objective():
  for variant in ("ns", "minimax", "wgan_gp", "hinge_sn"):
    for config in (gan_toy2d.get_config(f"grid25,cpu,{variant}"), gan_digits.get_config(f"cpu,{variant}"),
                   gan_mnist.get_config(variant)):
      assert config.gan_variant == variant
  assert gan_digits.get_config("cpu,wgan_gp").gan.n_critic == 5
  assert gan_digits.get_config("cpu,hinge_sn").model.spectral_norm
  with pytest.raises(ValueError, match="one GAN objective"):
    gan_digits.get_config("cpu,ns,hinge_sn")


@pytest.mark.parametrize("loss,penalty", [("non_saturating", 0.0), ("wasserstein", 10.0)])
def test_update_equals_the_steps_written_out(loss, penalty):
  model = gan_model((2,), architecture="mlp", latent_dim=3, hidden_sizes=(8,))
  g_opt, d_opt = optax.adam(1e-2, b1=0.5), optax.adam(2e-2, b1=0.0, b2=0.9)
  task = gan_task(model, SPEC, loss=loss, gradient_penalty=penalty, generator_optimizer=g_opt,
                  discriminator_optimizer=d_opt)
  x = jax.random.normal(jax.random.key(0), (16, 2))
  params, state = task.init(jax.random.key(1), x)
  assert state == {}  # an MLP GAN carries nothing
  opt_state = task.optimizer.init(params)
  rng = jax.random.key(2)
  new_params, _, new_opt, value, metrics = task.update(params, state, opt_state, x, rng, jnp.int32(0))

  # By hand: the same draws, D's gradient with G fixed, one Adam step, then G's through the new D.
  d_loss, g_loss = losses.get_losses(loss)
  p = params["model"]["params"]
  z_rng, penalty_rng = jax.random.split(rng)
  z = jax.random.normal(z_rng, (16, 3))
  gen = lambda gp: model.apply({"params": {**p, "generator": gp}}, z, False, method=model.decode)
  disc = lambda dp, inputs: model.apply({"params": {**p, "discriminator": dp}}, inputs, False,
                                        method=model.discriminate)
  fake = gen(p["generator"])

  def d_objective(dp):
    value = d_loss(disc(dp, x), disc(dp, fake))
    if penalty:
      value += penalty * losses.gradient_penalty(lambda v: disc(dp, v), x, fake, penalty_rng)
    return value

  d_value, d_grads = jax.value_and_grad(d_objective)(p["discriminator"])
  updates, _ = d_opt.update(d_grads, d_opt.init(p["discriminator"]), p["discriminator"])
  d_new = optax.apply_updates(p["discriminator"], updates)
  g_value, g_grads = jax.value_and_grad(lambda gp: g_loss(disc(d_new, gen(gp))))(p["generator"])
  updates, _ = g_opt.update(g_grads, g_opt.init(p["generator"]), p["generator"])
  g_new = optax.apply_updates(p["generator"], updates)

  np.testing.assert_allclose(metrics["d_loss"], d_value, rtol=1e-5)
  np.testing.assert_allclose(metrics["g_loss"], g_value, rtol=1e-5, atol=1e-6)
  np.testing.assert_allclose(value, d_value + g_value, rtol=1e-5, atol=1e-6)
  got = new_params["model"]["params"]
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got["discriminator"], d_new)
  jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-6), got["generator"], g_new)
  assert int(new_opt["generator"][0].count) == 1 and int(new_opt["discriminator"][0].count) == 1


def test_the_generator_steps_once_per_n_critic_discriminator_steps():
  model = gan_model((2,), architecture="mlp", latent_dim=3, hidden_sizes=(8,))
  task = gan_task(model, SPEC, loss="wasserstein", n_critic=3, gradient_penalty=10.0)
  x = jax.random.normal(jax.random.key(0), (16, 2))
  params, state = task.init(jax.random.key(1), x)
  opt_state = task.optimizer.init(params)
  update = jax.jit(task.update)
  generator_moved, grad_norms = [], []
  for step in range(6):
    before = params["model"]["params"]["generator"]
    params, state, opt_state, _, metrics = update(params, state, opt_state, x, jax.random.key(10 + step),
                                                  jnp.int32(step))
    moved = jax.tree.leaves(jax.tree.map(lambda a, b: bool(jnp.any(a != b)), before,
                                         params["model"]["params"]["generator"]))
    generator_moved.append(any(moved))
    grad_norms.append(float(metrics["g_grad_norm"]))
    assert np.isfinite(metrics["g_loss"])
  assert generator_moved == [False, False, True, False, False, True]
  # The generator's backward pass runs on its update steps only; its norm is logged there x n_critic.
  assert [g > 0 for g in grad_norms] == generator_moved
  assert int(opt_state["generator"][0].count) == 2 and int(opt_state["discriminator"][0].count) == 6


def test_health_check_names_a_discriminator_that_wins():
  model = gan_model((2,), architecture="mlp", latent_dim=3, hidden_sizes=(8,))
  check = gan_task(model, SPEC).check_health
  assert "discriminator wins completely" in check({"d_acc_real": 1.0, "d_acc_fake": 1.0, "d_fake_prob": 1e-4})
  assert check({"d_acc_real": 0.8, "d_acc_fake": 0.7, "d_fake_prob": 0.3}) is None
  assert gan_task(model, SPEC, loss="wasserstein").check_health(
      {"d_acc_real": 1.0, "d_acc_fake": 1.0, "d_fake_prob": 1e-4}) is None


def test_four_fake_devices_equal_one_device(tmp_path):
  script = f"""
import sys, json, jax, numpy as np
sys.path.insert(0, {REPO!r})
from tests.test_gan_task import tiny_toy_config
from gen_jax.drivers import loop
assert jax.device_count() == 4, jax.devices()
out = {{}}
for n in (1, 4):
  state = loop.train_and_evaluate(tiny_toy_config("wgan_gp"), {str(tmp_path)!r} + f"/run{{n}}", devices=jax.devices()[:n])
  out[n] = [float(np.sum(np.abs(x))) for x in jax.tree.leaves(state.params)]
print(json.dumps(out))
"""
  result = run_python(["-c", script], {"XLA_FLAGS": "--xla_force_host_platform_device_count=4"})
  assert result.returncode == 0, result.stderr[-3000:]
  for name in ("train/d_loss", "train/g_loss"):
    values = {n: [m[name] for m in read_metrics(tmp_path / f"run{n}" / "metrics.jsonl") if name in m] for n in (1, 4)}
    assert len(values[1]) == 6
    np.testing.assert_allclose(values[4], values[1], rtol=1e-5, atol=1e-5)
  # Sums of |params| per leaf: Adam turns float-rounding differences of near-zero gradients into
  # lr-sized steps, so leaves whose sums are ~1e-3 (zero-initialised biases) get an absolute tolerance.
  params = json.loads(result.stdout.strip().splitlines()[-1])
  np.testing.assert_allclose(params["4"], params["1"], rtol=1e-4, atol=5e-4)


def test_a_tiny_digits_run_writes_samples_and_latent_figures(tmp_path):
  config = gan_digits.get_config("cpu,hinge_sn")
  config.model.update(channels=8, latent_dim=8)
  config.train.update(num_steps=3, batch_size=16, log_every=1, eval_every=3, sample_every=3, save_every=3)
  loop.train_and_evaluate(config, str(tmp_path))
  for name in ("step_3.png", "interpolations_step_3.png", "traversals_step_3.png"):
    assert os.path.exists(tmp_path / "samples" / name), name
  metrics = [m for m in read_metrics(tmp_path / "metrics.jsonl") if "train/d_acc_real" in m]
  assert len(metrics) == 3 and all(np.isfinite(m["train/g_grad_norm"]) for m in metrics)
  run = gen_jax.load_run(str(tmp_path))
  samples = run.task.sample(run.all_params, jax.random.key(0), 5)
  assert samples.shape == (5, 8, 8, 1) and samples.dtype == jnp.uint8 and int(samples.max()) <= 16
  check_run_contract(run, load_dataset("digits", "test").data[:8])


def test_report_row_and_scatter_of_a_toy_run_measure_the_same_samples(tmp_path, capsys):
  from experiments import report  # pylint: disable=import-outside-toplevel
  from gen_jax.models.gan import toy2d_mode_coverage  # pylint: disable=import-outside-toplevel
  workdir, figure = str(tmp_path / "run"), str(tmp_path / "modes.png")
  loop.train_and_evaluate(tiny_toy_config(), workdir)
  report.main(["report", "--scatter", figure, workdir])
  cells = [c.strip() for c in capsys.readouterr().out.strip().split("|")[1:-1]]
  run = gen_jax.load_run(workdir)
  coverage = toy2d_mode_coverage("eight_gaussians", run.task.sample(run.all_params, jax.random.key(0),
                                                                     report.NUM_MODE_SAMPLES))
  assert cells[:3] == ["toy2d/eight_gaussians", "gan (ns)", "6"]
  assert cells[3] == f"{int(coverage['modes_captured'])} / 8"
  assert float(cells[4]) == pytest.approx(float(coverage["high_quality_fraction"]), abs=5e-4)
  assert os.path.getsize(figure) > 0
  with pytest.raises(SystemExit, match="PNG path"):
    report.main(["report", "--scatter"])


def test_configs_give_every_objective_the_same_generator_updates():
  for get_config, arg, generator_steps in ((gan_toy2d.get_config, "grid25,cpu,", 10_000),
                                           (gan_digits.get_config, "cpu,", 3000)):
    ns, wgan = get_config(arg + "ns"), get_config(arg + "wgan_gp")
    assert ns.gan.n_critic == 1 and ns.train.num_steps == generator_steps
    assert wgan.gan.n_critic == 5 and wgan.train.num_steps == 5 * generator_steps
    assert wgan.train.save_every == 5 * ns.train.save_every
  assert gan_toy2d.get_config("grid25,cpu,wgan_gp").gan.gradient_penalty == 0.1
  assert gan_digits.get_config("cpu,wgan_gp").gan.gradient_penalty == 10.0
  assert [gan_digits.get_config("cpu," + v).model.discriminator_norm for v in ("ns", "wgan_gp", "hinge_sn")] == [
      "batch", "layer", "none"]
