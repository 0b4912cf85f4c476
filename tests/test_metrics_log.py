"""MetricsLog's TensorBoard events, read back with TensorBoard's own reader (EventAccumulator), the
independent truth for what a TensorBoard user would see: values, steps, resume purging, liveness."""
from __future__ import annotations

import json
import os
import time

import numpy as np
import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from gen_jax.train.metrics_log import MetricsLog, read_metrics


def scalars(logdir: str) -> dict[str, list[tuple[int, float]]]:
  """Every scalar tag in `logdir` -> [(step, value)], as TensorBoard shows it (purges applied)."""
  accumulator = EventAccumulator(logdir, size_guidance={"scalars": 0})  # 0: keep every event
  accumulator.Reload()
  return {tag: [(e.step, e.value) for e in accumulator.Scalars(tag)] for tag in accumulator.Tags()["scalars"]}


def test_scalars_round_trip_through_tensorboard(tmp_path):
  steps = {
      10: {"train/loss": 1 / 3, "train/steps_per_sec": 123.456, "eval/bpd": np.float32(3.1415927)},
      20: {"train/loss": -2.5e-3, "train/steps_per_sec": np.float64(1e-8), "eval/bpd": np.array(7.25)},
  }
  with MetricsLog(str(tmp_path / "metrics.jsonl"), tensorboard_dir=str(tmp_path / "tensorboard")) as log:
    for step, metrics in steps.items():
      log.write(step, metrics)
  got = scalars(str(tmp_path / "tensorboard"))
  assert sorted(got) == ["eval/bpd", "train/loss", "train/steps_per_sec"]
  for name in got:
    # TensorBoard stores simple_value as float32: each value must come back as exactly that float32.
    assert got[name] == [(step, float(np.float32(metrics[name]))) for step, metrics in steps.items()], name


def test_non_scalars_skip_tensorboard_but_stay_in_jsonl(tmp_path):
  metrics = {"eval/bpd": 2.0, "eval/per_class": [0.5, 1.5], "note": "ok", "count": 3, "finite": True}
  with MetricsLog(str(tmp_path / "metrics.jsonl"), tensorboard_dir=str(tmp_path / "tensorboard")) as log:
    log.write(1, metrics)
  assert scalars(str(tmp_path / "tensorboard")) == {"eval/bpd": [(1, 2.0)], "count": [(1, 3.0)],
                                                    "finite": [(1, 1.0)]}
  assert read_metrics(str(tmp_path / "metrics.jsonl")) == [{"step": 1, **metrics}]


def test_resume_shows_each_step_once_with_the_resumed_value(tmp_path):
  path, logdir = str(tmp_path / "metrics.jsonl"), str(tmp_path / "tensorboard")
  with MetricsLog(path, tensorboard_dir=logdir) as log:
    for step in range(1, 5):
      log.write(step, {"train/loss": float(step)})
  # Reopened at once, as a test (or a quick restart) does: both openings fall in the same second.
  with MetricsLog(path, resume_step=2, tensorboard_dir=logdir) as log:
    for step in (3, 4):
      log.write(step, {"train/loss": 10.0 * step})
  assert scalars(logdir) == {"train/loss": [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]}
  assert [(m["step"], m["train/loss"]) for m in read_metrics(path)] == [(1, 1.0), (2, 2.0), (3, 30.0), (4, 40.0)]


def test_events_reach_disk_without_close(tmp_path):
  """A live TensorBoard reads the files while the run goes on: the events must land without close()."""
  log = MetricsLog(str(tmp_path / "metrics.jsonl"), tensorboard_dir=str(tmp_path / "tensorboard"))
  try:
    log.write(1, {"train/loss": 0.5})
    log.write(2, {"train/loss": 0.25})
    deadline, got = time.monotonic() + 10, {}
    while got != {"train/loss": [(1, 0.5), (2, 0.25)]} and time.monotonic() < deadline:
      time.sleep(0.2)
      got = scalars(str(tmp_path / "tensorboard"))
    assert got == {"train/loss": [(1, 0.5), (2, 0.25)]}
  finally:
    log.close()


def test_disabled_log_creates_no_files(tmp_path):
  workdir = tmp_path / "run"
  with MetricsLog(str(workdir / "metrics.jsonl"), enabled=False, tensorboard_dir=str(workdir / "tensorboard")) as log:
    log.write(1, {"train/loss": 1.0})
  assert not workdir.exists()
  assert list(tmp_path.iterdir()) == []


def test_jsonl_is_the_same_with_tensorboard(tmp_path):
  metrics = [{"train/loss": np.float32(0.1), "eval/bpd": np.array([1.0, 2.0])}, {"train/loss": 2}]
  for name, logdir in (("plain", None), ("with_tb", str(tmp_path / "tensorboard"))):
    with MetricsLog(str(tmp_path / name / "metrics.jsonl"), tensorboard_dir=logdir) as log:
      for step, m in enumerate(metrics, 1):
        log.write(step, m)
  plain = (tmp_path / "plain" / "metrics.jsonl").read_text()
  assert (tmp_path / "with_tb" / "metrics.jsonl").read_text() == plain
  assert [json.loads(line) for line in plain.splitlines()] == [
      {"step": 1, "train/loss": float(np.float32(0.1)), "eval/bpd": [1.0, 2.0]}, {"step": 2, "train/loss": 2}]


def test_close_is_idempotent_and_write_after_close_fails(tmp_path):
  log = MetricsLog(str(tmp_path / "metrics.jsonl"), tensorboard_dir=str(tmp_path / "tensorboard"))
  log.write(1, {"train/loss": 1.0})
  log.close()
  log.close()
  with pytest.raises(ValueError, match="after close"):
    log.write(2, {"train/loss": 2.0})
  assert len(os.listdir(tmp_path / "tensorboard")) == 1
  assert scalars(str(tmp_path / "tensorboard")) == {"train/loss": [(1, 1.0)]}
