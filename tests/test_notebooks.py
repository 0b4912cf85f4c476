"""Every notebook in notebooks/ runs top to bottom (small settings) without error."""
import glob
import os
import time

import nbformat
import pytest
from nbclient import NotebookClient

from tests.conftest import REPO

NOTEBOOKS = sorted(glob.glob(os.path.join(REPO, "notebooks", "*.ipynb")))


def test_there_are_notebooks():
  assert NOTEBOOKS


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_executes(path):
  nb = nbformat.read(path, as_version=4)
  start = time.perf_counter()
  NotebookClient(nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": REPO}}).execute()
  assert time.perf_counter() - start < 240, "notebooks must stay small enough to run in CI"
