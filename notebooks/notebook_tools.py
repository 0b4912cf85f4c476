"""Shared by the notebook generators: build a notebook from (kind, source) cells, execute it in place,
store it with its outputs, and check that every number its closing summary quotes appears in an output
(so a summary cannot silently go stale)."""
import os
import re
import time

import nbformat as nbf
from nbclient import NotebookClient

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def build(cells):
  """cells: [("md" | "code", source)] -> a notebook with a python3 kernelspec."""
  nb = nbf.v4.new_notebook()
  nb.cells = [nbf.v4.new_markdown_cell(src) if kind == "md" else nbf.v4.new_code_cell(src) for kind, src in cells]
  nb.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3", "language": "python"}
  return nb


def quoted_numbers_missing(nb):
  """Numbers in the closing summary that no cell output contains."""
  outputs = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
  return [n for n in re.findall(r"\d+\.\d+", nb.cells[-1].source) if n not in outputs]


def execute_and_write(cells, path):
  """Builds the notebook, executes it from the repository root, writes it to `path`, checks its summary."""
  nb = build(cells)
  start = time.perf_counter()
  NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": REPO}}).execute()
  print(f"executed {path} in {time.perf_counter() - start:.1f} s")
  nbf.write(nb, path)
  missing = quoted_numbers_missing(nb)
  if missing:
    raise SystemExit(f"the summary quotes numbers that no output prints: {missing}")
