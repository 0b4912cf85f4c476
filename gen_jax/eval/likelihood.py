"""Test log-likelihood for every family in one place: nats and bits/dim, with the estimator named and its cost.

Each family's Task lists its estimators in `Task.log_likelihoods` under a name from `ESTIMATORS`;
`evaluate_likelihood` runs one over a whole split (padded, masked batches: every example exactly
once), and reports the mean negative log-likelihood in nats per example, bits per dimension of the
discrete data (images; `gen_jax.data.levels.bits_per_dim`), its standard error over examples,
and the seconds per 1000 examples (compilation excluded).

A loaded run's likelihood on its dataset: `gen_jax.drivers.scoring.run_likelihood`; from the command
line: `python -m gen_jax.cli.likelihood`.
"""
from __future__ import annotations

import math
import time
from typing import NamedTuple

import jax
import numpy as np

from gen_jax import checks
from gen_jax.data import batching
from gen_jax.data import levels
from gen_jax.eval import across_processes as across_processes_lib

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
    "change_of_variables": ("a continuous normalizing flow's instantaneous change of variables (Chen et al. "
                            "2018) along its learned ODE (flow matching)",
                            "exact up to the ODE solver's and trace estimator's error, on dequantized data"),
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
                        estimator: str = "exact", across_processes: bool = False) -> LikelihoodReport:
  """Runs `log_likelihood(batch, rng) -> [B] nats` over `data` [N, ...] (batch i with key fold_in(rng, i)).

  Args:
    num_dims: dimensions per example for bits/dim (discrete data); None for continuous data.
    across_processes: every process of a multi-process job calls this with the same data; batch i runs
      on process i mod P alone (`log_likelihood` on that process's devices) and the values are gathered
      once (`across_processes.map_chunks`), so every process returns the one-process report.
  """
  checks.check_positive_int(batch_size, "batch_size")
  if len(data) == 0:
    raise ValueError("no examples to evaluate: expected data [N, ...] with N >= 1")
  batches = list(batching.padded_batches(data, batch_size))
  # Compiled ahead of the timed loop (every batch has the same shape), without running a batch twice.
  fn = jax.jit(log_likelihood).lower(batches[0][0], rng).compile()
  run = lambda i: np.asarray(fn(batches[i][0], jax.random.fold_in(rng, i)), np.float64)
  start = time.perf_counter()
  outs = across_processes_lib.map_chunks(run, len(batches)) if across_processes else map(run, range(len(batches)))
  values = [out[mask > 0] for out, (_, mask) in zip(outs, batches)]
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
