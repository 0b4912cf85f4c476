"""Input validation that fails early and names what was expected.

Shape and dtype checks are static and always run (also under `jit`). Value checks (range, finiteness)
need concrete values: they run on concrete arrays (eager calls, data entering the pipeline). Under
`jit` they become `checkify.debug_check`s, which cost nothing and do nothing unless the caller asks for
them with `checked`:

    log_p = checks.checked(jax.jit(task.log_likelihoods["elbo"]))(params, x, key)  # raises if x is out of range

(without `checked`, a jitted function fed out-of-range values returns what the arithmetic gives: NaN or
a finite wrong number; `Run` and the pipeline check their data eagerly before it reaches a device).
"""
from __future__ import annotations

import functools
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.experimental import checkify


def is_concrete(x) -> bool:
  return not isinstance(x, jax.core.Tracer)


def check_rank(x, rank: int, name: str = "x", layout: str = "") -> None:
  if x.ndim != rank:
    hint = f" {layout}" if layout else ""
    raise ValueError(f"{name} must have rank {rank}{hint}, got shape {tuple(x.shape)}")


def check_vector_or_image(x, name: str = "x") -> None:
  """Checks `x` is a batch of vectors [B, D] or of images [B, H, W, C]."""
  if x.ndim not in (2, 4):
    raise ValueError(f"{name} must have rank 2 [B, D] or rank 4 [B, H, W, C], got shape {tuple(x.shape)}")


def check_event_shape(x, event_shape: Sequence[int], name: str = "x") -> None:
  """Checks `x` is [batch, *event_shape]."""
  event_shape = tuple(event_shape)
  expected = ("batch",) + event_shape
  if x.ndim != len(event_shape) + 1:
    raise ValueError(f"{name} must have shape {expected} (rank {len(expected)}), got {tuple(x.shape)}")
  if tuple(x.shape[1:]) != event_shape:
    raise ValueError(f"{name} must have shape {expected}, got {tuple(x.shape)}")


def check_nonempty_batch(x, name: str = "x") -> None:
  """Checks `x` holds at least one example (a leading axis longer than 0)."""
  if x.ndim == 0 or x.shape[0] == 0:
    raise ValueError(f"{name} must hold at least one example, got shape {tuple(x.shape)}")


def checked(fn: Callable) -> Callable:
  """`fn` (jitted or not) with its value checks raised also where they ran under `jit`: a
  `checkify.JaxRuntimeError` (a ValueError) naming the check; the outermost wrapper, outside `jit`."""
  checkified = checkify.checkify(fn, errors=checkify.user_checks)

  @functools.wraps(fn)
  def wrapper(*args, **kwargs):
    error, out = checkified(*args, **kwargs)
    error.throw()
    return out

  return wrapper


def check_range(x, low: float, high: float, name: str = "x") -> None:
  """Checks low <= x <= high (NaN fails): at once when `x` is concrete, as a `checkify.debug_check`
  (raised by `checked`) when it is traced."""
  if x.size == 0:
    return
  if not is_concrete(x):
    literal = name.replace("{", "{{").replace("}", "}}")  # the message is a format string
    checkify.debug_check(jnp.all((x >= low) & (x <= high)),
                         f"{literal} must lie in [{low}, {high}], got values in [{{lo}}, {{hi}}]",
                         lo=jnp.min(x), hi=jnp.max(x))
    return
  x = np.asarray(x)
  lo, hi = float(x.min()), float(x.max())
  if not (low <= lo and hi <= high):
    raise ValueError(f"{name} must lie in [{low}, {high}], got values in [{lo}, {hi}]")


def check_positive_int(n, name: str = "num") -> None:
  if isinstance(n, bool) or not isinstance(n, (int, np.integer)) or n <= 0:
    raise ValueError(f"{name} must be a positive integer, got {n!r}")
