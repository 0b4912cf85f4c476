"""Class labels as an embedding added to a network's time embedding, with a null label for guidance.

Class-conditional diffusion models (Dhariwal & Nichol 2021, "Diffusion Models Beat GANs", the ADM
U-Net: `emb = time_embed(t) + label_emb(y)`) add a learned embedding of the label to the timestep
embedding. Classifier-free guidance (Ho & Salimans 2022) trains one network both conditionally and
unconditionally by replacing the label with a null label with probability p_uncond; here the null
label is the extra index `num_classes`, so `labels` take values in {0, ..., num_classes}
(`NULL` = num_classes means "no label").
"""
from __future__ import annotations

from typing import Callable, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np


def null_labels(batch: int, num_classes: int) -> jax.Array:
  """int32 [batch] of the null label (index num_classes): the unconditional model."""
  return jnp.full((batch,), num_classes, jnp.int32)


def check_labels(labels, num: int, num_classes: int, size_name: str = "batch") -> jax.Array | None:
  """The labels a model with `num_classes` classes is given, checked: None for an unconditional model
  (num_classes = 0, labels must be None); for a class-conditional one int32 [num] in {0, ..., num_classes}
  (num_classes = the null label), the range checked where the labels are concrete (not under jit).

  Raises ValueError, saying what was expected, for labels given to an unconditional model, none given to
  a conditional one, a shape other than [size_name] = (num,), a non-integer dtype, or a label outside
  {0, ..., num_classes}.
  """
  if num_classes == 0:
    if labels is not None:
      raise ValueError("labels were given to an unconditional model (its network has num_classes = 0)")
    return None
  expected = f"{{0, ..., {num_classes}}} ({num_classes} = the null label)"
  if labels is None:
    raise ValueError(f"a class-conditional model (num_classes={num_classes}) needs labels [{size_name}] = "
                     f"({num},) in {expected}")
  labels = jnp.asarray(labels)
  if labels.shape != (num,) or not jnp.issubdtype(labels.dtype, jnp.integer):
    raise ValueError(f"labels must be integers of shape [{size_name}] = ({num},), got {labels.dtype} "
                     f"{tuple(labels.shape)}")
  if not isinstance(labels, jax.core.Tracer) and labels.size:  # concrete (also when closed over under jit)
    values = np.asarray(labels)
    low, high = int(values.min()), int(values.max())
    if low < 0 or high > num_classes:
      raise ValueError(f"labels must lie in {expected}, got values in [{low}, {high}]")
  return labels.astype(jnp.int32)


def drop_labels(rng: jax.Array, labels: jax.Array, num_classes: int, drop_probability: float) -> jax.Array:
  """Each label replaced by the null label with probability `drop_probability` (CFG's training)."""
  drop = jax.random.bernoulli(rng, drop_probability, labels.shape)
  return jnp.where(drop, num_classes, labels).astype(jnp.int32)


class LabelEmbedding(nn.Module):
  """labels int [B] in {0, ..., num_classes} (num_classes = null) -> [B, features]."""
  num_classes: int
  features: int

  @nn.compact
  def __call__(self, labels: jax.Array) -> jax.Array:
    if labels.ndim != 1 or not jnp.issubdtype(labels.dtype, jnp.integer):
      raise ValueError(f"labels must be integers of shape [batch], got {labels.dtype} {tuple(labels.shape)}")
    return nn.Embed(self.num_classes + 1, self.features, name="embedding")(labels)


def add_label_embedding(temb: jax.Array, labels: jax.Array | None, num_classes: int) -> jax.Array:
  """temb + LabelEmbedding(labels) for a network with num_classes > 0 (labels required, [B]); temb as
  it is for num_classes = 0 (labels must be None). Call inside a compact __call__ (the embedding is its
  submodule "label_embedding")."""
  if num_classes == 0:
    if labels is not None:
      raise ValueError("labels were given to a network without classes (num_classes = 0)")
    return temb
  if labels is None:
    raise ValueError(f"a network with num_classes={num_classes} needs labels [batch] in {{0, ..., "
                     f"{num_classes}}} ({num_classes} = the null label)")
  if labels.shape != temb.shape[:1]:
    raise ValueError(f"labels must have shape [batch] = {temb.shape[:1]}, got {tuple(labels.shape)}")
  return temb + LabelEmbedding(num_classes, temb.shape[-1], name="label_embedding")(labels)


def classifier_free_guidance(conditional: jax.Array, unconditional: jax.Array, guidance_scale) -> jax.Array:
  """Ho & Salimans 2022, eq. 6 in diffusers' form: unconditional + s (conditional - unconditional).

  s = 1 is the conditional model, s = 0 the unconditional one, s > 1 extrapolates (Ho & Salimans'
  w = s - 1). Applied to eps, a score, x_hat or a velocity alike: each is affine in the score at a
  fixed point and time, so the guided output is the output of the guided score
  grad log p(x) + s grad log p(c | x) = (1 - s) grad log p(x) + s grad log p(x | c).
  """
  return unconditional + guidance_scale * (conditional - unconditional)


def guidance_scale_is_one(guidance_scale) -> bool:
  """True when the guidance scale is exactly 1 as a Python number, known before tracing: the guided
  output is then the conditional one and the null-label half need not be evaluated (a traced 1, e.g.
  a jnp.float32, takes the doubled batch and gives the same output)."""
  return isinstance(guidance_scale, (int, float)) and guidance_scale == 1


def guided_output(apply: Callable[..., jax.Array], inputs: Sequence[jax.Array | None], labels: jax.Array,
                  num_classes: int, guidance_scale) -> jax.Array:
  """A conditional model's output under classifier-free guidance, from one evaluation on a doubled batch.

  apply(*inputs, labels) -> [B, ...] is the model; inputs are its other arguments, each [B, ...], a
  scalar shared by the batch, or None; labels int [B] in {0, ..., num_classes}. The model runs once on
  ([inputs; inputs], [labels; null labels]) (batch 2B), its halves combined by
  `classifier_free_guidance`: unconditional + s (conditional - unconditional). When s is exactly 1 in
  Python (`guidance_scale_is_one`) it is apply(*inputs, labels), without the null-label half.
  """
  if guidance_scale_is_one(guidance_scale):
    return apply(*inputs, labels)
  batch = labels.shape[0]

  def doubled(a):
    if a is None:
      return None
    a = jnp.broadcast_to(a, (batch, *jnp.shape(a)[1:]))
    return jnp.concatenate([a, a])

  both = apply(*map(doubled, inputs), jnp.concatenate([labels, null_labels(batch, num_classes)]))
  return classifier_free_guidance(both[:batch], both[batch:], guidance_scale)
