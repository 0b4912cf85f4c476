"""The valid range of every numeric field of the engine's config sections, checked before any work.

A value outside its range once ran to exit 0 and did nothing useful or lost the model
(`keep_checkpoints=0` kept no checkpoint; `num_steps=0` trained nothing; `ema_decay=2.0` diverged the
average). `check_ranges(config)` raises for the first field out of range, naming the range. Each family
checks its own section's options where its task is built.
"""
from __future__ import annotations

import math

import ml_collections

# field: (low, high, low included, high included); None: unbounded on that side.
RANGES = {
    "train.batch_size": (1, None, True, None),
    "train.num_steps": (1, None, True, None),
    "train.steps_per_call": (1, None, True, None),
    "train.keep_checkpoints": (1, None, True, None),
    "train.ema_decay": (0.0, 1.0, True, False),
    "optim.learning_rate": (0.0, None, False, None),
    "optim.warmup_steps": (0, None, True, None),
    "optim.grad_clip_norm": (0.0, None, True, None),
    "optim.b1": (0.0, 1.0, True, False),
    "optim.b2": (0.0, 1.0, True, False),
    "optim.eps": (0.0, None, False, None),
    "optim.weight_decay": (0.0, None, True, None),
    "eval.batch_size": (1, None, True, None),
    "eval.num_samples": (1, None, True, None),
    "seed": (0, None, True, None),
}


def describe(low, high, low_in, high_in) -> str:
  """The interval in words: '>= 1', '[0.0, 1.0)', '> 0.0'."""
  if high is None:
    return f"{'>=' if low_in else '>'} {low}"
  return f"{'[' if low_in else '('}{low}, {high}{']' if high_in else ')'}"


def _in_range(value, low, high, low_in, high_in) -> bool:
  above = value >= low if low_in else value > low
  below = high is None or (value <= high if high_in else value < high)
  return above and below


def check_ranges(config: ml_collections.ConfigDict, ranges: dict = RANGES) -> None:
  """Raises ValueError for the first field of `ranges` that `config` sets outside its range (or to a
  non-number, or a fraction where an integer is expected); fields `config` lacks are skipped. Every
  `*learning_rate` field of any section (a GAN's players' rates) must be > 0 too."""
  checks = dict(ranges)
  for section, value in config.items():
    if isinstance(value, ml_collections.ConfigDict):
      for key in value.keys():
        if key.endswith("learning_rate"):
          checks.setdefault(f"{section}.{key}", (0.0, None, False, None))
  for name, bounds in checks.items():
    section, _, key = name.rpartition(".")
    node = config.get(section) if section else config
    if node is None or key not in node or node[key] is None:
      continue
    value = node[key]
    integer = isinstance(bounds[0], int)
    numeric = isinstance(value, (int, float)) and not isinstance(value, bool)
    if not numeric or not math.isfinite(value) or (integer and value != int(value)) \
        or not _in_range(value, *bounds):
      kind = "an integer" if integer else "a number"
      raise ValueError(f"config.{name} must be {kind} {describe(*bounds)}, got {value!r}")
