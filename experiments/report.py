"""Prints results rows (docs/results/*.md) from finished runs: the last evaluation of each run directory.

  python -m experiments.report runs/glow_digits runs/nsf_digits ...
  python -m experiments.report --scatter docs/figures/gan_grid25.png runs/gan_toy2d_grid25_*


For 2-D toy data it adds the true density's NLL on the same test samples (`toy2d.true_nll`), the figure
a model's test NLL is held against; for a classifier, its test accuracy before its test cross-entropy (nats).
A GAN on a 2-D mixture has no likelihood: its row holds the mode-collapse measures of 2500 samples
(`gan.mode_coverage`: modes captured, the fraction of high-quality samples, KL of the mode histogram
to uniform), as the Unrolled-GAN / VEEGAN / PacGAN tables report them.
"""
from __future__ import annotations

import argparse
import json
import os
import sys

import numpy as np

from gen_jax import visualize
from gen_jax.cli import preflight
from gen_jax.data import load_dataset, toy2d
from gen_jax.train.metrics_log import read_metrics


def last_eval(workdir: str) -> dict:
  evals = [m for m in read_metrics(os.path.join(workdir, "metrics.jsonl")) if any(k.startswith("eval/") for k in m)]
  if not evals:
    raise ValueError(f"{workdir} has no evaluation in metrics.jsonl yet")
  return evals[-1]


NUM_MODE_SAMPLES = 2500


def gan_mixture_row(workdir: str, config: dict, seed: int = 0) -> tuple[str, tuple[str, np.ndarray]]:
  """(| data | gan (variant) | steps | modes captured / K | high-quality fraction | KL to uniform |,
  (a panel title "variant: modes / K modes", the [2500, 2] samples measured))."""
  import jax  # pylint: disable=import-outside-toplevel
  from gen_jax.models.gan import toy2d_mode_coverage  # pylint: disable=import-outside-toplevel
  from gen_jax.drivers.run import load_run  # pylint: disable=import-outside-toplevel
  run = load_run(workdir)
  samples = run.task.sample(run.all_params, jax.random.key(seed), NUM_MODE_SAMPLES)
  density = config["data"]["name"].split("/", 1)[1]
  coverage = toy2d_mode_coverage(density, samples)
  variant, modes = config["gan_variant"], f"{int(coverage['modes_captured'])} / {len(coverage['mode_counts'])}"
  return (f"| {config['data']['name']} | gan ({variant}) | {run.step} | {modes} | "
          f"{float(coverage['high_quality_fraction']):.3f} | {float(coverage['kl_to_uniform']):.3f} |",
          (f"{variant}: {modes} modes", np.asarray(samples)))


def row(workdir: str) -> tuple[str, tuple[str, np.ndarray] | None]:
  """(the results-table row, for a GAN on a 2-D mixture the (title, samples) panel it measured, else None)."""
  with open(os.path.join(workdir, "config.json")) as f:
    config = json.load(f)
  name, model = config["data"]["name"], config["model"]["name"]
  if model == "gan" and name.split("/")[-1] in toy2d.MIXTURES:
    return gan_mixture_row(workdir, config)
  result = last_eval(workdir)
  cells = [name, model, str(result["step"]), f"{result['eval/nll']:.4f}"]
  if "eval/accuracy" in result:  # a classifier: test accuracy, then the test cross-entropy in nats
    cells.insert(3, f"{result['eval/accuracy']:.4f}")
  elif name.startswith("toy2d/"):
    density = name.split("/", 1)[1]
    test = load_dataset(name, "test").data
    true = float(np.asarray(toy2d.true_nll(density, test)))
    cells += [f"{true:.4f}", f"{result['eval/nll'] - true:+.4f}"]
  else:
    cells.append(f"{result['eval/bpd']:.4f}")
  return "| " + " | ".join(cells) + " |", None


def main(argv):
  """Prints one row per run; `--scatter PATH` first also draws the GAN runs' measured samples there,
  one panel per run titled with its variant. `argv` is `sys.argv`: the program name, then the arguments."""
  parser = argparse.ArgumentParser(prog="python -m experiments.report", description=__doc__.split("\n")[0])
  parser.add_argument("--scatter", nargs="?", const="", metavar="PNG",
                      help="also draw the measured samples of the GAN runs on 2-D mixtures into this PNG")
  parser.add_argument("workdirs", nargs="*", metavar="RUN_DIR", help="finished run directories")
  args = parser.parse_args(argv[1:])
  if args.scatter == "":
    raise SystemExit("--scatter needs a PNG path, then the run directories")
  if not args.workdirs:
    parser.error("expected one or more run directories")
  panels = []
  for workdir in args.workdirs:
    try:
      text, panel = row(workdir)
    except (OSError, ValueError) as error:  # not a run directory, or no evaluation yet
      preflight.fail(parser, f"{workdir}: {error}")
    print(text)
    if panel is not None:
      panels.append(panel)
  if args.scatter:
    if not panels:
      raise SystemExit("--scatter draws GAN runs on 2-D mixtures; none was given")
    visualize.save_scatter_panels(args.scatter, panels, limit=6.0)


if __name__ == "__main__":
  main(sys.argv)
