"""Test log-likelihood for every family in one place: nats and bits/dim, with the estimator named and its cost.

Each family's Task lists its estimators in `Task.log_likelihoods` under a name from `ESTIMATORS`;
`evaluate_likelihood` runs one over a whole split (padded, masked batches: every example exactly
once), and reports the mean negative log-likelihood in nats per example, bits per dimension of the
discrete data (images; `gen_jax.data.levels.bits_per_dim`), its standard error over examples,
and the seconds per 1000 examples (compilation excluded).

  python -m gen_jax.eval.likelihood --workdir runs/quickstart [--estimator exact] [--split test]
      [--option NAME=VALUE ...]   (estimator options, e.g. divergence=exact for probability_flow)
"""
from __future__ import annotations

import argparse
import ast
import functools
import math
import sys
import time
from typing import NamedTuple

import jax
import numpy as np

from gen_jax import checks
from gen_jax.data import batching
from gen_jax.data import levels
from gen_jax.data import load_dataset

# name -> (what it computes, how it relates to the true log-likelihood log P(x))
ESTIMATORS = {
    "exact": ("the model's exact log-density (flows, autoregressive models); on discrete data a flow's "
              "density of uniformly dequantized data, one noise draw per example, and an autoregressive "
              "model's log P(x) itself",
              "exact for continuous data and for autoregressive models of discrete data; a stochastic lower "
              "bound on log P(x) for a flow on dequantized discrete data"),
    "elbo": ("the evidence lower bound E_q[log p(x, z) - log q(z | x)] (VAEs, diffusion)",
             "a lower bound on log P(x)"),
    "iwae": ("the importance-weighted bound with k samples (Burda et al. 2016; option k)",
             "a lower bound on log P(x), tightening as k grows"),
    "probability_flow": ("the probability-flow ODE's instantaneous change of variables (Song et al. 2021)",
                         "exact up to the ODE solver's and trace estimator's error, on dequantized data"),
}


class LikelihoodReport(NamedTuple):
  estimator: str
  nll_nats: float  # mean negative log-likelihood (bound), nats per example
  nll_stderr: float  # standard error of that mean over examples
  bits_per_dim: float | None  # for discrete data (None for continuous vectors)
  num_examples: int
  seconds_per_1k: float  # wall time per 1000 examples, compilation excluded
  relation: str  # how the estimate relates to log P(x) (from ESTIMATORS)

  def markdown_row(self, name: str = "") -> str:
    bpd = "" if self.bits_per_dim is None else f"{self.bits_per_dim:.4f}"
    return (f"| {name} | {self.estimator} | {self.nll_nats:.4f} +- {self.nll_stderr:.4f} | {bpd} | "
            f"{self.num_examples} | {self.seconds_per_1k:.3g} |")


def check_estimator(name: str, available) -> None:
  if name not in ESTIMATORS:
    raise ValueError(f"unknown likelihood estimator '{name}': expected one of {sorted(ESTIMATORS)}")
  if name not in available:
    raise ValueError(f"this model has no '{name}' estimator: it has {sorted(available)}")


def evaluate_likelihood(log_likelihood, data, *, rng, batch_size: int = 500, num_dims: int | None = None,
                        estimator: str = "exact") -> LikelihoodReport:
  """Runs `log_likelihood(batch, rng) -> [B] nats` over `data` [N, ...].

  Args:
    num_dims: dimensions per example for bits/dim (discrete data); None for continuous data.
  """
  checks.check_positive_int(batch_size, "batch_size")
  if len(data) == 0:
    raise ValueError("no examples to evaluate: expected data [N, ...] with N >= 1")
  batches = list(batching.padded_batches(data, batch_size))
  # Compiled ahead of the timed loop (every batch has the same shape), without running a batch twice.
  fn = jax.jit(log_likelihood).lower(batches[0][0], rng).compile()
  values = []
  start = time.perf_counter()
  for i, (batch, mask) in enumerate(batches):
    out = np.asarray(fn(batch, jax.random.fold_in(rng, i)), np.float64)
    values.append(out[mask > 0])
  seconds = time.perf_counter() - start
  log_likelihoods = np.concatenate(values)
  if not np.all(np.isfinite(log_likelihoods)):
    bad = int(np.flatnonzero(~np.isfinite(log_likelihoods))[0])
    raise FloatingPointError(f"non-finite log-likelihood ({log_likelihoods[bad]}) for example {bad}")
  nll = -log_likelihoods
  mean = float(nll.mean())
  return LikelihoodReport(
      estimator=estimator, nll_nats=mean, nll_stderr=float(nll.std(ddof=1) / math.sqrt(len(nll))) if len(nll) > 1
      else float("nan"), bits_per_dim=None if num_dims is None else float(levels.bits_per_dim(mean, num_dims)),
      num_examples=len(nll), seconds_per_1k=1000 * seconds / len(nll), relation=ESTIMATORS[estimator][1])


def run_likelihood(run, estimator: str = "exact", split: str = "test", batch_size: int = 500, seed: int = 0,
                   data_dir: str | None = None, num_examples: int | None = None, **options) -> LikelihoodReport:
  """`evaluate_likelihood` for a loaded run (`gen_jax.load_run`) on its dataset's `split`.

  `num_examples`: only the split's first N examples (for costly estimators); `options` go to the
  estimator (e.g. k=5000 for IWAE).
  """
  check_estimator(estimator, run.task.log_likelihoods)
  fn = functools.partial(run.task.log_likelihoods[estimator], **options)
  dataset = load_dataset(run.config.data.name, split, data_dir if data_dir is not None else run.config.data.data_dir)
  num_dims = math.prod(run.spec.event_shape) if run.spec.num_levels is not None else None
  data = dataset.data
  if num_examples is not None:
    checks.check_positive_int(num_examples, "num_examples")
    if num_examples > len(data):
      raise ValueError(f"num_examples={num_examples} exceeds the {len(data)} examples of the {split} split")
    data = data[:num_examples]
  return evaluate_likelihood(lambda batch, rng: fn(run.all_params, batch, rng), data,
                             rng=jax.random.key(seed), batch_size=batch_size, num_dims=num_dims, estimator=estimator)


def parse_options(pairs: list[str]) -> dict:
  """["divergence=exact", "rtol=1e-5"] -> {"divergence": "exact", "rtol": 1e-05} (also dotted config
  field names, "sampler.num_steps=50")."""
  options = {}
  for pair in pairs:
    name, sep, value = pair.partition("=")
    if not sep or not all(part.isidentifier() for part in name.split(".")):
      raise ValueError(f"options must be NAME=VALUE with NAME an identifier (dots allowed), got {pair!r}")
    try:
      options[name] = ast.literal_eval(value)
    except (ValueError, SyntaxError):
      options[name] = value
  return options


def main(argv=None):
  parser = argparse.ArgumentParser(prog="python -m gen_jax.eval.likelihood", description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True, help="a gen_jax run directory")
  parser.add_argument("--estimator", default="exact", choices=sorted(ESTIMATORS))
  parser.add_argument("--split", default="test")
  parser.add_argument("--batch-size", type=int, default=500)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--k", type=int, default=None, help="samples of the IWAE bound")
  parser.add_argument("--num-examples", type=int, default=None, help="only the split's first N examples")
  parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                      help="an estimator option, e.g. divergence=exact, rtol=1e-5, num_step_samples=100 "
                           "(VALUE read as a Python literal, else a string); repeatable")
  args = parser.parse_args(argv)
  from gen_jax.run import load_run  # pylint: disable=import-outside-toplevel
  run = load_run(args.workdir)
  options = {} if args.k is None else {"k": args.k}
  options.update(parse_options(args.option))
  report = run_likelihood(run, args.estimator, args.split, args.batch_size, args.seed,
                          num_examples=args.num_examples, **options)
  print("| run | estimator | NLL (nats) | bits/dim | examples | s / 1k examples |\n|---|---|---|---|---|---|")
  print(report.markdown_row(args.workdir))
  print(f"({args.estimator}: {report.relation})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
