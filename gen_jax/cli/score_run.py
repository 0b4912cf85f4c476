"""Scores a finished run: test likelihood and sample quality, one markdown row (the tables of docs/results/*.md).

  python -m gen_jax.cli.score_run --workdir runs/glow_digits \
      --feature-network classifier:runs/classifier_digits [--metrics fid,kid,prdc,is] [--num-samples 1000]
  python -m gen_jax.cli.score_run --data digits --feature-network classifier:runs/classifier_digits
  python -m gen_jax.cli.score_run --workdir runs/ddpm_digits --feature-network classifier:runs/classifier_digits \
      --estimator none --set diffusion.sample_steps=50 --set diffusion.sample_eta=0.0      (DDIM-50 samples)

`--data NAME` scores real training images in place of samples: the floor a perfect model would reach
with the same number of samples (FID is biased upwards at small sample sizes; KID is not).
Samples are drawn with the run's EMA params and key `fold_in(key(--seed), 5)`.
"""
import argparse
import sys

import jax

from gen_jax.cli.likelihood import parse_options
from gen_jax.data import load_dataset
from gen_jax.drivers import scoring
from gen_jax.drivers.run import load_run
from gen_jax.eval import sample_quality
from gen_jax.eval import training_metrics


def main(argv=None):
  parser = argparse.ArgumentParser(prog="python -m gen_jax.cli.score_run", description=__doc__.split("\n")[0])
  source = parser.add_mutually_exclusive_group(required=True)
  source.add_argument("--workdir", help="a gen_jax run directory")
  source.add_argument("--data", help="a dataset name: score its training images as if they were samples")
  parser.add_argument("--feature-network", required=True, help=f"one of {training_metrics.FEATURE_NETWORKS}")
  parser.add_argument("--metrics", default="fid,kid,prdc,is")
  parser.add_argument("--num-samples", type=int, default=1000)
  parser.add_argument("--estimator", default="exact",
                      help="likelihood estimator (see gen_jax.eval.likelihood.ESTIMATORS), or 'none' to skip it")
  parser.add_argument("--set", action="append", default=[], metavar="FIELD=VALUE",
                      help="override a config field of the run before sampling, e.g. diffusion.sample_steps=50 "
                           "diffusion.sample_eta=0.0 (a diffusion model's sampler); repeatable")
  parser.add_argument("--seed", type=int, default=0)
  parser.add_argument("--batch-size", type=int, default=100, help="feature-network batch")
  args = parser.parse_args(argv)
  metrics = sample_quality.check_metric_names([m for m in args.metrics.split(",") if m])

  if args.workdir:
    overrides = parse_options(args.set)
    run = load_run(args.workdir, overrides=overrides)
    spec = run.spec
    name = " ".join([args.workdir] + args.set)
    test = load_dataset(run.config.data.name, "test", run.config.data.data_dir)
    report = None if args.estimator == "none" else scoring.run_likelihood(run, args.estimator, seed=args.seed)
    sample_fn = jax.jit(run.task.sample, static_argnums=2)
    chunk = min(args.num_samples, 500)
    key = jax.random.fold_in(jax.random.key(args.seed), 5)
    samples = training_metrics.draw_samples(sample_fn, run.all_params, key, args.num_samples, chunk)
  else:
    test = load_dataset(args.data, "test")
    spec, name, report = test.spec, f"data: {args.data} train", None
    train = load_dataset(args.data, "train").data
    if len(train) < args.num_samples:
      raise ValueError(f"{args.data} has {len(train)} training images, fewer than --num-samples {args.num_samples}")
    samples = train[:args.num_samples]
  network, convert = scoring.feature_network_for(args.feature_network, spec)
  scores = sample_quality.sample_quality(network, convert(test.data), convert(samples), metrics,
                                         batch_size=args.batch_size, kid_subset_size=min(1000, len(test)))
  columns = ["bits/dim" if spec.num_levels else "NLL"] + list(scores)
  likelihood_value = "" if report is None else f"{report.bits_per_dim if spec.num_levels else report.nll_nats:.4f}"
  print("| run | " + " | ".join(columns) + " |")
  print("|---" * (len(columns) + 1) + "|")
  print(f"| {name} | {likelihood_value} | " + " | ".join(f"{v:.4g}" for v in scores.values()) + " |")
  return 0


if __name__ == "__main__":
  sys.exit(main())
