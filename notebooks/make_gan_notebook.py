"""Writes notebooks/gan.ipynb from the cells below and executes it in place (stored with outputs).

  python notebooks/make_gan_notebook.py

Runs in about a minute on 2 busy CPU cores (five MLP GANs of 10,000 steps each on the 25-Gaussian
grid, each in one compiled `lax.scan` of the two-player step `gan_task(...).update`). The closing
summary quotes numbers the cells print; after executing, this script checks that each of them
appears in the outputs (`notebook_tools`).
"""
import os

from notebook_tools import REPO, execute_and_write

PATH = os.path.join(REPO, "notebooks", "gan.ipynb")

cells = [
    ("md", r"""# Generative adversarial networks in gen_jax: watching mode collapse

A GAN (Goodfellow et al. 2014) trains a generator G(z), z ~ N(0, I), against a discriminator
D(x) = sigmoid(l(x)) in the minimax game min_G max_D E_x log D(x) + E_z log(1 - D(G(z))); in practice
G minimises the *non-saturating* loss -E_z log D(G(z)) instead, which has strong gradients where D
rejects the fakes. WGAN-GP (Gulrajani et al. 2017) replaces D by a critic l and the game by
min_G max_l E_x l(x) - E_z l(G(z)) - lambda E (||grad l(x_hat)||_2 - 1)^2 (x_hat on lines between real
and fake points, lambda = 10, n_critic = 5 critic steps per generator step); the hinge loss
E relu(1 - l(x)) + E relu(1 + l(G(z))) for D and -E l(G(z)) for G is usually paired with spectral
normalisation of D's layers (Miyato et al. 2018).

The code, in `gen_jax/models/gan/`: `networks` (MLP, DCGAN and ResNet generators and discriminators),
`losses` (the four losses on logits, the WGAN-GP and R1 penalties), `spectral_norm`, `mode_coverage`
(modes captured, high-quality fraction and KL to uniform on Gaussian mixtures), `gan.GAN` (the Flax module:
`decode`, `discriminate`, `sample`) and `task` (`gan_model`, and `gan_task`, whose
`update(params, opt_state, batch, rng, step)` is the two-player step: one D step, then, on every
n_critic-th step, one G step through the updated D, each player with its own Adam).

*Mode collapse*: G covers only some of the data's modes. Against a fixed D the best G puts all its mass
where D scores highest; unless D answers quickly by lowering its score there, G chases D's favourite point
around instead of spreading out. This notebook trains five GANs with one generator and discriminator
architecture and one learning rate on a 5x5 grid of narrow Gaussians, and watches their samples every 500
steps."""),
    ("code", """import time

import jax
import jax.numpy as jnp
import matplotlib.pyplot as plt
import numpy as np
import optax

from gen_jax.data import load_dataset
from gen_jax.models.gan import critic_input_gradient_norms, toy2d_mode_coverage
from gen_jax.models.gan.task import gan_model, gan_task
from gen_jax.train.task import merge_variables"""),
    ("md", """## 1. The data and the coverage measures
`toy2d/grid25`: 25 Gaussians of standard deviation 0.05 on {-4, -2, 0, 2, 4}^2, equal weights (the grid
of VEEGAN and PacGAN). `toy2d_mode_coverage("grid25", samples)` assigns every sample to its nearest mode;
a sample within 3 standard deviations (0.15) of it is *high quality*; a mode is *captured* if at least one
high-quality sample lands on it; and KL(p || uniform) of the high-quality samples' histogram over the modes
is 0 for an even spread and log 25 = 3.22 nats when they all sit on one mode. As in both papers, the measures
are taken on 2500 samples. On 2500 held-out points of the mixture itself:"""),
    ("code", """dataset = load_dataset("toy2d/grid25", "train")
train_data = jnp.asarray(dataset.data)  # [50000, 2]
test_data = np.asarray(load_dataset("toy2d/grid25", "test").data[:2500])

def coverage(samples):
  out = toy2d_mode_coverage("grid25", samples)
  return int(out["modes_captured"]), float(out["high_quality_fraction"]), float(out["kl_to_uniform"])

modes, hq, kl = coverage(test_data)
print(f"real data: {modes} of 25 modes captured, high-quality fraction {hq:.3f} "
      f"(expected 1 - exp(-9/2) = {1 - np.exp(-4.5):.3f}), KL to uniform {kl:.3f} nats")"""),
    ("md", """## 2. Five GANs, one architecture, one learning rate
Generator: z in R^2 -> three ReLU layers of 128 -> R^2 (linear). Discriminator: three LeakyReLU(0.2)
layers of 128 -> one logit, spectrally normalised where the table says so. Both players use Adam with
learning rate 1e-3, batches of 64, 10,000 steps (discriminator steps; WGAN-GP updates G on every fifth):

| run | loss | D | Adam (b1, b2) |
|---|---|---|---|
| NS | non-saturating | plain | (0.5, 0.999), DCGAN's |
| hinge+SN | hinge | spectral norm | (0.5, 0.999) |
| hinge | hinge | plain | (0.5, 0.999) |
| hinge+SN, b1=0 | hinge | spectral norm | (0, 0.9), SNGAN's |
| WGAN-GP | Wasserstein, lambda = 10, n_critic = 5 | plain | (0.5, 0.999) |

The second run differs from the first in the loss and D's normalisation, the third and fourth from the
second in one of them each.

`train` compiles one function per run: an outer `lax.scan` over the 20 stretches of 500 steps, an inner
`lax.scan` over the steps of `task.update`, and after each stretch G's samples at one fixed set of 2500
latents (so successive snapshots differ only through G). Each step's randomness is
`jax.random.fold_in(key, step)`."""),
    ("code", """NUM_STEPS, EVAL_EVERY, BATCH, NUM_SAMPLES = 10_000, 500, 64, 2500
eval_key = jax.random.key(100)  # the same latents at every snapshot

def train(loss, spectral_norm=False, b1=0.5, b2=0.999, n_critic=1, gradient_penalty=0.0, lr=1e-3, seed=0):
  model = gan_model((2,), architecture="mlp", latent_dim=2, hidden_sizes=(128, 128, 128),
                    spectral_norm=spectral_norm)
  task = gan_task(model, dataset.spec, loss=loss, n_critic=n_critic, gradient_penalty=gradient_penalty,
                  generator_optimizer=optax.adam(lr, b1=b1, b2=b2),
                  discriminator_optimizer=optax.adam(lr, b1=b1, b2=b2))
  init_key, key = jax.random.split(jax.random.key(seed))
  params, state = task.init(init_key, train_data[:BATCH])  # state: spectral norm's estimates, if any

  @jax.jit
  def fit(params, state):
    def step(carry, step):
      params, state, opt_state = carry
      batch_key, update_key = jax.random.split(jax.random.fold_in(key, step))
      batch = train_data[jax.random.randint(batch_key, (BATCH,), 0, train_data.shape[0])]
      params, state, opt_state, _, _ = task.update(params, state, opt_state, batch, update_key, step)
      return (params, state, opt_state), None

    def stretch(carry, first_step):
      carry, _ = jax.lax.scan(step, carry, first_step + jnp.arange(EVAL_EVERY))
      return carry, task.sample(merge_variables(carry[0], carry[1]), eval_key, NUM_SAMPLES)

    starts = jnp.arange(0, NUM_STEPS, EVAL_EVERY)
    (params, state, _), snapshots = jax.lax.scan(stretch, (params, state, task.optimizer.init(params)), starts)
    return merge_variables(params, state), snapshots

  start = time.perf_counter()
  params, snapshots = jax.block_until_ready(fit(params, state))
  return model, params, np.asarray(snapshots), time.perf_counter() - start

runs = {
    "NS": dict(loss="non_saturating"),
    "hinge+SN": dict(loss="hinge", spectral_norm=True),
    "hinge": dict(loss="hinge"),
    "hinge+SN, b1=0": dict(loss="hinge", spectral_norm=True, b1=0.0, b2=0.9),
    "WGAN-GP": dict(loss="wasserstein", n_critic=5, gradient_penalty=10.0),
}
trained, snapshots, results = {}, {}, {}
for name, options in runs.items():
  model, params, snapshots[name], seconds = train(**options)
  trained[name] = (model, params)
  results[name] = [coverage(s) for s in snapshots[name]]
  print(f"{name:<15} {sum(p.size for p in jax.tree.leaves(params)):,} parameters, {NUM_STEPS} steps in "
        f"{seconds:.1f} s (with compilation)")
steps = EVAL_EVERY * np.arange(1, NUM_STEPS // EVAL_EVERY + 1)"""),
    ("md", """## 3. Coverage during training
Modes captured / high-quality fraction / KL to uniform (nats) of the 2500 snapshot samples, every 1000
steps (KL is nan when no sample is high quality):"""),
    ("code", """print(f"{'step':>6}" + "".join(f"{name:>18}" for name in runs))
for i in range(1, len(steps), 2):
  print(f"{steps[i]:>6}" + "".join(f"{m:>6d} {hq:5.2f} {kl:5.2f}" for m, hq, kl in
                                    (results[name][i] for name in runs)))
late = {name: np.array(results[name][len(steps) // 2:], dtype=float) for name in runs}  # steps 5500-10000
print()
for name in runs:
  print(f"{name:<15} steps 5500-10000 (10 snapshots): modes captured {late[name][:, 0].mean():4.1f} on average "
        f"(min {late[name][:, 0].min():2.0f}, max {late[name][:, 0].max():2.0f}), high-quality fraction "
        f"{late[name][:, 1].mean():.3f}")
fig, axes = plt.subplots(1, 3, figsize=(15, 3.6))
for name in runs:
  for ax, column in zip(axes, np.array(results[name], dtype=float).T):
    ax.plot(steps, column, "o-", ms=3, label=name)
for ax, title in zip(axes, ("modes captured (of 25)", "high-quality fraction", "KL to uniform (nats)")):
  ax.set_title(title); ax.set_xlabel("step")
axes[0].axhline(25, color="gray", ls=":"); axes[2].axhline(np.log(25), color="gray", ls=":")
axes[0].legend(fontsize=8)
fig.tight_layout()"""),
    ("md", """## 4. Watching the collapse
The NS GAN (top) and the hinge+SN GAN (bottom) at six snapshots, over the data in grey. Every snapshot
decodes the same 2500 latents, so a cloud in a new place means that G moved all of them together."""),
    ("code", """shown = [1, 3, 7, 11, 15, 19]  # snapshots after 1000, 2000, 4000, 6000, 8000, 10000 steps
fig, axes = plt.subplots(2, len(shown), figsize=(2.6 * len(shown), 5.6))
for row, name in zip(axes, ("NS", "hinge+SN")):
  for ax, i in zip(row, shown):
    ax.scatter(*test_data.T, s=1, color="0.8")
    ax.scatter(*snapshots[name][i].T, s=1, alpha=0.3)
    ax.set_title(f"{name}, step {steps[i]}", fontsize=9)
    ax.set_xlim(-5.5, 5.5); ax.set_ylim(-5.5, 5.5); ax.set_aspect("equal"); ax.set_xticks([]); ax.set_yticks([])
fig.tight_layout()
for i in shown:
  s = snapshots["hinge+SN"][i]
  centre = s.mean(0)
  print(f"hinge+SN, step {steps[i]:>5}: samples centred at ({centre[0]:5.2f}, {centre[1]:5.2f}), spread (std) "
        f"{s.std(0).mean():.2f}; modes captured {results['hinge+SN'][i][0]}")
print(f"the data: centred at (0, 0), spread {test_data.std(0).mean():.2f}")"""),
    ("md", """## 5. The five generators after 10,000 steps
The 2500 samples of each run's last snapshot over the data (grey)."""),
    ("code", """fig, axes = plt.subplots(1, len(runs), figsize=(3.4 * len(runs), 3.9))
for ax, name in zip(axes, runs):
  m, hq, kl = results[name][-1]
  ax.scatter(*test_data.T, s=1, color="0.8")
  ax.scatter(*snapshots[name][-1].T, s=1, alpha=0.3)
  ax.set_title(f"{name}\\n{m} modes, high quality {hq:.2f}, KL {kl:.2f}", fontsize=9)
  ax.set_xlim(-5.5, 5.5); ax.set_ylim(-5.5, 5.5); ax.set_aspect("equal")
fig.tight_layout()
for name in runs:
  m, hq, kl = results[name][-1]
  print(f"{name:<15} step {NUM_STEPS}: modes captured {m:2d}, high-quality fraction {hq:.3f}, "
        f"KL {kl:.2f} nats")"""),
    ("md", """## 6. How steep are the discriminators?
To hold samples on modes of radius 0.15 set 2 apart, D's score must change quickly over short distances.
Spectral normalisation divides each kernel by its largest singular value, so with LeakyReLU (slope at most
1) the logit l(x) is 1-Lipschitz in x; the gradient penalty pulls ||grad_x l|| towards 1 between real and
fake points. A bound is not a value, though. Below, for each trained D (eval mode): the median of
||grad_x l(x)|| over the 2500 held-out points (`critic_input_gradient_norms`), and how far D's mean logit
on them lies above its mean logit on G's last 2500 samples."""),
    ("code", """for name in runs:
  model, params = trained[name]
  variables = params["model"]
  logits = lambda x: model.apply(variables, x, False, method=model.discriminate)
  norms = critic_input_gradient_norms(logits, jnp.asarray(test_data))
  gap = float(logits(jnp.asarray(test_data)).mean() - logits(jnp.asarray(snapshots[name][-1])).mean())
  print(f"{name:<15} median ||grad_x l|| on real data {float(jnp.median(norms)):8.3f}; "
        f"mean l(real) - mean l(fake) {gap:7.3f}")"""),
    ("md", """## Summary

- **The measures.** 2500 points of the mixture itself capture all 25 modes with a high-quality fraction of
  0.990 and a KL to uniform of 0.003 nats; a generator that puts every sample on one mode has KL 3.22.
- **Collapse, watched.** With one architecture, one learning rate and (but for one run) DCGAN's Adam betas,
  the GAN that collapses is the *hinge + spectral norm* one: from the first snapshots on, G's 2500 samples
  form a single cloud or curve (spread 0.86 to 2.06 at the six snapshots shown, the data's 2.81) that jumps
  across the grid from snapshot to snapshot, settling on no mode. Over the last 10 snapshots it captures 0.8 modes on average
  (never more than 2) with a high-quality fraction of 0.010; at step 10,000, 1 mode, KL 3.22.
- **Its absence.** The non-saturating GAN spreads over the grid and sharpens: 20.8 modes captured on average
  over the last 10 snapshots, high-quality fraction 0.671; 20 modes, 0.631 and KL 0.47 at the end. The hinge
  loss *without* spectral norm does as well (22.4 modes on average, 0.541; 23 modes and KL 0.31 at the end),
  so here the collapse comes from the normalisation, not from the hinge loss.
- **Why, as far as the discriminators tell.** The NS and hinge discriminators are steep on the data (median
  input-gradient norm 1.660 and 1.824) and score real points above fakes (logit gaps 1.078 and 0.451). The
  spectrally normalised one ends far below its bound of 1: almost flat on the data (0.004) and unable to tell
  real from fake (gap -0.008), so nothing pulls G's cloud back to the modes it leaves, and G drifts. (Norm-
  constrained networks with piecewise-linear units are known to lose gradient norm from layer to layer,
  Anil et al. 2019.) With SNGAN's own Adam betas (run "hinge+SN, b1=0") the same network stays steeper
  (0.078) and covers 17.6 modes on average, but blurrily (high-quality fraction 0.109; 0.218 at the end).
- **WGAN-GP** (n_critic = 5, lambda = 10) does not collapse but has not converged either: its critic's slope
  sits near the penalty's target (0.923), its samples form a diffuse ring over the grid, and its 14.2 modes
  "captured" on average rest on a high-quality fraction of 0.019 (about 50 of 2500 samples): with
  min_count = 1 a spread-out generator captures modes by brushing them. Read the mode count together with
  the high-quality fraction and the KL.
- **Caveats.** One seed per run here (two more seeds, tried while writing this notebook, showed the same
  contrast between NS and hinge+SN), 10,000 steps, small batches. The outcome depends on the optimizer as
  much as on the loss (compare the two hinge+SN runs), and it is the opposite of the textbook contrast, in
  which the minimax/NS GAN drops modes and WGAN-GP or spectral norm repairs it (PacGAN's plain GAN misses
  several of these 25 modes, after far longer training and with other networks). Change the seeds, the betas
  or the step count before trusting any single number here."""),
]


if __name__ == "__main__":
  execute_and_write(cells, PATH)
