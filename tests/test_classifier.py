"""The domain feature network: the classifier module, its task, training through the loop, and loading it."""
import os

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from gen_jax.data import Dataset, DataSpec, load_dataset
from gen_jax.drivers.scoring import load_domain_classifier
from gen_jax.eval.features import extract_features
from gen_jax.eval.sample_quality import sample_quality
from gen_jax.models.classifier import Classifier, images_to_classifier_input
from gen_jax.models.classifier_task import classifier_task, random_shift
from gen_jax.drivers import loop
from gen_jax.train.metrics_log import read_metrics
from experiments.configs import classifier_digits, classifier_mnist
from tests.test_train_loop import tiny_toy_config

DIGITS = DataSpec("digits", (8, 8, 1), 17, "image")
MNIST = DataSpec("mnist_split", (28, 28, 1), 256, "image")


def _images(spec, n, seed=0):
  return np.random.default_rng(seed).integers(0, spec.num_levels, (n, *spec.event_shape)).astype(np.uint8)


def test_input_is_the_centre_of_each_dequantization_bin():
  images = np.arange(17, dtype=np.uint8).reshape(1, 17, 1, 1)
  spec = DataSpec("strip", (17, 1, 1), 17, "image")
  x = images_to_classifier_input(images, spec)
  assert x.dtype == jnp.float32
  np.testing.assert_allclose(x, (images + 0.5) / 17, rtol=1e-7)
  np.testing.assert_array_equal(np.floor(np.asarray(x, np.float64) * 17), images)  # inside x's bin


@pytest.mark.parametrize("spec,channels", [(DIGITS, (32, 64)), (MNIST, (16, 32, 64))], ids=["digits", "mnist"])
def test_features_and_logits_shapes_and_consistency(spec, channels):
  model = Classifier(event_shape=spec.event_shape, channels=channels, feature_dim=24, num_classes=7)
  x = images_to_classifier_input(_images(spec, 5), spec)
  params = model.init(jax.random.key(0), x)
  features = model.apply(params, x, method=model.features)
  logits = jax.jit(lambda p, x: model.apply(p, x, method=model.logits))(params, x)
  assert features.shape == (5, 24) and logits.shape == (5, 7)
  assert np.all(np.asarray(features) >= 0)  # post-ReLU
  # The logits are the last Dense layer applied to the features, and __call__ is `logits`.
  dense = params["params"]["logit_layer"]
  np.testing.assert_allclose(logits, features @ dense["kernel"] + dense["bias"], rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(model.apply(params, x), logits, rtol=1e-6, atol=1e-6)
  # Each example's outputs depend on that example only.
  np.testing.assert_allclose(model.apply(params, x[:2]), logits[:2], rtol=1e-5, atol=1e-5)


def test_bad_inputs_are_errors_that_say_what_was_expected():
  model = Classifier(event_shape=(8, 8, 1))
  x = images_to_classifier_input(_images(DIGITS, 2), DIGITS)
  params = model.init(jax.random.key(0), x)
  with pytest.raises(ValueError, match=r"must lie in \[0.0, 1.0\]"):
    model.apply(params, _images(DIGITS, 2).astype(np.float32))  # raw levels, not model space
  with pytest.raises(ValueError, match="must have shape"):
    model.apply(params, jnp.zeros((2, 8, 8, 3)))
  with pytest.raises(ValueError, match="float32"):
    model.apply(params, np.zeros((2, 8, 8, 1), np.float64))
  with pytest.raises(ValueError, match="dtype uint8"):
    images_to_classifier_input(np.asarray(x), DIGITS)
  with pytest.raises(ValueError, match="must have shape"):
    images_to_classifier_input(np.zeros((2, 28, 28, 1), np.uint8), DIGITS)
  with pytest.raises(ValueError, match=r"num_levels=17\) must lie in \[0, 16\]"):
    images_to_classifier_input(np.full((2, 8, 8, 1), 17, np.uint8), DIGITS)
  with pytest.raises(ValueError, match="needs an image dataset"):
    images_to_classifier_input(np.zeros((2, 2), np.float32), DataSpec("toy2d/rings", (2,), None, "vector"))
  with pytest.raises(ValueError, match="divisible by 8"):
    Classifier(event_shape=(28, 28, 1), channels=(8, 8, 8, 8)).init(jax.random.key(0), jnp.zeros((1, 28, 28, 1)))
  with pytest.raises(ValueError, match="augment_shift must be a non-negative integer"):
    classifier_task(model, DIGITS, optax.adam(1e-3), augment_shift=-1)


def test_task_scores_each_example_by_its_label():
  model = Classifier(event_shape=(8, 8, 1), channels=(8,), feature_dim=16)
  task = classifier_task(model, DIGITS, optax.adam(1e-3))
  assert task.uses_labels and task.sample is None
  images, labels = _images(DIGITS, 6), np.array([0, 1, 2, 3, 9, 10], np.int32)  # 10: not a class
  params, _ = task.init(jax.random.key(0), {"data": images, "label": labels})
  metrics = jax.jit(task.evaluate)(params, {"data": images, "label": labels}, jax.random.key(1))
  logits = np.asarray(model.apply(params["model"], images_to_classifier_input(images, DIGITS)), np.float64)
  log_softmax = logits - np.log(np.sum(np.exp(logits - logits.max(1, keepdims=True)), 1, keepdims=True)) \
      - logits.max(1, keepdims=True)
  np.testing.assert_allclose(metrics["nll"][:5], -log_softmax[np.arange(5), labels[:5]], rtol=1e-5)
  assert np.isnan(metrics["nll"][5])  # an out-of-range label stops the loop (non-finite loss)
  np.testing.assert_array_equal(metrics["accuracy"], (logits.argmax(1) == labels).astype(np.float32))


def test_random_shift_translates_each_image_within_the_bound():
  images = _images(MNIST, 16)
  shifted = np.asarray(random_shift(jax.random.key(0), images, 2))
  padded = np.pad(images, ((0, 0), (2, 2), (2, 2), (0, 0)))
  offsets = set()
  for out, pad in zip(shifted, padded):
    matches = [(i, j) for i in range(5) for j in range(5) if np.array_equal(pad[i:i + 28, j:j + 28], out)]
    assert len(matches) == 1, matches
    offsets.add(matches[0])
  assert len(offsets) > 1  # each example draws its own offset
  np.testing.assert_array_equal(random_shift(jax.random.key(0), images, 0), images)


def test_a_labelled_task_on_a_dataset_without_labels_is_an_error():
  task = classifier_task(Classifier(event_shape=(8, 8, 1)), DIGITS, optax.adam(1e-3))
  with pytest.raises(ValueError, match="trains on labels, but dataset 'digits' has none"):
    loop.examples(task, Dataset(data=_images(DIGITS, 4), labels=None, spec=DIGITS))


def test_configs_build_and_know_their_cpu_variant():
  for module in (classifier_digits, classifier_mnist):
    config = module.get_config("cpu")
    assert config.model.name == "classifier" and config.train.num_steps < module.get_config().train.num_steps
    with pytest.raises(ValueError, match="unknown config variant"):
      module.get_config("gpu")


def test_digits_classifier_trains_and_reloads_as_the_domain_feature_network(tmp_path):
  """A few hundred steps reach far above chance (10%); the loaded feature network scores the same."""
  config = classifier_digits.get_config("cpu")
  config.train.num_steps = 300
  for name in ("log_every", "eval_every", "sample_every", "save_every"):
    config.train[name] = 150
  loop.train_and_evaluate(config, str(tmp_path))
  evals = [m for m in read_metrics(os.path.join(tmp_path, "metrics.jsonl")) if "eval/accuracy" in m]
  assert [m["step"] for m in evals] == [150, 300]
  assert evals[-1]["eval/accuracy"] > 0.8, evals
  assert not os.path.exists(tmp_path / "samples")  # a classifier writes no samples

  test = load_dataset("digits", "test")
  classifier = load_domain_classifier(str(tmp_path), batch_size=64)  # 297 = 4 x 64 + a padded 41
  features, logits = classifier(test.data)
  assert features.shape == (len(test), 128) and logits.shape == (len(test), 10)
  assert classifier.feature_dim == 128 and classifier.num_classes == 10 and classifier.spec.name == "digits"
  accuracy = np.mean(np.argmax(logits, 1) == test.labels)
  assert accuracy == pytest.approx(evals[-1]["eval/accuracy"], abs=1e-9)
  np.testing.assert_allclose(load_domain_classifier(str(tmp_path))(test.data[:70])[0], features[:70],
                             rtol=1e-5, atol=1e-5)  # another batch size, the same features

  # The same network through the evaluation module: its features, and FID 0 of a set against itself.
  network = classifier.feature_network()
  extracted = extract_features(network, test.data, batch_size=100)
  np.testing.assert_allclose(extracted["features"], features, rtol=1e-5, atol=1e-5)
  np.testing.assert_allclose(extracted["logits"], logits, rtol=1e-5, atol=1e-5)
  train = load_dataset("digits", "train").data[:297]
  scores = sample_quality(network, test.data, test.data, ("fid",))
  assert abs(scores["fid"]) < 1e-6 < sample_quality(network, test.data, train, ("fid",))["fid"]

  empty_features, empty_logits = classifier(test.data[:0])
  assert empty_features.shape == (0, 128) and empty_logits.shape == (0, 10)
  with pytest.raises(ValueError, match="must lie in"):
    classifier(np.full((3, 8, 8, 1), 255, np.uint8))  # 8-bit levels, but digits has 17
  with pytest.raises(ValueError, match="must have shape"):
    classifier(np.zeros((3, 28, 28, 1), np.uint8))


def test_loading_a_run_that_is_not_a_classifier_is_an_error(tmp_path):
  loop.train_and_evaluate(tiny_toy_config(num_steps=5), str(tmp_path))
  with pytest.raises(ValueError, match="holds a 'realnvp' run; expected a 'classifier' run"):
    load_domain_classifier(str(tmp_path))
