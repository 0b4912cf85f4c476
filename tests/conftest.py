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
