"""Shared by the benchmarks: the machine's description, and side-by-side timing with alternating windows.

Each side's `run(n)` does n units of work and waits for them. `compare` warms every side up, sizes
its window, then alternates the sides' timed windows (A, B, A, B, ...) so that they see the same
machine load, and reports the median rate of each.
"""
import platform
import statistics
import time


def cpu_model() -> str:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("model name"):
          return line.split(":", 1)[1].strip()
  except OSError:
    pass
  return platform.processor() or "unknown"


def cpu_flags() -> list[str]:
  try:
    with open("/proc/cpuinfo") as f:
      for line in f:
        if line.startswith("flags"):
          flags = line.split(":", 1)[1].split()
          return sorted(f for f in flags if f.startswith(("avx", "fma", "amx")))
  except OSError:
    pass
  return []


class Timed:
  """A side of the comparison: `run(n)` does n units of work and waits for them to finish."""

  def __init__(self, name, run, items_per_call):
    self.name, self.run, self.items_per_call = name, run, items_per_call
    self.calls_per_window = 1
    self.rates = []

  def calibrate(self, window_s: float, max_calls: int):
    t0 = time.perf_counter()
    self.run(1)
    dt = time.perf_counter() - t0
    self.calls_per_window = int(max(1, min(max_calls, round(window_s / max(dt, 1e-6)))))

  def window(self):
    t0 = time.perf_counter()
    self.run(self.calls_per_window)
    dt = time.perf_counter() - t0
    self.rates.append(self.calls_per_window * self.items_per_call / dt)

  @property
  def median(self):
    return statistics.median(self.rates)


def compare(sides, *, warmup_calls, window_s, repeats, max_calls=100000):
  """Warms every side up, then alternates their timed windows; returns {name: median rate}."""
  for side in sides:
    side.run(warmup_calls)
    side.calibrate(window_s, max_calls)
  for _ in range(repeats):
    for side in sides:
      time.sleep(0.05)          # let the other library's worker threads stop spinning
      side.window()
  return {side.name: side.median for side in sides}


def describe(side):
  rates = ", ".join(f"{r:.4g}" for r in side.rates)
  return f"    {side.name:<34s} median {side.median:10.4g}  ({side.calls_per_window} calls/window; {rates})"
