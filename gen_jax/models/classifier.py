"""A small convolutional image classifier: the *domain feature network* of the evaluation module.

Inception's ImageNet features say little about 8x8 digits or 28x28 MNIST, so on such datasets FID,
KID, IS and precision-recall use the features of this classifier, trained on the dataset's labels
(`gen_jax.models.classifier_task`, configs `classifier_*.py`; `gen_jax.eval.domain_features` loads a
trained one).

Architecture, for `channels = (c_1, ..., c_S)`:

  stage s = 1..S:   [2x2 average pool if s > 1] -> `convs_per_stage` x (conv3x3 "SAME" -> relu), c_s channels
  global average pool over H, W                                  [B, c_S]
  features = relu(Dense(feature_dim))                            [B, feature_dim]   (what FID uses)
  logits = Dense(num_classes)(features)                          [B, num_classes]

Input convention: float32 images [B, H, W, C] in [0, 1], the flows' model space. Discrete images with
L levels x in {0, ..., L-1} enter at the centres of their dequantization bins, (x + 1/2) / L
(`images_to_classifier_input`), the noiseless version of the flows' y = (x + u) / L.
"""
from __future__ import annotations

import flax.linen as nn
import jax
import jax.numpy as jnp

from gen_jax import checks
from gen_jax.data.spec import DataSpec, check_examples


def check_image_spec(spec: DataSpec) -> None:
  if spec.kind != "image":
    raise ValueError(f"the classifier needs an image dataset (DataSpec.kind 'image'), got {spec.kind!r} "
                     f"for {spec.name}")


def images_to_classifier_input(images: jax.Array, spec: DataSpec) -> jax.Array:
  """uint8 images [N, H, W, C] with levels {0, ..., L-1} -> float32 (x + 1/2) / L in (0, 1).

  Args:
    images: uint8 [N, *spec.event_shape], values < spec.num_levels (checked when concrete).
    spec: the image dataset's `DataSpec` (kind 'image').

  Raises:
    ValueError: `spec` is not an image spec, or `images` has the wrong dtype, shape or values.
  """
  check_image_spec(spec)
  check_examples(images, spec, "images")
  return level_values_to_classifier_input(images, spec)


def level_values_to_classifier_input(values: jax.Array, spec: DataSpec) -> jax.Array:
  """Levels as real numbers (decoded means, a generator's output before rounding) -> (x + 1/2) / L, the
  classifier's input scale; unchecked beyond the shape, so that it stays differentiable in `values`."""
  check_image_spec(spec)
  return (jnp.asarray(values, jnp.float32) + 0.5) / spec.num_levels


class Classifier(nn.Module):
  """Conv-relu stages, global average pool, a Dense feature layer and Dense logits (module docstring).

  Attributes:
    event_shape: (H, W, C) of the input images; H and W divisible by 2**(len(channels) - 1).
    num_classes: number of classes (logits).
    channels: width of each stage; every stage after the first starts with a 2x2 average pool.
    convs_per_stage: conv3x3-relu layers per stage.
    feature_dim: F, width of the feature layer (the features FID / KID / precision-recall use).
  """
  event_shape: tuple[int, ...]
  num_classes: int = 10
  channels: tuple[int, ...] = (32, 64)
  convs_per_stage: int = 2
  feature_dim: int = 128

  def setup(self):
    if len(self.event_shape) != 3:
      raise ValueError(f"Classifier needs images: event_shape (H, W, C), got {self.event_shape}")
    if not self.channels or self.convs_per_stage < 1:
      raise ValueError(f"Classifier needs at least one stage and one conv per stage, got channels="
                       f"{self.channels}, convs_per_stage={self.convs_per_stage}")
    factor = 2 ** (len(self.channels) - 1)
    height, width = self.event_shape[:2]
    if height % factor or width % factor:
      raise ValueError(f"event_shape {self.event_shape} must have H and W divisible by {factor} "
                       f"(one 2x2 pool between each of the {len(self.channels)} stages)")
    checks.check_positive_int(self.num_classes, "num_classes")
    checks.check_positive_int(self.feature_dim, "feature_dim")
    self.stages = [[nn.Conv(c, (3, 3), padding="SAME") for _ in range(self.convs_per_stage)]
                   for c in self.channels]
    self.feature_layer = nn.Dense(self.feature_dim)
    self.logit_layer = nn.Dense(self.num_classes)

  def _check_input(self, x: jax.Array) -> None:
    checks.check_event_shape(x, self.event_shape, "classifier input")
    if x.dtype != jnp.float32:
      raise ValueError(f"classifier input must be float32 images in [0, 1] (see "
                       f"images_to_classifier_input), got dtype {x.dtype}")
    checks.check_range(x, 0.0, 1.0, "classifier input")

  def features(self, x: jax.Array) -> jax.Array:
    """float32 images [B, H, W, C] in [0, 1] -> features [B, feature_dim] (the penultimate layer)."""
    self._check_input(x)
    h = x
    for s, convs in enumerate(self.stages):
      if s > 0:
        h = nn.avg_pool(h, (2, 2), strides=(2, 2))
      for conv in convs:
        h = nn.relu(conv(h))
    h = jnp.mean(h, axis=(1, 2))  # [B, channels[-1]]
    return nn.relu(self.feature_layer(h))

  def features_and_logits(self, x: jax.Array) -> tuple[jax.Array, jax.Array]:
    """Both in one pass: features [B, feature_dim], logits [B, num_classes]."""
    features = self.features(x)
    return features, self.logit_layer(features)

  def logits(self, x: jax.Array) -> jax.Array:
    """float32 images [B, H, W, C] in [0, 1] -> unnormalised class log-probabilities [B, num_classes]."""
    return self.features_and_logits(x)[1]

  def __call__(self, x: jax.Array) -> jax.Array:
    return self.logits(x)
