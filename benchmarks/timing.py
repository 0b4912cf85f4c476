"""Shared by the benchmarks: the machine's description, and side-by-side timing with alternating windows.

Each side's `run(n)` does n units of work and waits for them. `compare` warms every side up, sizes
its window, then alternates the sides' timed windows (A, B, A, B, ...) so that they see the same
machine load, and reports the median rate of each.

The benchmarks against a PyTorch peer (diffusion_vs_diffusers, gan_vs_pytorch, flow_matching_vs_torchcfm,
ebm_vs_pytorch) share the rest: the environment record, jax and torch started with the timed thread
count, random uint8 batches, parameter and XLA flop counts, gen_jax's Task step and compiled calls,
one timed side per torch thread count, the comparison printed and recorded, the JSON written.
"""
import datetime
import json
import os
import platform
import statistics
import sys
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


THREADS_HELP = ("torch intra-op thread count(s), comma-separated; each is timed and the table keeps the fastest "
                "(default: the cores this process may use, as XLA does; '2,1' also times 1 thread, which wins on "
                "an oversubscribed machine)")


def add_run_arguments(parser, quick_help: str, default_json: str) -> None:
  """--quick (a smoke test: `quick_help`, no JSON unless --json) and --json OUT."""
  parser.add_argument("--quick", action="store_true",
                      help=f"smoke test: {quick_help}; writes no JSON unless --json is given")
  parser.add_argument("--json", metavar="OUT", default=None,
                      help=f"where to write environment and results (full run default: {default_json})")


def json_path(args, default_json: str):
  """Where the results go: --json, else `default_json` for a full run and nowhere for --quick."""
  return args.json or (None if args.quick else default_json)


def parse_threads(text, default=None) -> list[int]:
  """--threads "2,1" -> [2, 1]; None -> `default` (the cores this process may use)."""
  return [int(t) for t in text.split(",")] if text else (default or [num_cores()])


def start_jax_and_torch(threads):
  """(jax, torch, t_start): jax on the CPU unless JAX_PLATFORMS says otherwise, torch with threads[0]
  intra-op threads; imported here, after the arguments are parsed, so that --help needs neither."""
  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  import jax
  import torch
  torch.set_num_threads(threads[0])
  return jax, torch, time.perf_counter()


def torch_environment(jax, torch, **versions) -> dict:
  """The machine and the libraries of a gen_jax-vs-PyTorch run; `versions`: the peer libraries'
  (name=version), recorded after torch's."""
  import flax
  import jaxlib
  import optax
  return {
      "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
      "python": sys.version.split()[0], "cpu_model": cpu_model(), "cpu_simd_flags": cpu_flags(),
      "os_cpu_count": os.cpu_count(), "cpus_in_affinity": num_cores(),
      "jax": jax.__version__, "jaxlib": jaxlib.__version__, "flax": flax.__version__, "optax": optax.__version__,
      "jax_backend": jax.default_backend(), "jax_devices": [str(d) for d in jax.devices()],
      "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
      "torch": torch.__version__, **versions, "numpy": np.__version__,
      "torch_num_interop_threads": torch.get_num_interop_threads(),
      "loadavg_1_5_15min_at_start": os.getloadavg(),
  }


def write_results(path, t_start, **results):
  """`results` as JSON at `path`, with total_s (since t_start) and loadavg_at_end."""
  with open(path, "w") as f:
    json.dump(dict(results, total_s=time.perf_counter() - t_start, loadavg_at_end=os.getloadavg()), f, indent=1)
  print(f"wrote {path}")


def random_images(batch, size, channels=3, seed=0) -> np.ndarray:
  """uint8 [batch, size, size, channels] of uniform levels in {0, ..., 255} (any images do for throughput)."""
  return np.random.default_rng(seed).integers(0, 256, (batch, size, size, channels), dtype=np.uint8)


def torch_nchw(torch, x_uint8):
  """The uint8 NHWC batch as a torch tensor in torch's NCHW layout (still uint8)."""
  return torch.from_numpy(np.ascontiguousarray(x_uint8.transpose(0, 3, 1, 2)))


def count_params(tree) -> int:
  """Parameters in a pytree of arrays."""
  import jax
  return int(sum(np.prod(p.shape) for p in jax.tree.leaves(tree)))


def count_torch_params(module) -> int:
  return int(sum(p.numel() for p in module.parameters()))


def xla_flops(compiled) -> float:
  """XLA's count of the floating-point operations of one call of a compiled function (nan without one)."""
  cost = compiled.cost_analysis()
  cost = cost[0] if isinstance(cost, (list, tuple)) else cost
  return float(cost.get("flops", float("nan"))) if cost else float("nan")


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


def compare_with_torch(ours, theirs, timing):
  """Alternates the windows of gen_jax's side `ours` and the torch sides `theirs` (one per thread count,
  `torch_sides`; may be empty) by `compare(**timing)` and prints every side. Returns (gen_jax's median
  rate, the fastest torch side's name and median rate, or None and None without one, the record of the
  windows for the JSON: medians, repeats, calls_per_window)."""
  sides = [ours, *theirs]
  rates = compare(sides, **timing)
  for side in sides:
    print(describe(side))
  theirs_name, theirs_rate = fastest(rates, theirs) if theirs else (None, None)
  record = dict(medians=rates, repeats={s.name: s.rates for s in sides},
                calls_per_window={s.name: s.calls_per_window for s in sides})
  return rates[ours.name], theirs_name, theirs_rate, record


def final_losses(t_start, t_timed, losses: dict, what: str = "final losses") -> list[float]:
  """Each side's last loss ({side: loss}) checked finite (`check_finite`) and logged with the seconds since
  t_timed; returns them as floats, in order."""
  values = [check_finite(name, loss) for name, loss in losses.items()]
  log(t_start, f"  {what}: " + ", ".join(f"{name} {v:.4f}" for name, v in zip(losses, values))
      + f"  [{time.perf_counter() - t_timed:.0f} s timed incl. warm-up]")
  return values


def torch_sides(torch, side_class, label, run, items_per_call, thread_counts):
  """One timed side per torch intra-op thread count."""
  def with_threads(threads):
    def wrapped(n):
      torch.set_num_threads(threads)
      run(n)
    return wrapped
  return [side_class(f"{label} ({t} thr)", with_threads(t), items_per_call) for t in thread_counts]


def init_task(jax, task, x, key):
  """(params, model_state, opt_state, seconds): a gen_jax Task's initial state for the batch x, each part
  jitted (with an "rbg" key the initialisation compiles much faster than with threefry on CPU)."""
  t0 = time.perf_counter()
  params, model_state = jax.jit(task.init)(key, x)
  opt_state = jax.jit(task.optimizer.init)(params)
  jax.block_until_ready((params, model_state, opt_state))
  return params, model_state, opt_state, time.perf_counter() - t0


class CompiledCall:
  """fn(*args) under `jax.jit`, compiled ahead of time (`compile_s`); `run(n)` calls it n times and waits."""

  def __init__(self, jax, fn, *args):
    self.jax, self.args = jax, args
    t0 = time.perf_counter()
    self.fn = jax.jit(fn).lower(*args).compile()
    self.compile_s = time.perf_counter() - t0
    self.out = None

  def run(self, n):
    for _ in range(n):
      self.out = self.fn(*self.args)
    self.jax.block_until_ready(self.out)


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


class TorchTrainStep:
  """An eager torch training step on a fixed uint8 batch x (NHWC, held as NCHW): `loss_of(x)` at x's bin
  centres 2 x / 255 - 1 (as gen_jax's model space), backward, torch.optim.Adam(lr); `run(n)` does n steps
  and keeps the last loss. Subclasses define `loss_of`; `net` is in train mode."""

  def __init__(self, torch, net, x_uint8, lr):
    self.torch, self.net = torch, net.train()
    self.num_params = count_torch_params(net)
    self.x = torch_nchw(torch, x_uint8)
    self.opt = torch.optim.Adam(net.parameters(), lr=lr)
    self.loss = None

  def loss_of(self, x):
    raise NotImplementedError

  def run(self, n):
    for _ in range(n):
      loss = self.loss_of(self.x.float() / 127.5 - 1.0)
      self.opt.zero_grad(set_to_none=True)
      loss.backward()
      self.opt.step()
      self.loss = loss.detach()


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


# The keyword arguments of gen_jax's nn.UNet in a layout (diffusion_vs_diffusers, flow_matching_vs_torchcfm).
UNET_KEYS = ("channels", "channel_multipliers", "num_res_blocks", "attention_resolutions", "num_groups")


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
