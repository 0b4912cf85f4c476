"""The quick start: Glow on the bundled 8x8 digits (`glow_digits.py:cpu`), about 2.13 test bits/dim in
about 2½ minutes on 2 CPU cores (measured 2m24s; the README quotes the same)."""
from experiments.configs import glow_digits


def get_config(arg: str | None = None):
  del arg  # the quick start has no variants
  return glow_digits.get_config("cpu")
