"""The domain feature network: a classifier trained on the dataset itself, for FID / KID / IS / precision-recall.

Inception's ImageNet features say little about 8x8 digits or 28x28 MNIST, so on such datasets the
evaluation module uses the penultimate layer of `gen_jax.models.classifier.Classifier`, trained on
the dataset's labels (`experiments/configs/classifier_*.py`):

  classifier = gen_jax.drivers.scoring.load_domain_classifier("runs/classifier_digits")
  features, logits = classifier(images)      # uint8 [N, H, W, C] -> [N, F], [N, num_classes]
  sample_quality(classifier.feature_network(), real, fake, ("fid", "kid", "is", "prdc"))

Images enter as uint8 levels of the run's dataset (values < `spec.num_levels`), exactly as the
classifier saw them in training. `DomainClassifier` takes the network as a function of such images
(loading a run is the driver layer's: `gen_jax.drivers.scoring.load_domain_classifier`).
"""
from __future__ import annotations

import dataclasses
from typing import Callable

import jax
import numpy as np

from gen_jax import checks
from gen_jax.data import padded_batches
from gen_jax.data.spec import DataSpec, check_examples
from gen_jax.eval.features import FeatureNetwork

DEFAULT_BATCH_SIZE = 500


@dataclasses.dataclass(frozen=True, eq=False)
class DomainClassifier:
  """A trained classifier as a feature network: `features, logits = classifier(images_uint8)`.

  Attributes:
    features_and_logits: a (jitted) pure function, uint8 images [B, *spec.event_shape] ->
      (features [B, F], logits [B, num_classes]), params closed over.
    spec: the dataset the classifier was trained on; images must match it.
    feature_dim: F.
    num_classes: the classifier's classes.
    batch_size: images per call; the last partial batch is padded and masked.
    features_of_values: features of images given as levels in real numbers (float32 [B, ...], e.g. a
      decoded mean), differentiable, for path lengths in feature space; None if not given.
  """
  features_and_logits: Callable[[np.ndarray], tuple[jax.Array, jax.Array]]
  spec: DataSpec
  feature_dim: int
  num_classes: int
  batch_size: int = DEFAULT_BATCH_SIZE
  features_of_values: Callable[[jax.Array], jax.Array] | None = None

  def __post_init__(self):
    checks.check_positive_int(self.batch_size, "batch_size")

  def __call__(self, images: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images [N, H, W, C] -> (features float32 [N, F], logits float32 [N, num_classes]).

    Raises:
      ValueError: `images` is not uint8 [N, *spec.event_shape] with values < spec.num_levels.
    """
    check_examples(images, self.spec, "images")
    features, logits = [], []
    for batch, mask in padded_batches(np.asarray(images), self.batch_size):
      f, l = jax.device_get(self.features_and_logits(batch))
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
      features, logits = self.features_and_logits(images)
      return {"features": features, "logits": logits}

    return FeatureNetwork(f"classifier-{self.spec.name}", apply, ("features", "logits"))
