"""Honest numbers for a trained EBM run: normalised test NLL, samples, and outlier-detection AUROCs.

  python -m gen_jax.cli.ebm_report --workdir runs/ebm_toy2d_eight_gaussians --figure docs/figures/ebm_toy2d.png
  python -m gen_jax.cli.ebm_report --workdir runs/ebm_digits --flow runs/realnvp_digits \
      --figure docs/figures/ebm_digits_samples.png [--ais_distributions 1000 --ais_chains 64]

2-D data: log Z on the box by the grid (`grid.py`, with its Richardson error), the test NLL (nats,
mean +- standard error over the test points) beside the true density's on the same points
(`toy2d.true_nll`) and its entropy; the figure shows the true density, exp(-E) / Z, and Langevin samples.

Images: log Z by AIS (`ais.py`) with its spread across chains, and the test bits/dim of the discrete
data, -log P(x) <= E((x + u) / L) + log Z + D log L (uniform dequantization, one draw per image), its
+- the delta-method standard error of log Z (the examples' own standard error printed beside it). As
AIS under-estimates log Z in expectation, this bits/dim is an *estimate that errs optimistic*.
`--temperature T` evaluates exp(-E / T) instead: image EBMs are trained with "cold" chains (Du &
Mordatch: T = noise^2 / (2 step) ~ 1e-6), whose samples come from about exp(-E / T), not exp(-E). Outlier
detection: AUROC of the energy and of |grad_x E| (at the levels' bin centres (x + 1/2) / L) for the
test images against each `gen_jax.eval.outlier.digits_ood_sets` set (digits; other images: uniform noise
and inverted images, `noise_and_inverted_sets`), beside a flow's -log p (`--flow`).
"""
from __future__ import annotations

import argparse
import math

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax import visualize
from gen_jax.data import bits_per_dim, discrete_log_likelihood, load_dataset, toy2d, uniform_dequantize
from gen_jax.data.levels import unit_to_levels
from gen_jax.drivers.run import load_run
from gen_jax.eval.outlier import auroc, digits_ood_sets, noise_and_inverted_sets
from gen_jax.models.ebm import ais, grid
from gen_jax.models.ebm.outlier import energy_score, gradient_norm_score


def _batched(fn, x, batch=500):
  return np.concatenate([np.asarray(fn(jnp.asarray(x[i:i + batch]))) for i in range(0, len(x), batch)])


def toy2d_report(run, figure: str | None, seed: int) -> None:
  model, variables = run.model, run.params
  energy = jax.jit(lambda x: model.apply(variables, x, method=model.energy))
  low, high = model.domain
  normalizer = grid.grid_log_normalizer(energy, low, high, model.grid_size)
  x = load_dataset(run.config.data.name, "test").data
  inside = np.all((x >= low) & (x <= high), axis=1)
  nll = np.where(inside, _batched(energy, x) + float(normalizer.log_z), np.inf)
  density = run.spec.name.split("/", 1)[1]
  true = np.asarray(toy2d.true_nll(density, jnp.asarray(x)))
  entropy, entropy_se = toy2d.entropy(density, jax.random.key(seed))
  print(f"grid {model.grid_size}^2 on [{low}, {high}]^2: log Z = {float(normalizer.log_z):.5f} "
        f"(Richardson error estimate {float(normalizer.error):.1e}); {int((~inside).sum())} test points off the box")
  print("| data | model | steps | test NLL (grid) | true NLL | gap | entropy |")
  print(f"| {run.spec.name} | ebm ({run.config.ebm.objective}, {run.config.ebm.chains}) | {run.step} | "
        f"{nll.mean():.4f} +- {nll.std() / math.sqrt(len(nll)):.4f} | {true.mean():.4f} | "
        f"{nll.mean() - true.mean():+.4f} | {entropy:.4f} +- {entropy_se:.4f} |")
  if figure:
    _toy2d_figure(run, energy, float(normalizer.log_z), density, figure, seed)


def _toy2d_figure(run, energy, log_z, density, path, seed):
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  low, high = run.model.domain
  size = 256
  points = grid.grid_points(low, high, size)
  model_density = np.exp(-_batched(energy, points, 4096) - log_z).reshape(size, size)
  true_density = np.exp(np.asarray(toy2d.log_prob(density, points))).reshape(size, size)
  samples = np.asarray(run.task.sample(run.all_params, jax.random.key(seed), 5000))
  fig, axes = plt.subplots(1, 3, figsize=(12, 4))
  for ax, (title, image) in zip(axes, [("true density", true_density), ("EBM exp(-E) / Z (grid)", model_density)]):
    ax.imshow(image, origin="lower", extent=(low, high, low, high), cmap="viridis")
    ax.set_title(title)
  steps = run.config.ebm.sample_steps or run.model.langevin_steps
  axes[2].scatter(samples[:, 0], samples[:, 1], s=1, alpha=0.4)
  axes[2].set(xlim=(low, high), ylim=(low, high), aspect="equal", title=f"Langevin samples ({steps} steps from noise)")
  fig.savefig(path, dpi=80, bbox_inches="tight")
  plt.close(fig)
  print(f"wrote {path}")


def image_report(run, flow_dir: str | None, figure: str | None, num_distributions: int, num_chains: int,
                 step_size: float, seed: int, temperature: float = 1.0) -> None:
  model, variables, spec = run.model, run.params, run.spec
  levels, num_dims = spec.num_levels, math.prod(spec.event_shape)
  energy_fn = lambda y: model.apply(variables, y, method=model.energy) / temperature
  energy = jax.jit(energy_fn)
  result = jax.jit(lambda key: ais.ais_log_normalizer(
      energy_fn, key, event_shape=spec.event_shape, domain=model.domain, num_distributions=num_distributions,
      num_chains=num_chains, step_size=step_size))(jax.random.key(seed))
  log_w = np.asarray(result.log_weights)
  print(f"temperature {temperature:.3g}: p(y) = exp(-E(y) / {temperature:.3g}) / Z on [0, 1]^{num_dims}")
  print(f"AIS: {num_distributions} distributions, {num_chains} chains: log Z = {float(result.log_z):.3f} "
        f"+- {float(result.log_z_stderr):.3f} (per-chain log Z_0 + log w: mean {log_w.mean():.3f}, sd "
        f"{log_w.std():.3f}, min {log_w.min():.3f}, max {log_w.max():.3f}); ESS {float(result.effective_sample_size):.1f}; "
        f"MALA acceptance {float(result.acceptance):.2f}")
  ess = float(result.effective_sample_size)
  if ess < 0.1 * num_chains:
    print(f"WARNING: the AIS weights are degenerate (ESS {ess:.1f} of {num_chains} chains): log Z is then "
          "likely far *under*-estimated and its standard error meaningless; add distributions")
  test = load_dataset(spec.name, "test").data
  y = uniform_dequantize(jax.random.key(seed + 1), jnp.asarray(test), levels)
  nll = -discrete_log_likelihood(-(_batched(energy, y) + float(result.log_z)), num_dims, levels)
  bpd = float(bits_per_dim(nll.mean(), num_dims))
  to_bpd = lambda nats: float(bits_per_dim(nats, num_dims))
  print("| data | model | steps | test bits/dim (AIS estimate) | +- log Z stderr | +- examples' stderr | AIS K x chains |")
  print(f"| {spec.name} | ebm ({run.config.ebm.chains}) | {run.step} | {bpd:.4f} | {to_bpd(float(result.log_z_stderr)):.4f} | "
        f"{to_bpd(nll.std() / math.sqrt(len(nll))):.4f} | {num_distributions} x {num_chains} |")

  if spec.name == "digits":
    ood = digits_ood_sets(test, load_dataset("mnist_split", "test").data, seed=seed)
  else:
    ood = noise_and_inverted_sets(test, levels, seed=seed)
  centres = lambda x: (jnp.asarray(x, jnp.float32) + 0.5) / levels
  scores = {"EBM energy": lambda x: _batched(lambda b: energy_score(energy_fn, b), centres(x)),
            "EBM |grad_x E|": lambda x: _batched(lambda b: gradient_norm_score(energy_fn, b), centres(x))}
  if flow_dir:
    flow = load_run(flow_dir)
    flow_ll = jax.jit(flow.task.log_likelihoods["exact"])
    scores[f"flow -log p ({flow.config.model.name})"] = lambda x: -_batched(
        lambda b: flow_ll(flow.all_params, b, jax.random.key(seed + 2)), x)
  print("| score | " + " | ".join(ood) + " |")
  print("|---|" + "---:|" * len(ood))
  for name, score in scores.items():
    inliers = score(test)
    print(f"| {name} | " + " | ".join(f"{auroc(inliers, score(x)):.3f}" for x in ood.values()) + " |")
  if figure:
    samples = np.asarray(run.task.sample(run.all_params, jax.random.key(seed), 64))
    panels = [samples]
    if "buffer" in run.all_params:
      panels.append(np.asarray(unit_to_levels(run.all_params["buffer"][:64], levels)))
    grids = [visualize.image_grid(p, levels, columns=8) for p in panels]
    gap = np.full((grids[0].shape[0], 4, grids[0].shape[2]), 255, np.uint8)
    visualize.save_image(figure, np.concatenate(sum([[g, gap] for g in grids], [])[:-1], axis=1), upscale=4)
    print(f"wrote {figure}: Langevin samples from noise" + (" | replay-buffer states" if len(panels) > 1 else ""))


def main(argv=None):
  parser = argparse.ArgumentParser(prog="python -m gen_jax.cli.ebm_report", description=__doc__.split("\n\n")[0])
  parser.add_argument("--workdir", required=True)
  parser.add_argument("--flow", default=None, help="a flow run on the same data, for the AUROC comparison")
  parser.add_argument("--figure", default=None)
  parser.add_argument("--ais_distributions", type=int, default=1000)
  parser.add_argument("--ais_chains", type=int, default=64)
  parser.add_argument("--ais_step_size", type=float, default=1e-3)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--temperature", type=float, default=1.0,
                      help="evaluate p = exp(-E / T) / Z; T = noise_scale^2 / (2 step_size) is the law the "
                           "training chains sample (1: the model exp(-E) itself)")
  args = parser.parse_args(argv)
  run = load_run(args.workdir, use_ema=False)
  if run.spec.kind == "vector":
    toy2d_report(run, args.figure, args.seed)
  else:
    image_report(run, args.flow, args.figure, args.ais_distributions, args.ais_chains, args.ais_step_size, args.seed,
                 args.temperature)


if __name__ == "__main__":
  main()
