"""`metrics.jsonl`: one JSON object per line, each with `step` and named metrics; optionally the same
scalars as TensorBoard event files (tensorboardX), so a live `tensorboard --logdir` can plot a run."""
from __future__ import annotations

import json
import logging
import os
import time

import numpy as np


def _plain(value):
  value = np.asarray(value)
  return value.item() if value.ndim == 0 else value.tolist()


def _tensorboard_scalar(value) -> float | None:
  """`value` as a float if it is a real-valued scalar (bool, int, float, or a 0-d array of one), else
  None: TensorBoard's scalar plots take one number per step, so vectors, strings and complex numbers are
  kept in metrics.jsonl only."""
  value = np.asarray(value)
  return float(value) if value.ndim == 0 and value.dtype.kind in "biuf" else None


class MetricsLog:
  """Appends metric lines. Opened on a resumed run, drops lines logged after the restored step, since
  the resumed run logs those steps again.

  With `tensorboard_dir`, each `write` also adds every real-valued scalar metric to TensorBoard event
  files in that folder (`add_scalar(name, value, step)`, stored as float32 by TensorBoard); other values
  (arrays, strings) stay in metrics.jsonl only. The training loop passes its workdir, so the event files
  lie beside metrics.jsonl: `tensorboard --logdir WORKDIR` shows one run, `--logdir` on a folder of
  workdirs shows each as a run of its own (TensorBoard treats each folder holding event files as a run).

  Resuming drops the discarded steps from TensorBoard too: each opening starts a new event file (they
  accumulate, one per start) that opens with tensorboardX's `purge_step=resume_step + 1` SessionLog,
  which makes TensorBoard hide every earlier-file event at a later step, so each step shows once, with
  the value the resumed run wrote. As with the jsonl, a fresh start (resume_step=0) hides everything an
  earlier, never-checkpointed attempt wrote.

  tensorboardX writes from a background thread, and its `flush()` flushes only what that thread has
  already written, so a flush after each `write` would race it; instead the thread runs with
  `flush_secs=1` and puts each event on disk within about a second, without blocking training on an
  fsync. `close()` (or leaving a `with MetricsLog(...) as log:` block) writes every pending event and
  must be called: events still queued at interpreter exit are lost (after a kill, up to the last second's
  events, which metrics.jsonl, written at once, keeps). Only the chief writes: with
  `enabled=False` nothing is written and no file or folder is created.
  """

  def __init__(self, path: str, resume_step: int = 0, enabled: bool = True,
               tensorboard_dir: str | None = None):
    self.path, self.enabled, self.tensorboard_dir = path, enabled, tensorboard_dir
    self._tensorboard, self._closed = None, False
    if not enabled:
      return
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    if os.path.exists(path):
      kept = [line for line in _intact_lines(path) if json.loads(line)["step"] <= resume_step]
      tmp = path + ".tmp"
      with open(tmp, "w") as f:
        f.writelines(kept)
      os.replace(tmp, path)
    if tensorboard_dir is not None:
      import tensorboardX  # here, not at the top: a log without TensorBoard never imports it (nor protobuf)
      # tensorboardX names event files by the second and host only and opens them with "wb": a second
      # opening within the same second (a quick restart, the tests) would truncate the first file.
      # Nanoseconds (19 digits until 2286, so name order is time order, which TensorBoard reads in)
      # keep every opening's file apart.
      self._tensorboard = tensorboardX.SummaryWriter(
          tensorboard_dir, purge_step=int(resume_step) + 1, flush_secs=1, filename_suffix=f".{time.time_ns()}")

  def write(self, step: int, metrics: dict) -> None:
    if not self.enabled:
      return
    if self._closed:
      raise ValueError(f"MetricsLog({self.path!r}).write(step={step}) after close()")
    line = json.dumps({"step": int(step), **{k: _plain(v) for k, v in metrics.items()}}) + "\n"
    _append(self.path, line.encode())
    if self._tensorboard is not None:
      for name, value in metrics.items():
        scalar = _tensorboard_scalar(value)
        if scalar is not None:
          self._tensorboard.add_scalar(name, scalar, int(step))

  def close(self) -> None:
    """Writes every pending TensorBoard event and closes the event file; calling it again does nothing."""
    if self._tensorboard is not None:
      self._tensorboard.close()
      self._tensorboard = None
    self._closed = True

  def __enter__(self) -> MetricsLog:
    return self

  def __exit__(self, *exc_info) -> None:
    self.close()


def _append(path: str, data: bytes) -> None:
  """Appends `data` (one whole line) with one write() on an O_APPEND descriptor: a concurrent reader
  sees the line whole or not at all; only a kill or a full disk inside the write can leave a part of it,
  without its newline, which `read_metrics` ignores and the next opening drops."""
  fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
  try:
    view = memoryview(data)
    while view:  # a short write happens only when the disk fills; the rest then raises ENOSPC
      view = view[os.write(fd, view):]
  finally:
    os.close(fd)


def _intact_lines(path: str) -> list[str]:
  """The file's complete lines that hold JSON; a torn line (a kill or a full disk during an append, or
  text glued to one) is reported as a warning and left out."""
  with open(path) as f:
    lines = f.readlines()
  kept = []
  for number, line in enumerate(lines, 1):
    if not line.strip():
      continue
    try:
      json.loads(line)
    except json.JSONDecodeError:
      logging.warning("%s: line %d is torn (%d bytes: %r...): dropped", path, number, len(line), line[:40])
      continue
    kept.append(line if line.endswith("\n") else line + "\n")
  return kept


def read_metrics(path: str) -> list[dict]:
  """Every metric line of a metrics.jsonl, also while a run appends to it: a last line without its
  newline (being written, or torn by a kill) is left out; a torn line inside the file is an error
  naming its line."""
  with open(path) as f:
    lines = f.readlines()
  if lines and not lines[-1].endswith("\n"):
    lines = lines[:-1]
  records = []
  for number, line in enumerate(lines, 1):
    if line.strip():
      try:
        records.append(json.loads(line))
      except json.JSONDecodeError as error:
        raise ValueError(f"{path}: line {number} is not a JSON object ({error.msg}): {line[:80]!r}") from None
  return records
