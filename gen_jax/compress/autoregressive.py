"""Autoregressive coding with a model's exact conditionals (a PixelCNN's), pixel by pixel.

log2 1/P(x) = sum_i log2 1/P(x_i | x_<i): each pixel is coded with its conditional (`Task.pixel_conditionals`,
L levels per channel), so the code length of a set is its exact negative log-likelihood in bits plus
the quantization of the probabilities to 2^-24 and the coder's final 32-bit state.

Decoding runs the network once per pixel, as sampling does, on the image decoded so far (pixels >= i
zero). Encoding computes every conditional from exactly that input (the true pixels before i, zeros
after), not from one pass over the whole image: in exact arithmetic the two agree (the network is
causal), in floating point they may differ in the last bit, and the two sides must quantize bit-equal
tables. Images go in batches of `batch_size` (the last padded with zero images, which are not coded),
so both sides run one compiled function at one shape.
"""
from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from gen_jax.compress import entropy_coder


def _batches(count: int, batch_size: int) -> list[tuple[int, int]]:
  return [(start, min(start + batch_size, count)) for start in range(0, count, batch_size)]


def _padded(x: np.ndarray, batch_size: int) -> np.ndarray:
  return np.concatenate([x, np.zeros((batch_size - len(x),) + x.shape[1:], x.dtype)]) if len(x) < batch_size else x


def encode_words(task, variables, images: np.ndarray, batch_size: int) -> np.ndarray:
  """The ANS words coding `images` uint8 [N, H, W, C] with `task.pixel_conditionals`."""
  conditionals = jax.jit(task.pixel_conditionals)
  height, width, channels = images.shape[1:]
  order = np.arange(height * width).reshape(1, height, width, 1)
  stack = entropy_coder.Stack()
  for start, end in _batches(len(images), batch_size):  # the decoder pops the last batch first
    x = _padded(images[start:end], batch_size)
    count = (end - start) * channels
    for i in reversed(range(height * width)):  # pixel 0 pushed last: popped first
      partial = np.where(order < i, x, 0).astype(np.uint8)
      table = np.asarray(conditionals(variables, jnp.asarray(partial), jnp.int32(i)))  # [B, C, L]
      frequencies = entropy_coder.quantize(table[:end - start])
      stack.push(x[:end - start, i // width, i % width, :], frequencies[:count])
  return stack.words()


def decode_words(task, variables, words: np.ndarray, count: int, event_shape, batch_size: int) -> np.ndarray:
  """The images uint8 [count, H, W, C] that `encode_words` coded into `words`."""
  conditionals = jax.jit(task.pixel_conditionals)
  height, width, channels = event_shape
  stack = entropy_coder.Stack(words)
  images = np.zeros((count, height, width, channels), np.uint8)
  for start, end in reversed(_batches(count, batch_size)):
    x = np.zeros((batch_size, height, width, channels), np.uint8)
    for i in range(height * width):
      table = np.asarray(conditionals(variables, jnp.asarray(x), jnp.int32(i)))
      x[:end - start, i // width, i % width, :] = stack.pop(entropy_coder.quantize(table[:end - start])).reshape(
          end - start, channels)
    images[start:end] = x[:end - start]
  if stack.num_bits():  # a stack that held only what was coded ends empty
    raise ValueError(f"the coded data holds {stack.num_bits()} bits more than the images decoded: it was not "
                     "written by this model for these images, or it is damaged")
  return images
