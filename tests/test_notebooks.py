"""Every notebook in notebooks/ runs top to bottom (small settings) without error, and is stored with
clean outputs (figures and printed results, no progress-bar updates or warnings)."""
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


@pytest.mark.parametrize("path", NOTEBOOKS, ids=os.path.basename)
def test_notebook_is_stored_with_clean_outputs(path):
  """No stored stream output is a progress-bar update (a carriage return) or a warning (fast: reads only)."""
  nb = nbformat.read(path, as_version=4)
  dirty = [(index, output.get("name"), output.get("text", "")[:80])
           for index, cell in enumerate(nb.cells) if cell.cell_type == "code"
           for output in cell.get("outputs", [])
           if output.get("output_type") == "stream" and ("\r" in output.get("text", "")
                                                          or "Warning" in output.get("text", ""))]
  assert not dirty, (f"{os.path.basename(path)} stores {len(dirty)} progress-bar or warning outputs, "
                     f"first {dirty[:3]}; clean it with `python notebooks/notebook_tools.py {os.path.relpath(path)}`")
