"""The quick start: Glow on the bundled 8x8 digits (`glow_digits.py:cpu`), a sensible result in under 3
minutes on 2 CPU cores."""
from experiments.configs import glow_digits


def get_config(arg: str | None = None):
  del arg  # the quick start has no variants
  return glow_digits.get_config("cpu")
