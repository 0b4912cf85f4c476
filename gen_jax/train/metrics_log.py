"""`metrics.jsonl`: one JSON object per line, each with `step` and named metrics."""
from __future__ import annotations

import json
import os

import numpy as np


def _plain(value):
  value = np.asarray(value)
  return value.item() if value.ndim == 0 else value.tolist()


class MetricsLog:
  """Appends metric lines. Opened on a resumed run, drops lines logged after the restored step, since
  the resumed run logs those steps again."""

  def __init__(self, path: str, resume_step: int = 0, enabled: bool = True):
    self.path, self.enabled = path, enabled
    if not enabled:
      return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if os.path.exists(path):
      with open(path) as f:
        kept = [line for line in f if line.strip() and json.loads(line)["step"] <= resume_step]
      tmp = path + ".tmp"
      with open(tmp, "w") as f:
        f.writelines(kept)
      os.replace(tmp, path)

  def write(self, step: int, metrics: dict) -> None:
    if not self.enabled:
      return
    line = json.dumps({"step": int(step), **{k: _plain(v) for k, v in metrics.items()}})
    with open(self.path, "a") as f:
      f.write(line + "\n")


def read_metrics(path: str) -> list[dict]:
  with open(path) as f:
    return [json.loads(line) for line in f if line.strip()]
