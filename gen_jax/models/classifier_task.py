"""The classifier's objective: mean cross-entropy of the labels, in nats per example.

  nll(x, y) = -log softmax(logits(x))_y,     accuracy(x, y) = [argmax logits(x) == y]

Batches carry labels (`Task.uses_labels`): {"data": uint8 [B, H, W, C], "label": int32 [B]}; images
enter the model through `images_to_classifier_input`. A label outside {0, ..., num_classes - 1} makes
its nll NaN, so the loop stops with an error naming the step instead of training on it.
Training may translate the images at random (`classifier.augment_shift` pixels; train metrics are then on
the translated images); evaluation never does. The classifier does not generate: its task has no `sample`.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import ml_collections
import optax

from gen_jax.data.spec import DataSpec
from gen_jax.models.classifier import Classifier, check_image_spec, images_to_classifier_input
from gen_jax.train.config_section import refuse_moved, section_options
from gen_jax.train.optimizer import make_optimizer
from gen_jax.train.task import Task, gradient_update


def random_shift(rng: jax.Array, images: jax.Array, max_shift: int) -> jax.Array:
  """Translates each image [B, H, W, C] by its own integer offset in [-max_shift, max_shift]^2.

  Pixels shifted in are level 0 (the background of digits and MNIST); the shape and dtype are kept.
  """
  if max_shift == 0:
    return images
  _, height, width, channels = images.shape
  padded = jnp.pad(images, ((0, 0), (max_shift, max_shift), (max_shift, max_shift), (0, 0)))
  corners = jax.random.randint(rng, (images.shape[0], 2), 0, 2 * max_shift + 1)
  crop = lambda image, corner: jax.lax.dynamic_slice(image, (corner[0], corner[1], 0), (height, width, channels))
  return jax.vmap(crop)(padded, corners)


def classifier_task(model: Classifier, spec: DataSpec, optimizer: optax.GradientTransformation,
                    augment_shift: int = 0) -> Task:
  """The classifier's `Task`; `augment_shift` > 0 trains on randomly translated images (`random_shift`)."""
  check_image_spec(spec)
  if isinstance(augment_shift, bool) or not isinstance(augment_shift, int) or augment_shift < 0:
    raise ValueError(f"classifier.augment_shift must be a non-negative integer (pixels), got {augment_shift!r}")

  def metrics_of(params, images, labels):
    """Per-example nll (nats) and accuracy, [B] each."""
    logits = model.apply(params["model"], images_to_classifier_input(images, spec))
    valid = (labels >= 0) & (labels < model.num_classes)
    nll = optax.softmax_cross_entropy_with_integer_labels(logits, jnp.where(valid, labels, 0))
    accuracy = (jnp.argmax(logits, axis=-1) == labels).astype(jnp.float32)
    return {"nll": jnp.where(valid, nll, jnp.nan), "accuracy": accuracy}

  def init(rng, batch):
    return {"model": model.init(rng, images_to_classifier_input(batch["data"], spec))}, {}

  def evaluate(params, batch, rng):
    del rng  # deterministic: no augmentation
    return metrics_of(params, batch["data"], batch["label"])

  def loss(params, state, batch, rng, step):
    del step
    images = random_shift(rng, batch["data"], augment_shift)
    metrics = {k: jnp.mean(v) for k, v in metrics_of(params, images, batch["label"]).items()}
    return metrics["nll"], (metrics, state)

  return Task(model=model, init=init, optimizer=optimizer, update=gradient_update(loss, optimizer), loss=loss,
              evaluate=evaluate, sample=None, uses_labels=True)


def build_classifier_task(config: ml_collections.ConfigDict, model: Classifier, spec: DataSpec) -> Task:
  """config.classifier: the keyword options of `classifier_task` (augment_shift)."""
  refuse_moved(config, {"data.augment_shift": "classifier.augment_shift"})
  return classifier_task(model, spec, make_optimizer(config.optim, config.train.num_steps),
                         **section_options(config, "classifier", classifier_task))
