"""The quick start: Glow on the bundled 8x8 digits (`glow_digits.py:cpu`), 2.127 test bits/dim
in under 1½ minutes on 2 CPU cores (measured 1m18s and 1m21s wall clock, install excluded, on a
quiet 2-core AMD EPYC; the README quotes the same)."""
from experiments.configs import glow_digits


def get_config(arg: str | None = None):
  del arg  # the quick start has no variants
  return glow_digits.get_config("cpu")
