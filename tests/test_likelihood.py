"""The likelihood evaluation: every example once, the right units, and a run's own estimator."""
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

import gen_jax
from gen_jax.cli import likelihood as likelihood_cli
from gen_jax.drivers import scoring
from gen_jax.eval import likelihood
from gen_jax.drivers import loop
from tests.test_train_loop import tiny_toy_config


def test_closed_form_density_over_padded_batches():
  """A Gaussian log-density: the report equals scipy's mean NLL over all 7 examples (3 + 3 + 1 padded)."""
  x = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
  log_density = lambda batch, rng: jnp.sum(jax.scipy.stats.norm.logpdf(batch), axis=-1)
  report = likelihood.evaluate_likelihood(log_density, x, rng=jax.random.key(0), batch_size=3)
  expected = -stats.norm.logpdf(x.astype(np.float64)).sum(-1)
  assert report.num_examples == 7 and report.bits_per_dim is None
  assert report.nll_nats == pytest.approx(expected.mean(), rel=1e-6)
  assert report.nll_stderr == pytest.approx(expected.std(ddof=1) / math.sqrt(7), rel=1e-5)
  assert report.seconds_per_1k > 0 and "exact" in report.relation
  # bits/dim of discrete data: nats / (D ln 2).
  discrete = likelihood.evaluate_likelihood(log_density, x, rng=jax.random.key(0), batch_size=3, num_dims=3)
  assert discrete.bits_per_dim == pytest.approx(expected.mean() / (3 * math.log(2)), rel=1e-6)


def test_non_finite_values_and_unknown_estimators_are_errors():
  x = np.zeros((4, 2), np.float32)
  with pytest.raises(FloatingPointError, match="non-finite log-likelihood .* for example 0"):
    likelihood.evaluate_likelihood(lambda b, r: jnp.full(b.shape[0], jnp.nan), x, rng=jax.random.key(0))
  with pytest.raises(ValueError, match="unknown likelihood estimator 'ais'"):
    likelihood.check_estimator("ais", {"exact": None})
  with pytest.raises(ValueError, match="this model has no 'elbo' estimator: it has \\['exact'\\]"):
    likelihood.check_estimator("elbo", {"exact": None})
  with pytest.raises(ValueError, match="N >= 1"):
    likelihood.evaluate_likelihood(lambda b, r: b[:, 0], x[:0], rng=jax.random.key(0))


def test_a_flow_run_scores_its_test_split_as_its_own_evaluation(tmp_path, capsys):
  config = tiny_toy_config(num_steps=10, k=5)
  loop.train_and_evaluate(config, str(tmp_path))
  with open(os.path.join(tmp_path, "metrics.jsonl")) as f:
    logged = [json.loads(line) for line in f if "eval/nll" in line][-1]["eval/nll"]
  run = gen_jax.load_run(str(tmp_path))
  report = scoring.run_likelihood(run, "exact", batch_size=300)
  assert report.nll_nats == pytest.approx(logged, rel=1e-5)  # 2-D data: exact, no noise
  assert report.num_examples == len(gen_jax.data.load_dataset(config.data.name, "test"))
  assert likelihood_cli.main(["--workdir", str(tmp_path)]) == 0
  assert f"| exact | {report.nll_nats:.4f}" in capsys.readouterr().out
