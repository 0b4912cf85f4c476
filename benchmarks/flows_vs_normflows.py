"""Training and sampling throughput of gen_jax flows next to normflows (PyTorch), same run, same
architecture, reported as ratios gen_jax / normflows (> 1 means gen_jax is faster).

Models (both sides built to the same shape; differences are printed with the results):
  1. RealNVP on 2-D data, batch 512: 8 affine couplings with alternating halves, each conditioned
     by an MLP with 2 hidden ReLU layers of width --hidden (gen_jax `RealNVP(event_shape=(2,),
     num_couplings=8, hidden=H, depth=2)`; normflows `AffineCouplingBlock(MLP([1, H, H, 2]))` +
     `Permute(2, "swap")`, as in normflows' examples/real_nvp_colab.ipynb).
     Train steps/s (gen_jax one step per jitted call, and K steps per call with `lax.scan`) and
     sampling samples/s.
  2. Multi-scale Glow on 3x32x32 (L=3 levels, K=8 steps, 256 hidden channels), batch 32
     (gen_jax `Glow(event_shape=(32, 32, 3), num_scales=3, num_steps=8, hidden_channels=256)`;
     normflows `GlowBlock`s in a `MultiscaleFlow`, as in normflows' examples/glow_colab.ipynb).
     Train examples/s.

A train step is: mean NLL forward, backward, Adam update (lr 1e-3 for the 2-D flow, 1e-4 for
Glow, both sides) on a batch already on the device. gen_jax: `jax.jit` of value_and_grad + optax.adam with donated params/optimizer state;
the timed window dispatches its steps back to back and blocks on the result once at its end.
normflows: eager PyTorch (`forward_kld`, `backward`, `torch.optim.Adam.step`), torch.compile only
with --torch-compile; it is timed with torch.set_num_threads(os.cpu_count()) and with 1 thread
(--torch-threads), and the table compares against the faster of the two (on a small or shared
CPU OpenMP's extra threads can cost torch more than they give). Compilation and warm-up are
excluded; the two sides' timed windows alternate (A, B, A, B, ...) so that both see the same machine load, and each number is the
median over the repeats.

  pip install -r benchmarks/requirements.txt
  python benchmarks/flows_vs_normflows.py [--quick] [--device cpu|gpu] [--json OUT]
"""
from __future__ import annotations

import argparse
import datetime
import functools
import json
import os
import sys
import time

import numpy as np

from timing import Timed, compare, cpu_flags, cpu_model, describe

# ---------------------------------------------------------------------------------------------
# Environment
# ---------------------------------------------------------------------------------------------


def environment(jax, torch, torch_device) -> dict:
  import flax
  import jaxlib
  import normflows
  import optax
  env = {
      "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
      "python": sys.version.split()[0],
      "cpu_model": cpu_model(),
      "cpu_simd_flags": cpu_flags(),
      "os_cpu_count": os.cpu_count(),
      "cpus_in_affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
      "jax": jax.__version__,
      "jaxlib": jaxlib.__version__,
      "flax": flax.__version__,
      "optax": optax.__version__,
      "jax_backend": jax.default_backend(),
      "jax_devices": [str(d) for d in jax.devices()],
      "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
      "torch": torch.__version__,
      "normflows": getattr(normflows, "__version__", "unknown"),
      "numpy": np.__version__,
      "torch_device": str(torch_device),
      "torch_num_threads": torch.get_num_threads(),
      "torch_num_interop_threads": torch.get_num_interop_threads(),
      "loadavg_1_5_15min_at_start": os.getloadavg(),
  }
  if torch_device.type == "cuda":
    env["torch_cuda_device"] = torch.cuda.get_device_name(torch_device)
  return env


# ---------------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------------


# ---------------------------------------------------------------------------------------------
# gen_jax
# ---------------------------------------------------------------------------------------------


def count_jax_params(params) -> int:
  import jax
  return int(sum(np.prod(p.shape) for p in jax.tree.leaves(params)))


def jax_train_step(model, optimizer):
  """jit(step(params, opt_state, x) -> (params, opt_state, loss)), params/opt_state donated."""
  import jax
  import jax.numpy as jnp
  import optax

  def loss_fn(params, x):
    return -jnp.mean(model.apply(params, x, method=model.log_prob))

  def step(params, opt_state, x):
    loss, grads = jax.value_and_grad(loss_fn)(params, x)
    updates, opt_state = optimizer.update(grads, opt_state, params)
    return optax.apply_updates(params, updates), opt_state, loss

  return step


class JaxTrainer:
  """Holds the (donated) state; `run(n)` makes n jitted calls and blocks on the last result."""

  def __init__(self, model, params, optimizer, x, steps_per_call=1):
    import jax
    self.jax = jax
    step = jax_train_step(model, optimizer)
    if steps_per_call == 1:
      self.fn = jax.jit(step, donate_argnums=(0, 1))
    else:
      def many(params, opt_state, xs):              # xs: [K, B, ...], one batch per step
        def body(carry, x):
          p, s, loss = step(carry[0], carry[1], x)
          return (p, s), loss
        (params, opt_state), losses = jax.lax.scan(body, (params, opt_state), xs)
        return params, opt_state, losses
      self.fn = jax.jit(many, donate_argnums=(0, 1))
    opt_state = optimizer.init(params)
    # Compile ahead of time (excluded from the timing) and keep XLA's own operation count.
    self.fn = self.fn.lower(params, opt_state, x).compile()
    cost = self.fn.cost_analysis()
    cost = cost[0] if isinstance(cost, (list, tuple)) else cost
    self.flops_per_call = float(cost.get("flops", float("nan"))) if cost else float("nan")
    self.params, self.opt_state, self.x = params, opt_state, x
    self.loss = None

  def run(self, n):
    for _ in range(n):
      self.params, self.opt_state, self.loss = self.fn(self.params, self.opt_state, self.x)
    self.jax.block_until_ready((self.params, self.loss))


# ---------------------------------------------------------------------------------------------
# normflows
# ---------------------------------------------------------------------------------------------


def with_threads(torch, threads, run):
  """`run` with torch's intra-op thread count set to `threads` for its duration."""
  def wrapped(n):
    torch.set_num_threads(threads)
    run(n)
  return wrapped


def torch_sides(torch, label, run, items_per_call, thread_counts):
  return [Timed(f"{label} ({t} thr)", with_threads(torch, t, run), items_per_call) for t in thread_counts]


def best(result, names):
  """(name, rate) of the fastest of `names` in `result`."""
  name = max(names, key=lambda n: result[n])
  return name, result[name]


def torch_flops_per_step(torch, model, x, loss_fn=None) -> float:
  """FLOPs of one forward + backward as counted by torch's FlopCounterMode (matmul/conv ops)."""
  from torch.utils.flop_counter import FlopCounterMode
  model.zero_grad(set_to_none=True)
  with FlopCounterMode(display=False) as counter:
    (loss_fn or model.forward_kld)(x).backward()
  model.zero_grad(set_to_none=True)
  return float(counter.get_total_flops())


def check_finite(label, value):
  value = float(value)
  if not np.isfinite(value):
    print(f"  WARNING: {label} loss is not finite ({value}); timings with inf/NaN may not be representative")
  return value


def count_torch_params(model) -> int:
  return int(sum(p.numel() for p in model.parameters() if p.requires_grad))


class TorchTrainer:
  def __init__(self, torch, model, x, sync, loss_fn=None, lr=1e-3):
    self.torch, self.model, self.x, self.sync = torch, model, x, sync
    self.loss_fn = loss_fn or model.forward_kld
    self.opt = torch.optim.Adam(model.parameters(), lr=lr)
    self.loss = None

  def run(self, n):
    for _ in range(n):
      self.opt.zero_grad(set_to_none=True)
      loss = self.loss_fn(self.x)
      loss.backward()
      self.opt.step()
      self.loss = loss
    self.sync()


# ---------------------------------------------------------------------------------------------
# 1. RealNVP on 2-D data
# ---------------------------------------------------------------------------------------------


def two_moons(rng, n):
  """[n, 2] float32 two-moons points (any 2-D data does for throughput; this one is bounded)."""
  t = rng.uniform(0, np.pi, n)
  upper = rng.random(n) < 0.5
  x = np.where(upper, np.cos(t), 1.0 - np.cos(t))
  y = np.where(upper, np.sin(t), 0.5 - np.sin(t))
  return (np.stack([x, y], 1) + 0.05 * rng.standard_normal((n, 2))).astype(np.float32)


def bench_realnvp2d(args, jax, torch, jax_device, torch_device, sync, timing):
  import jax.numpy as jnp
  import normflows as nf
  import optax
  from gen_jax.models.flows import RealNVP

  batch, hidden, couplings, k_scan = 512, args.hidden, 8, args.scan_steps
  rng = np.random.default_rng(0)
  x_np = two_moons(rng, batch)
  xs_np = two_moons(rng, k_scan * batch).reshape(k_scan, batch, 2)

  # gen_jax
  model = RealNVP(event_shape=(2,), num_couplings=couplings, hidden=hidden, depth=2)
  x_j = jax.device_put(x_np, jax_device)
  xs_j = jax.device_put(xs_np, jax_device)
  with jax.default_device(jax_device):
    params = jax.jit(functools.partial(model.init, method=model.log_prob))(jax.random.key(0), x_j)
  n_jax = count_jax_params(params)
  optimizer = optax.adam(args.lr_2d)
  copy = lambda p: jax.tree.map(jnp.copy, p)        # each trainer donates its own buffers
  jax_1 = JaxTrainer(model, copy(params), optimizer, x_j)
  jax_k = JaxTrainer(model, copy(params), optimizer, xs_j, steps_per_call=k_scan)
  init_nll_jax = float(-jnp.mean(model.apply(params, x_j, method=model.log_prob)))

  # normflows
  torch.manual_seed(0)
  flows = []
  for _ in range(couplings):
    flows.append(nf.flows.AffineCouplingBlock(nf.nets.MLP([1, hidden, hidden, 2], init_zeros=True)))
    flows.append(nf.flows.Permute(2, mode="swap"))
  base = nf.distributions.DiagGaussian(2, trainable=False)
  nf_model = nf.NormalizingFlow(base, flows).to(torch_device)
  n_torch = count_torch_params(nf_model)
  x_t = torch.from_numpy(x_np).to(torch_device)
  with torch.no_grad():
    init_nll_torch = float(nf_model.forward_kld(x_t))
  torch_tr = TorchTrainer(torch, nf_model, x_t, sync, lr=args.lr_2d)
  nf_flops = torch_flops_per_step(torch, nf_model, x_t)

  print(f"\n[RealNVP 2-D] batch {batch}, {couplings} couplings, MLP 2 hidden x {hidden} ReLU")
  print(f"  parameters: gen_jax {n_jax}, normflows {n_torch} "
        f"(per coupling: gen_jax (2+1)H + (H+1)H + (H+1)4 = {n_jax // couplings}; "
        f"normflows (1+1)H + (H+1)H + (H+1)2 = {n_torch // couplings})")
  print(f"  NLL at init (identity couplings): gen_jax {init_nll_jax:.4f}, normflows {init_nll_torch:.4f} nats")
  print(f"  FLOPs per train step: gen_jax {jax_1.flops_per_call:.4g} (XLA cost analysis, all ops incl. Adam), "
        f"normflows {nf_flops:.4g} (torch FlopCounterMode, fwd+bwd matmuls only)")

  nf_sides = torch_sides(torch, "normflows eager", torch_tr.run, 1, args.torch_threads)
  sides = [Timed("gen_jax jit (1 step/call)", jax_1.run, 1),
           Timed(f"gen_jax scan (K={k_scan} steps/call)", jax_k.run, k_scan)] + nf_sides
  compiled = None
  if args.torch_compile:
    t0 = time.perf_counter()
    c_model = nf.NormalizingFlow(nf.distributions.DiagGaussian(2, trainable=False), [
        m for _ in range(couplings) for m in (
            nf.flows.AffineCouplingBlock(nf.nets.MLP([1, hidden, hidden, 2], init_zeros=True)),
            nf.flows.Permute(2, mode="swap"))]).to(torch_device)
    compiled = TorchTrainer(torch, c_model, x_t, sync, loss_fn=torch.compile(c_model.forward_kld),
                            lr=args.lr_2d)
    compiled.run(2)
    print(f"  torch.compile warm-up took {time.perf_counter() - t0:.1f} s")
    sides += torch_sides(torch, "normflows torch.compile", compiled.run, 1, args.torch_threads)
  train = compare(sides, **timing["realnvp_train"])
  for side in sides:
    print(describe(side))
  print(f"  final losses: gen_jax {check_finite('gen_jax', jax_1.loss):.4f}, "
        f"gen_jax scan {check_finite('gen_jax scan', jax_k.loss[-1]):.4f}, "
        f"normflows {check_finite('normflows', torch_tr.loss.detach()):.4f}")

  # sampling
  num = args.num_samples
  sample_j = jax.jit(lambda p, key: model.apply(p, key, num, method=model.sample))
  key = jax.device_put(jax.random.key(1), jax_device)

  def run_jax_sample(n):
    for _ in range(n):
      out = sample_j(jax_1.params, key)
    jax.block_until_ready(out)

  def run_torch_sample(n):
    with torch.no_grad():
      for _ in range(n):
        nf_model.sample(num)
    sync()

  nf_s_sides = torch_sides(torch, "normflows sample (no_grad)", run_torch_sample, num,
                           args.torch_threads)
  s_sides = [Timed("gen_jax sample (jit)", run_jax_sample, num)] + nf_s_sides
  sample = compare(s_sides, **timing["realnvp_sample"])
  for side in s_sides:
    print(describe(side))

  title = f"RealNVP 2-D (8 couplings, MLP 2x{hidden})"
  nf_name, nf_rate = best(train, [s.name for s in nf_sides])
  nfs_name, nfs_rate = best(sample, [s.name for s in nf_s_sides])
  rows = [
      dict(model=title, metric="train steps/s", batch=batch, gen_jax_variant="jit, 1 step/call",
           gen_jax=train[sides[0].name], normflows_variant=nf_name, normflows=nf_rate),
      dict(model=title, metric="train steps/s", batch=batch,
           gen_jax_variant=f"lax.scan, {k_scan} steps/call", gen_jax=train[sides[1].name],
           normflows_variant=nf_name, normflows=nf_rate),
      dict(model=title, metric="samples/s", batch=num, gen_jax_variant="jit",
           gen_jax=sample["gen_jax sample (jit)"], normflows_variant=nfs_name, normflows=nfs_rate),
  ]
  if compiled is not None:
    c_name, c_rate = best(train, [s.name for s in sides if "compile" in s.name])
    rows.append(dict(model=title, metric="train steps/s", batch=batch,
                     gen_jax_variant="jit, 1 step/call", gen_jax=train[sides[0].name],
                     normflows_variant=c_name, normflows=c_rate))
  info = dict(params_gen_jax=n_jax, params_normflows=n_torch, init_nll_gen_jax=init_nll_jax,
              init_nll_normflows=init_nll_torch, flops_per_step_gen_jax_xla=jax_1.flops_per_call,
              flops_per_step_normflows_torch_counter=nf_flops, medians={**train, **sample},
              repeats={s.name: s.rates for s in sides + s_sides}, loadavg_after=os.getloadavg())
  return rows, info


# ---------------------------------------------------------------------------------------------
# 2. Multi-scale Glow on 3x32x32
# ---------------------------------------------------------------------------------------------


def bench_glow(args, jax, torch, jax_device, torch_device, sync, timing):
  import jax.numpy as jnp
  import normflows as nf
  import optax
  from gen_jax.models.flows import Glow

  batch, levels, steps, hidden, size, channels = args.glow_batch, 3, 8, 256, 32, 3
  rng = np.random.default_rng(0)
  # Uniformly dequantized 8-bit images in [0, 1): [B, H, W, C] for gen_jax, [B, C, H, W] for torch.
  x_np = ((rng.integers(0, 256, (batch, size, size, channels)) + rng.random((batch, size, size, channels)))
          / 256.0).astype(np.float32)

  # gen_jax
  model = Glow(event_shape=(size, size, channels), num_scales=levels, num_steps=steps,
               hidden_channels=hidden)
  x_j = jax.device_put(x_np, jax_device)
  with jax.default_device(jax_device):
    params = jax.jit(functools.partial(model.init, method=model.log_prob))(jax.random.key(0), x_j)
  n_jax = count_jax_params(params)
  jax_tr = JaxTrainer(model, params, optax.adam(args.lr_glow), x_j)

  # normflows, as examples/glow_colab.ipynb but unconditional, with a fixed N(0, I) base per level
  # and the same logit preprocessing as gen_jax's Glow.
  torch.manual_seed(0)
  q0, merges, flows = [], [], []
  for i in range(levels):                                   # i = 0 is the coarsest level
    level = [nf.flows.GlowBlock(channels * 2 ** (levels + 1 - i), hidden, split_mode="channel",
                                scale=True) for _ in range(steps)]
    level += [nf.flows.Squeeze()]
    flows.append(level)
    if i > 0:
      merges.append(nf.flows.Merge())
      shape = (channels * 2 ** (levels - i), size // 2 ** (levels - i), size // 2 ** (levels - i))
    else:
      shape = (channels * 2 ** (levels + 1), size // 2 ** levels, size // 2 ** levels)
    q0.append(nf.distributions.DiagGaussian(shape, trainable=False))
  nf_model = nf.MultiscaleFlow(q0, flows, merges, transform=nf.transforms.Logit(alpha=0.05),
                               class_cond=False).to(torch_device)
  n_torch = count_torch_params(nf_model)
  x_t = torch.from_numpy(np.ascontiguousarray(x_np.transpose(0, 3, 1, 2))).to(torch_device)
  torch_tr = TorchTrainer(torch, nf_model, x_t, sync, lr=args.lr_glow)
  torch_tr.run(1)                         # the first call initialises normflows' ActNorm from data
  nf_flops = torch_flops_per_step(torch, nf_model, x_t)

  per_level = []
  for i, c in enumerate((12, 24, 48)):
    cond_jax = 9 * c * hidden + hidden + hidden * hidden + hidden + 9 * hidden * 2 * c + 2 * c
    cond_nf = 9 * (c // 2) * hidden + hidden + hidden * hidden + hidden + 9 * hidden * c + c
    per_level.append(f"C={c}: coupling net gen_jax {cond_jax} vs normflows {cond_nf}")
  print(f"\n[Glow 3x32x32] batch {batch}, L={levels}, K={steps}, hidden {hidden}")
  print(f"  parameters: gen_jax {n_jax}, normflows {n_torch}  ({'; '.join(per_level)}; "
        f"ActNorm 2C and LU 1x1 conv 2C^2+C identical)")
  print(f"  FLOPs per train step: gen_jax {jax_tr.flops_per_call:.4g} (XLA cost analysis, all ops incl. Adam), "
        f"normflows {nf_flops:.4g} (torch FlopCounterMode, fwd+bwd convs/matmuls only)")

  nf_sides = torch_sides(torch, "normflows eager", torch_tr.run, batch, args.torch_threads)
  sides = [Timed("gen_jax jit (1 step/call)", jax_tr.run, batch)] + nf_sides
  t0 = time.perf_counter()
  result = compare(sides, **timing["glow_train"])
  for side in sides:
    print(describe(side))
  print(f"  final losses (nats/example): gen_jax {check_finite('gen_jax', jax_tr.loss):.1f}, "
        f"normflows {check_finite('normflows', torch_tr.loss.detach()):.1f}"
        f"  [{time.perf_counter() - t0:.0f} s incl. compile + warm-up]")
  nf_name, nf_rate = best(result, [s.name for s in nf_sides])
  rows = [dict(model=f"Glow 3x32x32 (L={levels}, K={steps}, {hidden} ch)", metric="train examples/s",
               batch=batch, gen_jax_variant="jit, 1 step/call", gen_jax=result[sides[0].name],
               normflows_variant=nf_name, normflows=nf_rate)]
  info = dict(params_gen_jax=n_jax, params_normflows=n_torch, medians=result,
              flops_per_step_gen_jax_xla=jax_tr.flops_per_call, flops_per_step_normflows_torch_counter=nf_flops,
              repeats={s.name: s.rates for s in sides}, loadavg_after=os.getloadavg())
  return rows, info


# ---------------------------------------------------------------------------------------------


def markdown_table(rows) -> str:
  lines = ["| model | metric | batch | gen_jax | normflows | ratio (gen_jax / normflows) |",
           "|---|---|---:|---:|---:|---:|"]
  for r in rows:
    nf_label = r["normflows_variant"].replace("normflows ", "")
    lines.append(f"| {r['model']} | {r['metric']} | {r['batch']} | {r['gen_jax']:.4g} ({r['gen_jax_variant']}) "
                 f"| {r['normflows']:.4g} ({nf_label}) | {r['gen_jax'] / r['normflows']:.2f}x |")
  return "\n".join(lines)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--device", choices=("cpu", "gpu"), default="cpu",
                 help="run both sides on the CPU, or on a GPU (jax backend gpu, torch cuda)")
  p.add_argument("--quick", action="store_true", help="fewer and shorter timed windows (a smoke test)")
  p.add_argument("--json", metavar="OUT", help="write the environment and results to this JSON file")
  p.add_argument("--models", default="realnvp2d,glow", help="comma-separated subset of realnvp2d,glow")
  p.add_argument("--hidden", type=int, default=64, help="MLP width of the 2-D RealNVP conditioners")
  p.add_argument("--scan-steps", type=int, default=100, help="steps per compiled call (lax.scan) for 2-D")
  p.add_argument("--num-samples", type=int, default=10000, help="samples per sampling call (2-D)")
  p.add_argument("--glow-batch", type=int, default=32)
  p.add_argument("--lr-2d", type=float, default=1e-3, help="Adam learning rate, 2-D RealNVP (both sides)")
  p.add_argument("--lr-glow", type=float, default=1e-4,
                 help="Adam learning rate, Glow (both sides; at 1e-3 without warm-up gen_jax's Glow "
                      "diverges to inf on the first steps, which would time inf arithmetic)")
  p.add_argument("--torch-threads", default="auto",
                 help="comma-separated torch intra-op thread counts to time (the table keeps the fastest); "
                      "auto = os.cpu_count() and 1")
  p.add_argument("--torch-compile", action="store_true",
                 help="also time normflows with torch.compile on the 2-D RealNVP")
  args = p.parse_args(argv)
  if args.torch_threads == "auto":
    args.torch_threads = sorted({os.cpu_count() or 1, 1}, reverse=True)
  else:
    args.torch_threads = [int(t) for t in args.torch_threads.split(",")]

  if args.device == "gpu":
    os.environ.setdefault("JAX_PLATFORMS", "cuda,cpu")
  else:
    os.environ.setdefault("JAX_PLATFORMS", "cpu")
  import jax
  import torch

  torch.set_num_threads(os.cpu_count())
  torch.set_anomaly_enabled(False)
  if args.device == "gpu":
    if jax.default_backend() != "gpu":
      raise SystemExit(f"--device gpu: jax's default backend is {jax.default_backend()!r}, not 'gpu'")
    if not torch.cuda.is_available():
      raise SystemExit("--device gpu: torch.cuda.is_available() is False (a CPU-only torch wheel?)")
    jax_device, torch_device = jax.devices("gpu")[0], torch.device("cuda")
    sync = torch.cuda.synchronize
  else:
    jax_device, torch_device = jax.devices("cpu")[0], torch.device("cpu")
    sync = lambda: None

  if args.quick:
    timing = dict(realnvp_train=dict(warmup_calls=3, window_s=0.3, repeats=2),
                  realnvp_sample=dict(warmup_calls=2, window_s=0.3, repeats=2),
                  glow_train=dict(warmup_calls=1, window_s=0.1, repeats=1))
  else:
    timing = dict(realnvp_train=dict(warmup_calls=20, window_s=1.0, repeats=5),
                  realnvp_sample=dict(warmup_calls=3, window_s=1.0, repeats=5),
                  glow_train=dict(warmup_calls=2, window_s=3.0, repeats=3))

  env = environment(jax, torch, torch_device)
  print("environment:")
  for k, v in env.items():
    print(f"  {k}: {v}")

  rows, info = [], {}
  models = [m.strip() for m in args.models.split(",") if m.strip()]
  for name in models:
    if name == "realnvp2d":
      r, i = bench_realnvp2d(args, jax, torch, jax_device, torch_device, sync, timing)
    elif name == "glow":
      r, i = bench_glow(args, jax, torch, jax_device, torch_device, sync, timing)
    else:
      raise SystemExit(f"unknown model {name!r}; expected realnvp2d or glow")
    rows += r
    info[name] = i

  table = markdown_table(rows)
  print("\n" + table)
  if args.json:
    with open(args.json, "w") as f:
      json.dump(dict(environment=env, args=vars(args), timing=timing, results=rows, details=info), f,
                indent=2)
    print(f"\nwrote {args.json}")


if __name__ == "__main__":
  main()
