"""Scoring a loaded run: its likelihood on a dataset split, and the feature networks configs name.

  run_likelihood(run, estimator)          `gen_jax.eval.likelihood.evaluate_likelihood` on the run's split
  load_domain_classifier(workdir)         a trained classifier run as `gen_jax.eval`'s DomainClassifier
  feature_network_for(name, spec)         "classifier:RUN_DIR" | "inception" | "identity" -> (network, convert)

These load runs and datasets, so they stand in the driver layer; `gen_jax.eval` itself takes arrays
and feature functions only.
"""
from __future__ import annotations

import functools
import math

import jax

from gen_jax import checks
from gen_jax.data import load_dataset
from gen_jax.drivers.run import load_run
from gen_jax.eval import domain_features
from gen_jax.eval import features
from gen_jax.eval import image_folder
from gen_jax.eval import likelihood
from gen_jax.eval import training_metrics
from gen_jax.models.classifier import images_to_classifier_input, level_values_to_classifier_input


def run_likelihood(run, estimator: str = "exact", split: str = "test", batch_size: int = 500, seed: int = 0,
                   data_dir: str | None = None, num_examples: int | None = None, **options) -> likelihood.LikelihoodReport:
  """`evaluate_likelihood` for a loaded run (`gen_jax.load_run`) on its dataset's `split`.

  `num_examples`: only the split's first N examples (for costly estimators); `options` go to the
  estimator (e.g. k=5000 for IWAE).
  """
  likelihood.check_estimator(estimator, run.task.log_likelihoods)
  fn = functools.partial(run.task.log_likelihoods[estimator], **options)
  dataset = load_dataset(run.config.data.name, split, data_dir if data_dir is not None else run.config.data.data_dir)
  num_dims = math.prod(run.spec.event_shape) if run.spec.num_levels is not None else None
  data = dataset.data
  if num_examples is not None:
    checks.check_positive_int(num_examples, "num_examples")
    if num_examples > len(data):
      raise ValueError(f"num_examples={num_examples} exceeds the {len(data)} examples of the {split} split")
    data = data[:num_examples]
  return likelihood.evaluate_likelihood(lambda batch, rng: fn(run.all_params, batch, rng), data,
                             rng=jax.random.key(seed), batch_size=batch_size, num_dims=num_dims, estimator=estimator)


def load_domain_classifier(workdir: str, step: int | None = None,
                           batch_size: int = domain_features.DEFAULT_BATCH_SIZE) -> domain_features.DomainClassifier:
  """Loads the classifier run in `workdir` (its EMA params at `step`, default the latest) as a feature network.

  Raises:
    ValueError: the run in `workdir` is not a classifier (config.model.name != 'classifier').
    FileNotFoundError: `workdir` is not a gen_jax run.
  """
  run = load_run(workdir, step)
  if run.config.model.name != "classifier":
    raise ValueError(f"{workdir} holds a {run.config.model.name!r} run; expected a 'classifier' run "
                     "(experiments/configs/classifier_*.py)")
  model, params, spec = run.model, run.params, run.spec
  features_and_logits = jax.jit(lambda images: model.apply(params, images_to_classifier_input(images, spec),
                                                           method=model.features_and_logits))
  features_of_values = jax.jit(lambda values: model.apply(params, level_values_to_classifier_input(values, spec),
                                                          method=model.features_and_logits)[0])
  return domain_features.DomainClassifier(features_and_logits, spec, model.feature_dim, model.num_classes, batch_size,
                                          features_of_values)


def feature_network_for(name, spec):
  """(FeatureNetwork, convert) where convert maps the task's samples to the network's input; the network
  runs on this process's devices (on many processes each featurizes its own chunks)."""
  if name == "identity":
    return training_metrics.identity_network(spec), lambda x: x
  if name.startswith("classifier:"):
    classifier = load_domain_classifier(name.split(":", 1)[1])
    if classifier.spec.event_shape != spec.event_shape or classifier.spec.num_levels != spec.num_levels:
      raise ValueError(f"the classifier at {name} was trained on {classifier.spec.name} "
                       f"{classifier.spec.event_shape}, {classifier.spec.num_levels} levels; the run's data is "
                       f"{spec.name} {spec.event_shape}, {spec.num_levels} levels")
    return classifier.feature_network(), lambda x: x
  if name == "inception":
    network = features.inception_network(devices=jax.local_devices())  # each process its own share
    if spec.num_levels == 256:
      return network, lambda x: x
    return network, lambda x: image_folder.levels_to_8bit(x, spec.num_levels)
  raise ValueError(f"unknown feature network '{name}': expected one of {training_metrics.FEATURE_NETWORKS}")
