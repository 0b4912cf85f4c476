"""The entropy coder: an ANS stack (Duda 2009) from `constriction` (Bamler 2022), the one module that
imports it, over categorical models with integer frequencies.

`Stack.push(symbols, frequencies)` encodes symbols onto the stack and `Stack.pop(frequencies)` decodes
the most recently pushed ones (last in, first out; within one call the symbols come back in the order
they were given). A pop from data that was never pushed (bits-back coding) reads bits off the stack as
a sample of the model, and a push of the same symbols with the same model gives those bits back exactly.

Determinism: `quantize` turns log-probabilities into integer frequencies >= 1 summing to 2^PRECISION
(float64 arithmetic on the table as given, the remainder to the most probable symbol), and the coder
sees only those integers (as exactly representable float64s). Encoder and decoder therefore agree
whenever they quantize bit-equal tables; the coders in this package make sure they do by computing
each table from bit-equal inputs with the same compiled function at the same shapes.
"""
from __future__ import annotations

import constriction
import numpy as np

PRECISION = 24  # bits of constriction's default ANS coder: frequencies sum to 2^24
_MODEL = constriction.stream.model.Categorical(perfect=False)


def quantize(log_probs) -> np.ndarray:
  """log-probabilities (unnormalized allowed) [..., L] -> integer frequencies [n, L] (as float64), each
  >= 1, every row summing to 2^PRECISION exactly."""
  log_probs = np.asarray(log_probs, np.float64)
  num_symbols = log_probs.shape[-1]
  if num_symbols > 2 ** PRECISION // 2:
    raise ValueError(f"at most {2 ** PRECISION // 2} symbols per model, got {num_symbols}")
  log_probs = log_probs.reshape(-1, num_symbols)
  if not np.isfinite(log_probs).any(axis=-1).all() or np.isnan(log_probs).any() or np.isposinf(log_probs).any():
    raise ValueError("the model's log-probabilities hold NaN or +inf, or a row of -inf: nothing to code with")
  probs = np.exp(log_probs - log_probs.max(axis=-1, keepdims=True))
  probs /= probs.sum(axis=-1, keepdims=True)
  frequencies = np.floor(probs * (2 ** PRECISION - num_symbols)) + 1.0
  rows = np.arange(len(frequencies))
  frequencies[rows, probs.argmax(axis=-1)] += 2 ** PRECISION - frequencies.sum(axis=-1)
  return frequencies


def uniform(count: int, num_symbols: int) -> np.ndarray:
  """Frequencies [count, num_symbols] of the uniform law (num_symbols a power of 2 makes it exact)."""
  return quantize(np.zeros((count, num_symbols)))


def code_length_bits(symbols, frequencies) -> float:
  """-log2 P(symbols) under the quantized model: the length an ideal coder would reach."""
  symbols = np.asarray(symbols).reshape(-1)
  return float(np.sum(PRECISION - np.log2(frequencies[np.arange(len(symbols)), symbols])))


class Stack:
  """An ANS stack of 32-bit words (constriction's AnsCoder); `words` start a stack from saved data."""

  def __init__(self, words: np.ndarray | None = None):
    self._coder = (constriction.stream.stack.AnsCoder() if words is None
                   else constriction.stream.stack.AnsCoder(np.ascontiguousarray(words, np.uint32)))

  def push(self, symbols, frequencies: np.ndarray) -> None:
    """Encodes symbols [n] (integers in [0, L)) with their frequencies [n, L] (`quantize`)."""
    symbols = np.ascontiguousarray(np.asarray(symbols).reshape(-1), np.int32)
    if frequencies.shape != (len(symbols), frequencies.shape[-1]):
      raise ValueError(f"frequencies must have shape ({len(symbols)}, L), got {frequencies.shape}")
    if len(symbols) and (symbols.min() < 0 or symbols.max() >= frequencies.shape[-1]):
      raise ValueError(f"symbols must lie in [0, {frequencies.shape[-1] - 1}], got [{symbols.min()}, {symbols.max()}]")
    self._coder.encode_reverse(symbols, _MODEL, frequencies)

  def pop(self, frequencies: np.ndarray) -> np.ndarray:
    """Decodes len(frequencies) symbols [n] int64, in the order they were pushed in one call."""
    return np.asarray(self._coder.decode(_MODEL, np.ascontiguousarray(frequencies, np.float64)), np.int64)

  def words(self) -> np.ndarray:
    """The stack's data, uint32 [n] (what a file stores; `Stack(words)` resumes it)."""
    return np.asarray(self._coder.get_compressed(), np.uint32).copy()

  def num_bits(self) -> int:
    return int(self._coder.num_bits())
