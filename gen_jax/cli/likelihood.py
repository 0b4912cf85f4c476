"""Test log-likelihood of a run, in nats and bits/dim, with the estimator named and its cost.

  python -m gen_jax.cli.likelihood --workdir runs/quickstart [--estimator exact] [--split test]
      [--option NAME=VALUE ...]   (estimator options, e.g. divergence=exact for probability_flow)
"""
from __future__ import annotations

import argparse
import ast
import sys

from gen_jax.drivers import scoring
from gen_jax.drivers.run import load_run
from gen_jax.eval import likelihood


def parse_options(pairs: list[str]) -> dict:
  """["divergence=exact", "rtol=1e-5"] -> {"divergence": "exact", "rtol": 1e-05} (also dotted config
  field names, "diffusion.sample_steps=50")."""
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
  parser = argparse.ArgumentParser(prog="python -m gen_jax.cli.likelihood", description=__doc__.split("\n")[0])
  parser.add_argument("--workdir", required=True, help="a gen_jax run directory")
  parser.add_argument("--estimator", default="exact", choices=sorted(likelihood.ESTIMATORS))
  parser.add_argument("--split", default="test")
  parser.add_argument("--batch-size", type=int, default=500)
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--k", type=int, default=None, help="samples of the IWAE bound")
  parser.add_argument("--num-examples", type=int, default=None, help="only the split's first N examples")
  parser.add_argument("--option", action="append", default=[], metavar="NAME=VALUE",
                      help="an estimator option, e.g. divergence=exact, rtol=1e-5, num_step_samples=100 "
                           "(VALUE read as a Python literal, else a string); repeatable")
  args = parser.parse_args(argv)
  run = load_run(args.workdir)
  options = {} if args.k is None else {"k": args.k}
  options.update(parse_options(args.option))
  report = scoring.run_likelihood(run, args.estimator, args.split, args.batch_size, args.seed,
                          num_examples=args.num_examples, **options)
  print("| run | estimator | NLL (nats) | bits/dim | examples | s / 1k examples |\n|---|---|---|---|---|---|")
  print(report.markdown_row(args.workdir))
  print(f"({args.estimator}: {report.relation})")
  return 0


if __name__ == "__main__":
  sys.exit(main())
