"""Prints the README's results rows from finished runs: the last evaluation of each run directory.

  python -m experiments.report runs/glow_digits runs/nsf_digits ...

For 2-D toy data it adds the true density's NLL on the same test samples (`toy2d.true_nll`), the figure
a model's test NLL is held against; for a classifier, its test accuracy before its test cross-entropy (nats).
"""
from __future__ import annotations

import json
import os
import sys

import numpy as np

from gen_jax.data import load_dataset, toy2d
from gen_jax.train.metrics_log import read_metrics


def last_eval(workdir: str) -> dict:
  evals = [m for m in read_metrics(os.path.join(workdir, "metrics.jsonl")) if any(k.startswith("eval/") for k in m)]
  if not evals:
    raise ValueError(f"{workdir} has no evaluation in metrics.jsonl yet")
  return evals[-1]


def row(workdir: str) -> str:
  with open(os.path.join(workdir, "config.json")) as f:
    config = json.load(f)
  name, model = config["data"]["name"], config["model"]["name"]
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
  return "| " + " | ".join(cells) + " |"


def main(argv):
  for workdir in argv[1:]:
    print(row(workdir))


if __name__ == "__main__":
  main(sys.argv)
