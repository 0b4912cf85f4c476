"""`run(main)`: absl's `app.run` with a `--help` that exits 0.

absl's own `--help` prints the usage and exits 1 (absl.app.HelpFlag), which a shell, a Makefile or CI
reads as a failure; asking for help is not one.
"""
import sys

from absl import app

HELP_FLAGS = {"-h", "--help", "-?", "--helpshort"}


def run(main) -> None:
  if HELP_FLAGS & set(sys.argv[1:]):
    app.usage(shorthelp=True, writeto_stdout=True, exitcode=0)
  app.run(main)
