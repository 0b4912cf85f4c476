import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_python(args, env_extra=None, timeout=600, **kwargs):
  """Runs `python args...` in the repo root (a fresh process, e.g. with fake devices)."""
  env = {**os.environ, **(env_extra or {})}
  return subprocess.run([sys.executable, *args], cwd=REPO, env=env, capture_output=True, text=True,
                        timeout=timeout, **kwargs)


@pytest.fixture(scope="session")
def tfds_data_dir(tmp_path_factory):
  """One TFDS data_dir for the session, so the local builders are prepared once."""
  return str(tmp_path_factory.mktemp("tensorflow_datasets"))


@pytest.fixture
def quick_compile():
  """XLA without its expensive optimization passes (`jax_disable_most_optimizations`) for one test, then as
  it was: for a test of tiny networks trained a few steps that compiles many programs and runs each briefly,
  where compiling is most of its time on CPU (test_diffusion_task's tiny run: 75 s -> 45 s). The programs
  compute the same functions (float32 rounding may differ); not for tests whose time is their steps (an NSF
  trained 150 steps took twice as long). jit's caches do not key on the flag: a function compiled during the
  test keeps that program in later tests of the process, and one compiled before runs optimized inside it."""
  import jax  # pylint: disable=import-outside-toplevel (importing jax here, not at collection)
  previous = jax.config.read("jax_disable_most_optimizations")
  jax.config.update("jax_disable_most_optimizations", True)
  try:
    yield
  finally:
    jax.config.update("jax_disable_most_optimizations", previous)
