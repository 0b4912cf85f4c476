"""FID against network evaluations (NFE) for every sampler of diffusion and flow matching, and the price
of classifier-free guidance, on one dataset and one training budget.

  python -m experiments.fid_vs_nfe --data=digits --workdir=runs/fid_vs_nfe_digits
  python -m experiments.fid_vs_nfe --data=digits --workdir=DIR --runs diffusion=DIR,flow_matching=DIR,classifier=DIR
  python -m experiments.fid_vs_nfe --data=mnist_split --workdir=DIR --examples=96000

Runs (RUN_CONFIGS; each its config's `:cpu` variant, trained on `--examples` examples in batches of
`--batch_size` by `compare.budgeted_config`, or loaded with `--runs name=DIR,...`): DDPM (`diffusion`),
flow matching with independent (`flow_matching`) and minibatch-OT couplings (`flow_matching_ot`), its
class-conditional variant (`flow_matching_conditional`), and the domain classifier (`classifier`) whose
penultimate features every FID uses (`compare`'s FID: `--num_samples` samples, default as many as the
test split, one seed, against the test split).

NFE = network evaluations per sample, counted from the samplers (`gen_jax.models.diffusion.samplers`,
`edm_sampler`; `gen_jax.ode`), for a target `--nfe` N:
  DDPM ancestral  DDIM steps with eta 1, N - 1 steps + the decoder's denoising at t = 0: N;
  DDIM            the same with eta 0: N;
  DPM-Solver++(2M)  N - 1 steps (one evaluation each, the previous x_hat reused) + the decoder: N;
  EDM Heun        N / 2 steps: 2 per step but the last (Euler), + the decoder: 2 (N / 2);
  FM Euler        N steps of one evaluation (the solution's num_function_evals, checked);
  FM midpoint     N / 2 steps of two: N;
  FM dopri5       adaptive, at each of `--tolerances` (rtol = atol): the solution's num_function_evals,
                  one step size for the whole batch (so per sample batch), FSAL counted.
Guidance: the conditional run sampled by its config's sampler (midpoint, 50 steps) for the labels
0, 1, ..., 9 in turn at each of `--guidance_scales` (s = 1 the conditional model, 0 the unconditional
one; s != 1 evaluates the network on the doubled batch, so twice the NFE); the domain classifier's
accuracy on the requested labels (its accuracy on the test split beside it) and the FID.

Writes DIR/report.json (every number), DIR/report.md (tables), DIR/fid_against_nfe.png (one curve per
sampler, log NFE), DIR/guidance.png (accuracy and FID against the scale) and guidance_s<scale>.png (a
grid of samples per scale, one column per class).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

import gen_jax
from experiments import compare
from gen_jax import latent_space, visualize
from gen_jax.data import load_dataset
from gen_jax.drivers import loop, scoring
from gen_jax.eval import frechet, statistics

RUN_CONFIGS = {  # name -> (config module, variant)
    "digits": {"diffusion": ("ddpm_digits", "cpu"), "flow_matching": ("flow_matching_digits", "cpu"),
               "flow_matching_ot": ("flow_matching_digits", "cpu,ot"),
               "flow_matching_conditional": ("flow_matching_digits", "cpu,conditional")},
    "mnist_split": {"diffusion": ("ddpm_mnist", "cpu"), "flow_matching": ("flow_matching_mnist", "cpu"),
                    "flow_matching_ot": ("flow_matching_mnist", "cpu,ot"),
                    "flow_matching_conditional": ("flow_matching_mnist", "cpu,conditional")},
}
DEFAULT_EXAMPLES = 128 * 1000  # examples seen by every run (compare's 1500 steps cut to fit ~35 min on 2 cores)
DEFAULT_NFE = (10, 20, 50, 100)
DEFAULT_TOLERANCES = (1e-1, 1e-2, 1e-3)
DEFAULT_SCALES = (0.0, 1.0, 1.5, 2.0, 3.0, 5.0)
DIFFUSION_SAMPLERS = {  # name -> (sampler, eta, steps for a target NFE, NFE of those steps)
    "DDPM ancestral": ("ddim", 1.0, lambda nfe: nfe - 1, lambda steps: steps + 1),
    "DDIM": ("ddim", 0.0, lambda nfe: nfe - 1, lambda steps: steps + 1),
    "DPM-Solver++(2M)": ("dpm_solver_2m", None, lambda nfe: nfe - 1, lambda steps: steps + 1),
    "EDM Heun": ("edm_heun", None, lambda nfe: nfe // 2, lambda steps: 2 * steps),
}
FM_FIXED = {"euler": (lambda nfe: nfe, 1), "midpoint": (lambda nfe: nfe // 2, 2)}  # steps, evaluations per step


class Fid:
  """FID in the domain classifier's features against the test split's statistics."""

  def __init__(self, classifier, test):
    self.classifier, self.test_stats = classifier, statistics.statistics_of(classifier(test)[0])

  def __call__(self, samples) -> tuple[float, np.ndarray]:
    features, logits = self.classifier(np.asarray(samples))
    return frechet.frechet_distance_from_statistics(self.test_stats, statistics.statistics_of(features)), logits


def diffusion_points(run, fid, num_samples: int, nfe_list, log) -> list[dict]:
  """FID at each target NFE for each of DIFFUSION_SAMPLERS (steps beyond a discrete chain skipped)."""
  model, transitions = run.model, run.model.num_transitions
  points = []
  for name, (sampler, eta, steps_for, nfe_of) in DIFFUSION_SAMPLERS.items():
    for target in nfe_list:
      steps = steps_for(target)
      if steps < 1 or (transitions and steps > transitions):
        continue
      draw = jax.jit(lambda key, steps=steps, sampler=sampler, eta=eta: model.apply(
          run.params, key, num_samples, steps, eta, sampler=sampler, method=model.sample))
      start = time.perf_counter()
      value, _ = fid(draw(jax.random.key(0)))
      points.append({"run": "diffusion", "sampler": name, "steps": steps, "nfe": nfe_of(steps), "fid": value,
                     "seconds": time.perf_counter() - start})
      log(f"diffusion {name} steps={steps} nfe={nfe_of(steps)} fid={value:.3f}")
  return points


def flow_matching_points(run_name: str, run, fid, num_samples: int, nfe_list, tolerances, log) -> list[dict]:
  """FID at each target NFE for Euler and midpoint, and at each tolerance for dopri5; NFE from the ODE
  solution (per sample batch)."""
  model = run.model
  z_0 = jax.random.normal(jax.random.key(0), (num_samples, *model.event_shape))
  settings = [(method, steps_for(target), None) for method, (steps_for, _) in FM_FIXED.items()
              for target in nfe_list if steps_for(target) >= 1]
  settings += [("dopri5", None, tol) for tol in tolerances]
  points = []
  for method, steps, tol in settings:
    options = {} if tol is None else {"rtol": tol, "atol": tol}
    generate = jax.jit(lambda z, method=method, steps=steps, options=options: model.apply(
        run.params, z, method, steps, **options, method=model.generate))
    start = time.perf_counter()
    x_1, solution = generate(z_0)
    value, _ = fid(model.apply(run.params, x_1, method=model.to_data))
    point = {"run": run_name, "sampler": method, "steps": None if steps is None else steps,
             "nfe": int(solution.num_function_evals), "fid": value, "seconds": time.perf_counter() - start,
             "accepted_steps": int(solution.num_steps), "rejected_steps": int(solution.num_rejected_steps),
             "status": int(solution.status)}
    if tol is not None:
      point["tolerance"] = tol
    points.append(point)
    log(f"{run_name} {method} steps={steps} tol={tol} nfe={point['nfe']} fid={value:.3f}")
  return points


def guidance_points(run, fid, classifier, num_samples: int, scales, workdir: str, log) -> list[dict]:
  """The conditional run at each guidance scale: the classifier's accuracy on the requested labels, FID,
  and a sample grid guidance_s<scale>.png (rows of the classes 0..K-1)."""
  model, section = run.model, run.config.flow_matching
  method, steps = section.sampler, section.sample_steps
  labels = jnp.arange(num_samples, dtype=jnp.int32) % model.num_classes

  def sample(key, scale, plain):
    return model.apply(run.params, key, num_samples, method, steps, labels, 1.0 if plain else scale,
                       method=model.sample)

  draw = jax.jit(sample, static_argnums=2)  # s = 1 alone skips the unconditional half
  per_step = 2 if method == "midpoint" else 1
  points = []
  for scale in scales:
    start = time.perf_counter()
    samples = np.asarray(draw(jax.random.key(0), jnp.float32(scale), scale == 1.0))
    value, logits = fid(samples)
    accuracy = float(np.mean(np.argmax(logits, -1) == np.asarray(labels)))
    nfe = (steps or 0) * per_step * (1 if scale == 1.0 else 2)
    points.append({"scale": float(scale), "accuracy": accuracy, "fid": value, "sampler": method, "steps": steps,
                   "nfe": nfe, "seconds": time.perf_counter() - start})
    levels = run.spec.num_levels
    shown = samples[:10 * model.num_classes] if len(samples) >= 10 * model.num_classes else samples
    upscale = 4 if run.spec.event_shape[0] <= 16 else 2
    visualize.save_image(os.path.join(workdir, f"guidance_s{scale:g}.png"),
                         latent_space.images_to_grid(shown, levels, model.num_classes), upscale=upscale)
    log(f"guidance s={scale} accuracy={accuracy:.3f} fid={value:.3f}")
  return points


def save_figures(workdir: str, curves: list[dict], guidance: list[dict], classifier_accuracy: float) -> None:
  import matplotlib  # pylint: disable=import-outside-toplevel
  matplotlib.use("Agg")
  import matplotlib.pyplot as plt  # pylint: disable=import-outside-toplevel
  runs = list(dict.fromkeys(p["run"] for p in curves))
  if runs:
    figure, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.4), squeeze=False, sharey=True)
    for ax, run in zip(axes[0], runs):
      for sampler in dict.fromkeys(p["sampler"] for p in curves if p["run"] == run):
        curve = sorted((p for p in curves if p["run"] == run and p["sampler"] == sampler), key=lambda p: p["nfe"])
        ax.plot([p["nfe"] for p in curve], [p["fid"] for p in curve], "o-", label=sampler)
      ax.set(xscale="log", yscale="log", title=run, xlabel="network evaluations per sample")
      ax.legend(fontsize=8)
    axes[0][0].set_ylabel("FID (domain features)")
    figure.tight_layout()
    figure.savefig(os.path.join(workdir, "fid_against_nfe.png"), dpi=110)
    plt.close(figure)
  if guidance:
    figure, (left, right) = plt.subplots(1, 2, figsize=(8, 3.2))
    scales = [p["scale"] for p in guidance]
    left.plot(scales, [p["accuracy"] for p in guidance], "o-", label="samples")
    left.axhline(classifier_accuracy, color="k", linestyle=":", label="test split")
    left.set(xlabel="guidance scale s", ylabel="classifier accuracy on the requested label", ylim=(0, 1.02))
    left.legend(fontsize=8)
    right.plot(scales, [p["fid"] for p in guidance], "o-")
    right.set(xlabel="guidance scale s", ylabel="FID (domain features)")
    figure.tight_layout()
    figure.savefig(os.path.join(workdir, "guidance.png"), dpi=110)
    plt.close(figure)


def markdown_report(report: dict) -> str:
  lines = [f"# FID against network evaluations: {report['data']}", "", report["budget"], ""]
  curves = report["fid_against_nfe"]
  for run in dict.fromkeys(p["run"] for p in curves):
    points = [p for p in curves if p["run"] == run]
    lines += [f"## {run} ({report['runs'][run]['config']})", "", "| sampler | steps | tolerance | NFE | FID | seconds |",
              "|---|---:|---:|---:|---:|---:|"]
    for p in points:
      steps = "adaptive" if p["steps"] is None else p["steps"]
      tol = f"{p['tolerance']:g}" if "tolerance" in p else ""
      lines.append(f"| {p['sampler']} | {steps} | {tol} | {p['nfe']} | {p['fid']:.3g} | {p['seconds']:.1f} |")
    nfes = sorted({p["nfe"] for p in points if p.get("tolerance") is None})
    samplers = [s for s in dict.fromkeys(p["sampler"] for p in points) if s != "dopri5"]
    lines += ["", "| FID at NFE | " + " | ".join(map(str, nfes)) + " |", "|---|" + "---:|" * len(nfes)]
    for sampler in samplers:
      by_nfe = {p["nfe"]: p["fid"] for p in points if p["sampler"] == sampler}
      lines.append(f"| {sampler} | " + " | ".join(f"{by_nfe[n]:.3g}" if n in by_nfe else "" for n in nfes) + " |")
    lines.append("")
  if report["guidance"]:
    lines += [f"## Classifier-free guidance: flow_matching_conditional ({report['runs']['flow_matching_conditional']['config']})",
              "", f"The domain classifier's accuracy on the test split: {report['classifier_test_accuracy']:.3f}.", "",
              "| guidance scale | sampler | NFE | classifier accuracy on the requested label | FID |",
              "|---:|---|---:|---:|---:|"]
    for p in report["guidance"]:
      lines.append(f"| {p['scale']:g} | {p['sampler']} {p['steps']} steps | {p['nfe']} | {p['accuracy']:.3f} | "
                   f"{p['fid']:.3g} |")
    lines.append("")
  lines += ["![FID against NFE](fid_against_nfe.png)", ""]
  if report["guidance"]:
    lines += ["![guidance](guidance.png)", "", " ".join(f"![s={p['scale']:g}](guidance_s{p['scale']:g}.png)"
                                                         for p in report["guidance"]), ""]
  return "\n".join(lines)


def fid_vs_nfe(data: str, workdir: str, *, runs: dict | None = None, examples: int = DEFAULT_EXAMPLES,
               batch_size: int = 128, num_samples: int | None = None, nfe=DEFAULT_NFE, tolerances=DEFAULT_TOLERANCES,
               scales=DEFAULT_SCALES, overrides: dict | None = None, log=print) -> dict:
  """Trains (or loads) the runs, measures them (module doc), writes the report; returns it."""
  if data not in RUN_CONFIGS:
    raise ValueError(f"unknown --data {data!r}: expected one of {sorted(RUN_CONFIGS)}")
  runs, overrides = dict(runs or {}), dict(overrides or {})
  known = set(RUN_CONFIGS[data]) | {"classifier"}
  unknown = sorted((set(runs) | set(overrides)) - known)
  if unknown:
    raise ValueError(f"unknown runs {unknown}: expected names from {sorted(known)}")
  for name, path in runs.items():
    if not os.path.exists(os.path.join(path, "config.json")):
      raise FileNotFoundError(f"--runs {name}={path}: not a gen_jax run (no config.json)")
  os.makedirs(workdir, exist_ok=True)
  wall = time.perf_counter()
  test_set = load_dataset(data, "test")
  test = test_set.data
  num_samples = len(test) if num_samples is None else num_samples
  configs = {"classifier": (compare.CLASSIFIER_CONFIGS[data], "cpu"), **RUN_CONFIGS[data]}
  dirs, info = {}, {}
  for name, (module, variant) in configs.items():
    info[name] = {"config": f"{module}:{variant}"}
    if name in runs:
      dirs[name] = runs[name]
    else:
      dirs[name] = os.path.join(workdir, name)
      start = time.perf_counter()
      log(f"train {name} ({module}:{variant})")
      loop.train_and_evaluate(compare.budgeted_config(module, examples, batch_size, overrides.get(name), variant),
                              dirs[name])
      info[name]["train_wall_seconds"] = time.perf_counter() - start
    info[name]["workdir"] = dirs[name]
  classifier = scoring.load_domain_classifier(dirs["classifier"])
  fid = Fid(classifier, test)
  test_accuracy = float(np.mean(np.argmax(classifier(test)[1], -1) == test_set.labels))
  curves, guidance = [], []
  measure_start = time.perf_counter()
  for name in RUN_CONFIGS[data]:
    run = gen_jax.load_run(dirs[name])
    info[name].update({"examples": int(run.step * run.config.train.batch_size), "steps": int(run.step)})
    start = time.perf_counter()
    if name == "diffusion":
      curves += diffusion_points(run, fid, num_samples, nfe, log)
    elif name == "flow_matching_conditional":
      guidance = guidance_points(run, fid, classifier, num_samples, scales, workdir, log)
    else:
      curves += flow_matching_points(name, run, fid, num_samples, nfe, tolerances, log)
    info[name]["measure_seconds"] = time.perf_counter() - start
  measure_seconds = time.perf_counter() - measure_start
  budget = (f"Budget: {examples} training examples per run in batches of {batch_size} (runs given with --runs keep "
            f"their own: see report.json); {num_samples} samples (one seed) against the {len(test)} test images; "
            f"features: the domain classifier at {dirs['classifier']}. Measuring took {measure_seconds:.0f} s.")
  report = {"data": data, "budget": budget, "num_samples": num_samples, "runs": info,
            "classifier_test_accuracy": test_accuracy, "fid_against_nfe": curves, "guidance": guidance,
            "measure_seconds": measure_seconds, "wall_seconds": time.perf_counter() - wall,
            "device": str(jax.devices()[0].platform)}
  save_figures(workdir, curves, guidance, test_accuracy)
  with open(os.path.join(workdir, "report.json"), "w") as f:
    json.dump(report, f, indent=2, default=float)
  with open(os.path.join(workdir, "report.md"), "w") as f:
    f.write(markdown_report(report))
  return report


def _floats(text: str) -> tuple[float, ...]:
  return tuple(float(v) for v in text.split(",") if v)


def main(argv=None) -> int:
  parser = argparse.ArgumentParser(prog="python -m experiments.fid_vs_nfe", description=__doc__.split("\n")[0])
  parser.add_argument("--data", required=True, choices=sorted(RUN_CONFIGS))
  parser.add_argument("--workdir", required=True, help="where the runs, report.md, report.json and figures go")
  parser.add_argument("--runs", default="", help="finished runs to load instead of training: name=DIR,... (names: "
                      "diffusion, flow_matching, flow_matching_ot, flow_matching_conditional, classifier)")
  parser.add_argument("--examples", type=int, default=DEFAULT_EXAMPLES, help="training examples seen per run")
  parser.add_argument("--batch_size", type=int, default=128)
  parser.add_argument("--num_samples", type=int, default=None, help="samples per FID (default: the test size)")
  parser.add_argument("--nfe", default=",".join(map(str, DEFAULT_NFE)), help="target NFEs of the fixed-step samplers")
  parser.add_argument("--tolerances", default=",".join(f"{t:g}" for t in DEFAULT_TOLERANCES),
                      help="dopri5's rtol = atol values")
  parser.add_argument("--guidance_scales", default=",".join(f"{s:g}" for s in DEFAULT_SCALES))
  parser.add_argument("--set", action="append", default=[],
                      help="a config override for one run, NAME:FIELD=VALUE (JSON value), repeatable")
  args = parser.parse_args(argv)
  overrides = compare.parse_overrides(args.set, parser)
  try:
    runs = compare.parse_pairs(args.runs, "--runs")
    nfe = tuple(int(v) for v in args.nfe.split(",") if v)
    tolerances, scales = _floats(args.tolerances), _floats(args.guidance_scales)
  except (argparse.ArgumentTypeError, ValueError) as error:
    parser.error(str(error))
  try:
    report = fid_vs_nfe(args.data, args.workdir, runs=runs, examples=args.examples, batch_size=args.batch_size,
                        num_samples=args.num_samples, nfe=nfe, tolerances=tolerances, scales=scales,
                        overrides=overrides, log=lambda m: print(m, flush=True))
  except (ValueError, FileNotFoundError, KeyError) as error:
    parser.exit(2, f"{parser.prog}: error: {error}\n")
  print(f"{os.path.join(args.workdir, 'report.md')} ({report['wall_seconds']:.0f} s)")
  return 0


if __name__ == "__main__":
  sys.exit(main())
