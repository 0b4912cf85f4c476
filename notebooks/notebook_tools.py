"""Shared by the notebook generators: build a notebook from (kind, source) cells, execute it in place,
store it with clean outputs, and check that every number its closing summary quotes appears in an output
(so a summary cannot silently go stale).

Clean outputs: figures and printed results stay; progress-bar updates (lines with a carriage return) and
Python warnings (`file.py:LINE: SomethingWarning: ...` and the source line it quotes) are dropped when a
notebook is written. To clean stored notebooks without executing them:

  python notebooks/notebook_tools.py notebooks/*.ipynb
"""
import os
import re
import sys
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


# `path.py:12: UserWarning: message` as warnings.showwarning formats it; the next line, indented, quotes
# the source line that warned.
_WARNING_LINE = re.compile(r"^.*:\d+: \w*Warning: ")


def _clean_stream_text(text):
  """The text of one stream output without progress-bar updates and warnings."""
  kept, lines = [], text.split("\n")
  skip_quoted_source = False
  for line in lines:
    if skip_quoted_source and line.startswith("  "):
      continue                                   # the source line a warning quotes
    skip_quoted_source = False
    if "\r" in line:
      continue                                   # a progress-bar update (tqdm redraws with \r)
    if _WARNING_LINE.match(line):
      skip_quoted_source = True
      continue
    kept.append(line)
  return "\n".join(kept)


def clean_outputs(nb):
  """Drops progress-bar updates and warnings from every stream output, in place; keeps everything else
  (figures, printed results, errors). Stream outputs left empty are removed, and consecutive ones of the
  same stream are merged. Returns the number of stream outputs before and after."""
  before = after = 0
  for cell in nb.cells:
    if cell.cell_type != "code":
      continue
    outputs = []
    for output in cell.outputs:
      if output.output_type != "stream":
        outputs.append(output)
        continue
      before += 1
      text = _clean_stream_text(output.text)
      if not text.strip():
        continue
      if outputs and outputs[-1].output_type == "stream" and outputs[-1].name == output.name:
        outputs[-1].text += text
      else:
        output.text = text
        outputs.append(output)
    cell.outputs = outputs
    after += sum(output.output_type == "stream" for output in outputs)
  return before, after


def quoted_numbers_missing(nb):
  """Numbers in the closing summary (a markdown cell) that no cell output contains."""
  if nb.cells[-1].cell_type != "markdown":
    return []
  outputs = "\n".join(o.get("text", "") for c in nb.cells if c.cell_type == "code" for o in c.outputs)
  return [n for n in re.findall(r"\d+\.\d+", nb.cells[-1].source) if n not in outputs]


def execute_and_write(cells, path):
  """Builds the notebook, executes it from the repository root, writes it to `path`, checks its summary."""
  nb = build(cells)
  start = time.perf_counter()
  NotebookClient(nb, timeout=600, kernel_name="python3", resources={"metadata": {"path": REPO}}).execute()
  print(f"executed {path} in {time.perf_counter() - start:.1f} s")
  clean_outputs(nb)
  nbf.write(nb, path)
  missing = quoted_numbers_missing(nb)
  if missing:
    raise SystemExit(f"the summary quotes numbers that no output prints: {missing}")


def main(paths):
  """Cleans the stored outputs of the notebooks at `paths` in place (no execution)."""
  for path in paths:
    nb = nbf.read(path, as_version=4)
    before, after = clean_outputs(nb)
    nbf.write(nb, path)
    print(f"{path}: {before} stream outputs -> {after}")


if __name__ == "__main__":
  main(sys.argv[1:])
