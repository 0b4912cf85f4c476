"""Shared by the benchmarks: the machine's description, and side-by-side timing with alternating windows.

Each side's `run(n)` does n units of work and waits for them. `compare` warms every side up, sizes
its window, then alternates the sides' timed windows (A, B, A, B, ...) so that they see the same
machine load, and reports the median rate of each.
"""
import os
import platform
import statistics
import time

import numpy as np

# Before any benchmark touches jax: gen_jax sets its XLA:CPU flag on import (gen_jax/xla_cpu_flags.py),
# so every side timed here runs the convolutions a user of gen_jax gets; environments record XLA_FLAGS.
import gen_jax  # noqa: F401  pylint: disable=unused-import


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


# Shared by the benchmarks that time a PyTorch side (diffusion_vs_diffusers, gan_vs_pytorch, ebm_vs_pytorch,
# flow_matching_vs_torchcfm).


def num_cores() -> int:
  return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def log(t_start, message):
  print(f"[{time.perf_counter() - t_start:6.0f} s] {message}", flush=True)


def check_finite(label, value):
  value = float(value)
  if not np.isfinite(value):
    print(f"  WARNING: {label} loss is not finite ({value})")
  return value


def fastest(rates, sides):
  """(name, rate) of the fastest of `sides`."""
  name = max((s.name for s in sides), key=rates.get)
  return name, rates[name]


def torch_thread_probe(torch, thread_counts) -> dict:
  """Milliseconds per 3x3 convolution ([16, 32, 32, 32], NCHW) at each thread count and at 1.

  On an oversubscribed machine OpenMP's barriers wait for descheduled threads: torch with 2 threads
  was measured 50x slower than with 1 on a U-Net here while other jobs ran. This probe makes that
  visible before the timed runs.
  """
  import torch.nn.functional as F
  x, w = torch.randn(16, 32, 32, 32), torch.randn(32, 32, 3, 3)
  ms = {}
  with torch.no_grad():
    for threads in sorted(set(thread_counts) | {1}, reverse=True):
      torch.set_num_threads(threads)
      for _ in range(3):
        F.conv2d(x, w, padding=1)
      t0 = time.perf_counter()
      for _ in range(10):
        F.conv2d(x, w, padding=1)
      ms[threads] = 1000 * (time.perf_counter() - t0) / 10
  return ms


def torch_sides(torch, side_class, label, run, items_per_call, thread_counts):
  """One timed side per torch intra-op thread count."""
  def with_threads(threads):
    def wrapped(n):
      torch.set_num_threads(threads)
      run(n)
    return wrapped
  return [side_class(f"{label} ({t} thr)", with_threads(t), items_per_call) for t in thread_counts]


class TaskStep:
  """A gen_jax Task's update as the training loop's `train_step`: one `jax.jit` step with params,
  carried state, optimizer state and step counter donated, the step's key fold_in(run key, step), compiled ahead of
  time (`compile_s`); `run(n)` does n steps on the fixed batch `x` and waits for them."""

  def __init__(self, jax, task, params, model_state, opt_state, x):
    import jax.numpy as jnp

    def step(params, model_state, opt_state, i, batch, key):
      params, model_state, opt_state, loss, metrics = task.update(params, model_state, opt_state, batch,
                                                                  jax.random.fold_in(key, i), i)
      return params, model_state, opt_state, i + 1, loss, metrics

    self.jax, self.task = jax, task
    self.state = (params, model_state, opt_state, jnp.zeros((), jnp.int32))
    self.x, self.key = x, jax.random.key(1)
    t0 = time.perf_counter()
    self.step = jax.jit(step, donate_argnums=(0, 1, 2, 3)).lower(*self.state, x, self.key).compile()
    self.compile_s = time.perf_counter() - t0
    self.loss = self.metrics = None

  def run(self, n):
    for _ in range(n):
      *self.state, self.loss, self.metrics = self.step(*self.state, self.x, self.key)
      self.state = tuple(self.state)
    self.jax.block_until_ready((self.state, self.loss))


def probe_and_print(env, torch, thread_counts):
  """Adds the torch thread probe to the environment `env`, prints it, warns when oversubscribed."""
  env["torch_num_threads_timed"] = thread_counts
  env["torch_conv3x3_ms_by_threads"] = probe = torch_thread_probe(torch, thread_counts)
  print("environment:")
  for k, v in env.items():
    print(f"  {k}: {v}")
  if any(t > 1 and probe[t] > 1.2 * probe[1] for t in thread_counts):
    print(f"WARNING: torch is slower with {max(thread_counts)} threads than with 1 ({probe}): the machine is "
          "oversubscribed and OpenMP waits for descheduled threads. Rerun on a quiet machine, or add 1 to "
          "--threads (e.g. --threads 2,1).")
  return env


def diffusers_unet(layout, dropout):
  """diffusers' UNet2DModel with the layout of gen_jax's nn.UNet (`layout`: its channels,
  channel_multipliers, num_res_blocks, attention_resolutions, num_groups, and image_size,
  image_channels (default 3)) and DDPM's choices (google/ddpm-cifar10-32's config.json; the same
  function of the same weights as gen_jax's U-Net, tests/test_unet.py). Shared by
  diffusion_vs_diffusers and flow_matching_vs_torchcfm."""
  from diffusers import UNet2DModel
  size, multipliers = layout["image_size"], layout["channel_multipliers"]
  image_channels = layout.get("image_channels", 3)
  attention = [size // 2 ** level in layout["attention_resolutions"] for level in range(len(multipliers))]
  return UNet2DModel(
      sample_size=size, in_channels=image_channels, out_channels=image_channels,
      block_out_channels=tuple(layout["channels"] * m for m in multipliers),
      layers_per_block=layout["num_res_blocks"],
      down_block_types=tuple("AttnDownBlock2D" if a else "DownBlock2D" for a in attention),
      up_block_types=tuple("AttnUpBlock2D" if a else "UpBlock2D" for a in reversed(attention)),
      attention_head_dim=None,  # one head as wide as the block
      norm_num_groups=layout["num_groups"], norm_eps=1e-6, downsample_padding=0,
      time_embedding_type="positional", flip_sin_to_cos=False, freq_shift=1, dropout=dropout)
