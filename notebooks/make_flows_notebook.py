"""Writes notebooks/flows.ipynb from the cells below and executes it in place (stored with clean outputs).

  python notebooks/make_flows_notebook.py
"""
import os

from notebook_tools import REPO, execute_and_write

PATH = os.path.join(REPO, "notebooks", "flows.ipynb")

cells = [
    ("md", """# Normalizing flows in gen_jax

1. Fit a Neural Spline Flow to 2-D data and plot its exact density beside the data.
2. Train a small Glow on the 8x8 digits through the training loop, load the run with `gen_jax.load_run`,
   sample from it and look at the latent of a real image."""),
    ("code", """import tempfile

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

import gen_jax
from gen_jax.data import load_dataset, toy2d
from gen_jax.models.flows import NeuralSplineFlow"""),
    ("md", "## 1. A flow on two moons\nExact `log_prob`, trained by maximum likelihood with a compiled `lax.scan` of Adam steps."),
    ("code", """key = jax.random.key(0)
data = toy2d.sample("two_moons", key, 20_000)
model = NeuralSplineFlow(event_shape=(2,), num_layers=4, num_bins=8, bound=4.0, hidden=64)
params = model.init(key, data[:256], method=model.log_prob)
optimizer = optax.adam(2e-3)

def loss_fn(params, batch):
  return -jnp.mean(model.apply(params, batch, method=model.log_prob))

@jax.jit
def train(params, opt_state, key):
  def step(carry, key):
    params, opt_state = carry
    batch = data[jax.random.randint(key, (256,), 0, data.shape[0])]
    loss, grads = jax.value_and_grad(loss_fn)(params, batch)
    updates, opt_state = optimizer.update(grads, opt_state)
    return (optax.apply_updates(params, updates), opt_state), loss
  (params, opt_state), losses = jax.lax.scan(step, (params, opt_state), jax.random.split(key, 1500))
  return params, opt_state, losses

params, _, losses = train(params, optimizer.init(params), jax.random.key(1))
test = toy2d.sample("two_moons", jax.random.key(2), 5000)
print(f"test NLL {-model.apply(params, test, method=model.log_prob).mean():.3f} nats; "
      f"true density's NLL on the same samples {toy2d.true_nll('two_moons', test):.3f} nats")"""),
    ("code", """lim, n = 4.0, 240
xs = np.linspace(-lim, lim, n)
grid = np.stack(np.meshgrid(xs, xs), -1).reshape(-1, 2).astype(np.float32)   # jax computes in float32
density = np.exp(model.apply(params, grid, method=model.log_prob)).reshape(n, n)
cell = (xs[1] - xs[0]) ** 2
print(f"density integrates to {density.sum() * cell:.4f} on [-{lim}, {lim}]^2")
fig, axes = plt.subplots(1, 3, figsize=(12, 4))
axes[0].scatter(*np.asarray(test).T, s=1, alpha=0.3); axes[0].set_title("data")
axes[1].imshow(density, origin="lower", extent=(-lim, lim, -lim, lim)); axes[1].set_title("flow density")
samples = model.apply(params, jax.random.key(3), 5000, method=model.sample)
axes[2].scatter(*np.asarray(samples).T, s=1, alpha=0.3); axes[2].set_title("flow samples")
for ax in axes: ax.set_xlim(-lim, lim); ax.set_ylim(-lim, lim); ax.set_aspect("equal")"""),
    ("md", "## 2. A Glow run on the digits, loaded with `load_run`\nA real run writes metrics, samples and checkpoints into its workdir; here a short one (use `experiments/configs/glow_digits.py` for the full run)."),
    ("code", """from experiments.configs import quickstart
from gen_jax.drivers.loop import train_and_evaluate

workdir = tempfile.mkdtemp()
config = quickstart.get_config()
config.train.num_steps = 200
config.train.eval_every = config.train.sample_every = config.train.save_every = 200
train_and_evaluate(config, workdir)
run = gen_jax.load_run(workdir)
print(run.model.__class__.__name__, "step", run.step)"""),
    ("code", """samples = run.task.sample(run.all_params, jax.random.key(0), 16)   # uint8 levels 0..16
digits = load_dataset("digits", "test")
x = (digits.data[:4].astype(np.float32) + 0.5) / digits.spec.num_levels  # bin centres in [0, 1]
log_p = run.model.apply(run.params, x, method=run.model.log_prob)
z = run.model.apply(run.params, x, method=run.model.encode)
x_back = run.model.apply(run.params, z, method=run.model.decode)
print("log p(x) in nats:", np.round(np.asarray(log_p), 1), "| max |decode(encode(x)) - x| =",
      float(jnp.abs(x_back - x).max()))
fig, axes = plt.subplots(3, 4, figsize=(8, 6))
for i in range(4):
  axes[0, i].imshow(np.asarray(samples[i, ..., 0]), cmap="gray"); axes[0, i].set_title("sample")
  axes[1, i].imshow(x[i, ..., 0], cmap="gray"); axes[1, i].set_title("real")
  axes[2, i].imshow(np.asarray(z[i, ..., 0]), cmap="RdBu"); axes[2, i].set_title("latent z")
for ax in axes.flat: ax.axis("off")"""),
]

if __name__ == "__main__":
  execute_and_write(cells, PATH)
