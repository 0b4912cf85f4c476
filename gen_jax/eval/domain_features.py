"""The domain feature network: a classifier trained on the dataset itself, for FID / KID / IS / precision-recall.

Inception's ImageNet features say little about 8x8 digits or 28x28 MNIST, so on such datasets the
evaluation module uses the penultimate layer of `gen_jax.models.classifier.Classifier`, trained on
the dataset's labels (`experiments/configs/classifier_*.py`):

  classifier = load_domain_classifier("runs/classifier_digits")
  features, logits = classifier(images)      # uint8 [N, H, W, C] -> [N, F], [N, num_classes]
  sample_quality(classifier.feature_network(), real, fake, ("fid", "kid", "is", "prdc"))

Images enter as uint8 levels of the run's dataset (values < `spec.num_levels`), exactly as the
classifier saw them in training (`images_to_classifier_input`: bin centres (x + 1/2) / L).
"""
from __future__ import annotations

import dataclasses
import functools

import jax
import numpy as np

from gen_jax import checks
from gen_jax.data import padded_batches
from gen_jax.data.spec import DataSpec, check_examples
from gen_jax.eval.features import FeatureNetwork
from gen_jax.models.classifier import images_to_classifier_input
from gen_jax.run import Run, load_run

DEFAULT_BATCH_SIZE = 500


@dataclasses.dataclass(frozen=True, eq=False)
class DomainClassifier:
  """A trained classifier as a feature network: `features, logits = classifier(images_uint8)`.

  Attributes:
    run: the loaded training run (config, module, EMA params).
    batch_size: images per jitted call; the last partial batch is padded and masked.
  Properties: `spec` (the dataset the classifier was trained on; images must match it),
  `feature_dim` (F) and `num_classes`.
  """
  run: Run
  batch_size: int = DEFAULT_BATCH_SIZE

  def __post_init__(self):
    checks.check_positive_int(self.batch_size, "batch_size")

  @property
  def spec(self) -> DataSpec:
    return self.run.spec

  @property
  def feature_dim(self) -> int:
    return self.run.model.feature_dim

  @property
  def num_classes(self) -> int:
    return self.run.model.num_classes

  @functools.cached_property
  def _features_and_logits(self):
    model = self.run.model
    return jax.jit(lambda params, images: model.apply(
        params, images_to_classifier_input(images, self.spec), method=model.features_and_logits))

  def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, H, W, C] -> (features float32 [N, F], logits float32 [N, num_classes]).

    Raises:
      ValueError: `images` is not uint8 [N, *spec.event_shape] with values < spec.num_levels.
    """
    check_examples(images, self.spec, "images")
    features, logits = [], []
    for batch, mask in padded_batches(np.asarray(images), self.batch_size):
      f, l = jax.device_get(self._features_and_logits(self.run.params, batch))
      real = mask.astype(bool)
      features.append(f[real])
      logits.append(l[real])
    if not features:  # N = 0
      return np.zeros((0, self.feature_dim), np.float32), np.zeros((0, self.num_classes), np.float32)
    return np.concatenate(features), np.concatenate(logits)


  def feature_network(self) -> FeatureNetwork:
    """This classifier as the evaluation module's `FeatureNetwork` (outputs "features" and "logits"):

      sample_quality(classifier.feature_network(), real, fake, ("fid", "kid", "is", "prdc"))
    """
    def apply(images):
      check_examples(images, self.spec, "images")
      features, logits = self._features_and_logits(self.run.params, images)
      return {"features": features, "logits": logits}

    return FeatureNetwork(f"classifier-{self.spec.name}", apply, ("features", "logits"))


def load_domain_classifier(workdir: str, step: int | None = None,
                           batch_size: int = DEFAULT_BATCH_SIZE) -> DomainClassifier:
  """Loads the classifier run in `workdir` (its EMA params at `step`, default the latest) as a feature network.

  Raises:
    ValueError: the run in `workdir` is not a classifier (config.model.name != 'classifier').
    FileNotFoundError: `workdir` is not a gen_jax run.
  """
  run = load_run(workdir, step)
  if run.config.model.name != "classifier":
    raise ValueError(f"{workdir} holds a {run.config.model.name!r} run; expected a 'classifier' run "
                     "(experiments/configs/classifier_*.py)")
  return DomainClassifier(run=run, batch_size=batch_size)
