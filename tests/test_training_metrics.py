"""Sample-quality metrics wired into training, and the metrics CLI with a domain classifier."""
import json
import os

import jax
import numpy as np
import pytest

import gen_jax
from experiments.configs import classifier_digits, realnvp_digits
from gen_jax.data import load_dataset
from gen_jax.eval import image_folder
from gen_jax.drivers import scoring
from gen_jax.cli import metrics as metrics_cli
from gen_jax.eval import sample_quality
from gen_jax.cli import score_run
from gen_jax.eval import training_metrics
from gen_jax.drivers.scoring import load_domain_classifier
from gen_jax.drivers import loop
from tests.test_train_loop import tiny_toy_config


def read_metrics(workdir):
  with open(os.path.join(workdir, "metrics.jsonl")) as f:
    return [json.loads(line) for line in f]


@pytest.fixture(scope="module")
def classifier_dir(tmp_path_factory):
  workdir = str(tmp_path_factory.mktemp("classifier_digits"))
  config = classifier_digits.get_config("cpu")
  config.train.num_steps = 150
  for name in ("log_every", "eval_every", "sample_every", "save_every"):
    config.train[name] = 150
  loop.train_and_evaluate(config, workdir)
  return workdir


def test_a_flow_run_logs_sample_metrics_that_load_run_reproduces(tmp_path, classifier_dir, capsys):
  config = realnvp_digits.get_config("cpu,metrics")
  config.eval.feature_network = f"classifier:{classifier_dir}"
  config.model.num_couplings_per_scale, config.model.hidden = 2, 8
  config.train.num_steps = 40
  for name in ("log_every", "eval_every", "sample_every", "save_every"):
    config.train[name] = 20
  config.eval.sample_metrics = ("fid", "kid", "prdc", "is")
  config.eval.sample_metrics_every, config.eval.sample_metrics_num_samples = 20, 150
  workdir = str(tmp_path / "flow")
  loop.train_and_evaluate(config, workdir)
  logged = [m for m in read_metrics(workdir) if "sample/fid" in m]
  assert [m["step"] for m in logged] == [20, 40]
  expected = {"sample/fid", "sample/kid_mean", "sample/kid_std", "sample/precision", "sample/recall",
              "sample/density", "sample/coverage", "sample/is_mean", "sample/is_std", "sample/seconds"}
  assert expected <= set(logged[-1])
  assert 0 <= logged[-1]["sample/precision"] <= 1 and logged[-1]["sample/fid"] > 0

  run = gen_jax.load_run(workdir)
  network, convert = scoring.feature_network_for(run.config.eval.feature_network, run.spec)
  score = training_metrics.make_sample_metrics(run.config.eval, network, convert, load_dataset("digits", "test").data,
                                               jax.jit(run.task.sample, static_argnums=2))
  again = score(run.all_params, jax.random.fold_in(jax.random.fold_in(jax.random.key(config.seed), 5), 40))
  for name in expected - {"sample/seconds"}:
    assert again[name] == pytest.approx(logged[-1][name], rel=1e-4, abs=1e-6), name

  # The likelihood module's bits/dim of the same run: its own estimator, other dequantization noise.
  report = scoring.run_likelihood(run, "exact")
  eval_bpd = [m for m in read_metrics(workdir) if "eval/bpd" in m][-1]["eval/bpd"]
  assert report.bits_per_dim == pytest.approx(eval_bpd, rel=5e-3) and report.num_examples == 297

  # One README row from the run.
  assert score_run.main(["--workdir", workdir, "--feature-network", f"classifier:{classifier_dir}",
                         "--num-samples", "150", "--metrics", "fid,prdc"]) == 0
  row = capsys.readouterr().out.strip().splitlines()[-1].strip("|").split("|")
  assert row[0].strip() == workdir and float(row[1]) == pytest.approx(report.bits_per_dim, abs=1e-4)
  assert all(np.isfinite(float(v)) for v in row[2:]) and len(row) == 2 + 5


def test_score_run_data_row_is_the_training_images_scored_as_samples(classifier_dir, capsys):
  assert score_run.main(["--data", "digits", "--feature-network", f"classifier:{classifier_dir}",
                         "--num-samples", "300", "--metrics", "fid,kid"]) == 0
  row = capsys.readouterr().out.strip().splitlines()[-1].strip("|").split("|")
  direct = sample_quality.sample_quality(load_domain_classifier(classifier_dir).feature_network(),
                                         load_dataset("digits", "test").data,
                                         load_dataset("digits", "train").data[:300], ("fid", "kid"),
                                         kid_subset_size=297)
  assert float(row[2]) == pytest.approx(direct["fid"], rel=1e-3)
  assert float(row[3]) == pytest.approx(direct["kid_mean"], rel=1e-3)


def test_vector_runs_score_samples_with_the_identity_network(tmp_path):
  config = tiny_toy_config(num_steps=10, k=5)
  config.eval.sample_metrics, config.eval.feature_network = ("fid", "prdc"), "identity"
  config.eval.sample_metrics_every, config.eval.sample_metrics_num_samples = 10, 300
  loop.train_and_evaluate(config, str(tmp_path))
  last = read_metrics(str(tmp_path))[-1]
  assert last["step"] == 10 and np.isfinite(last["sample/fid"]) and 0 <= last["sample/coverage"] <= 1


def test_bad_sample_metric_configs_are_errors():
  config = tiny_toy_config(num_steps=10, k=5)
  config.eval.sample_metrics = ("fid",)
  config.eval.sample_metrics_every = 7
  with pytest.raises(ValueError, match="sample_metrics_every must be a positive multiple of train.steps_per_call"):
    training_metrics.check_config(config.eval, 5)
  config.eval.sample_metrics_every, config.eval.feature_network = 10, "vgg"
  with pytest.raises(ValueError, match="unknown eval.feature_network 'vgg'"):
    training_metrics.check_config(config.eval, 5)
  config.eval.sample_metrics = ("fid", "lpips")
  with pytest.raises(ValueError, match="unknown sample-quality metrics"):
    training_metrics.check_config(config.eval, 5)
  digits = load_dataset("digits", "test").spec
  with pytest.raises(ValueError, match="'identity' is for vector data"):
    scoring.feature_network_for("identity", digits)


def test_metrics_cli_with_the_domain_classifier_reads_8bit_folders(tmp_path, classifier_dir, capsys):
  test = load_dataset("digits", "test").data
  train = load_dataset("digits", "train").data[:200]
  image_folder.write_image_folder(tmp_path / "real", test, num_levels=17)
  image_folder.write_image_folder(tmp_path / "fake", train, num_levels=17)
  chunks = list(image_folder.iterate_image_folder(str(tmp_path / "real")))
  np.testing.assert_array_equal(
      image_folder.eight_bit_to_levels(image_folder.to_grey(np.concatenate(chunks)), 17), test)
  assert metrics_cli.main([str(tmp_path / "real"), str(tmp_path / "fake"), "--classifier", classifier_dir,
                           "--metrics", "fid,is,prdc", "--kid-subsets", "3"]) == 0
  printed = dict(line.split(": ") for line in capsys.readouterr().out.strip().splitlines())
  direct = sample_quality.sample_quality(load_domain_classifier(classifier_dir).feature_network(), test, train,
                                         ("fid", "is", "prdc"))
  for name, value in direct.items():
    assert float(printed[name.upper()]) == pytest.approx(value, rel=1e-5, abs=1e-7), name
