"""The convolution kinds gen_jax's models use, alone: XLA:CPU's default (YNN) path, the Eigen path that
gen_jax selects (`gen_jax/xla_cpu_flags.py`), and torch channels-last, at the models' shapes.

    python benchmarks/convolutions.py              # 3 rounds, ~5 min on 2 cores
    python benchmarks/convolutions.py --rounds 1 --kinds "DCGAN critic 4x4 s2"

Each round runs three fresh processes one after the other (XLA reads its flags once per process):
jax with `GEN_JAX_XLA_CPU_FLAGS=0` (YNN), jax with gen_jax's flag (Eigen), torch; the table holds the
median over rounds of each process's median window. Per kind: the forward, the input gradient and the
kernel gradient alone (jax: the VJP of one argument, compiled; torch: `autograd.grad` of a retained
graph), in ms, with GFLOP/s (2 N H' W' kh kw C_in C_out per pass) and, for scale, a 2048^3 float32
matmul's GFLOP/s in the same jax process. A jax upgrade that changes this picture shows here first.
Writes benchmarks/convolutions_cpu.json.
"""
import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import time

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
from timing import cpu_flags, cpu_model, num_cores  # pylint: disable=wrong-import-position

# name: (input [N, H, W, C_in], kernel [kh, kw, C_in, C_out], stride, padding (top, bottom, left, right))
KINDS = {
    "U-Net 3x3 (CPU U-Net, 16x16)": ((16, 16, 16, 64), (3, 3, 64, 64), 1, (1, 1, 1, 1)),
    "U-Net 3x3 (CIFAR U-Net, 32x32)": ((8, 32, 32, 128), (3, 3, 128, 128), 1, (1, 1, 1, 1)),
    "U-Net 1x1 skip": ((16, 16, 16, 128), (1, 1, 128, 64), 1, (0, 0, 0, 0)),
    "DCGAN critic 4x4 s2": ((64, 16, 16, 64), (4, 4, 64, 128), 2, (1, 1, 1, 1)),
    "DCGAN generator 2x2 phase": ((64, 16, 16, 128), (2, 2, 128, 64), 1, (1, 0, 1, 0)),
    "Glow coupling 3x3 (8x8, 16->256)": ((64, 8, 8, 16), (3, 3, 16, 256), 1, (1, 1, 1, 1)),
    "PixelCNN masked 2x3 (28x28)": ((32, 28, 28, 32), (2, 3, 32, 64), 1, (1, 0, 1, 1)),
    "EBM 3x3 (28x28)": ((64, 28, 28, 32), (3, 3, 32, 32), 1, (1, 1, 1, 1)),
}
PASSES = ("forward", "d_input", "d_kernel")
SIDES = ("jax YNN (default flags)", "jax Eigen (gen_jax's flag)", "torch channels-last")


def flops(x_shape, k_shape, stride, padding):
  n, h, w, _ = x_shape
  kh, kw, ci, co = k_shape
  top, bottom, left, right = padding
  ho, wo = (h + top + bottom - kh) // stride + 1, (w + left + right - kw) // stride + 1
  return 2 * n * ho * wo * kh * kw * ci * co


def median_ms(run, window_s, windows):
  """Median over `windows` timed windows of ms per call; `run(n)` does n calls and waits."""
  run(2)
  t0 = time.perf_counter()
  run(1)
  calls = max(1, round(window_s / max(time.perf_counter() - t0, 1e-6)))
  times = []
  for _ in range(windows):
    t0 = time.perf_counter()
    run(calls)
    times.append(1e3 * (time.perf_counter() - t0) / calls)
  return statistics.median(times)


def jax_worker(kinds, window_s, windows):
  import gen_jax  # first: it sets (or, opted out, does not set) the XLA:CPU flag
  import jax
  import jax.numpy as jnp
  out = {"XLA_FLAGS": os.environ.get("XLA_FLAGS", ""), "not_applied": gen_jax.xla_cpu_flags.not_applied,
         "kinds": {}}
  for name in kinds:
    x_shape, k_shape, stride, (top, bottom, left, right) = KINDS[name]
    kx, kk = jax.random.split(jax.random.key(0))
    x, k = jax.random.normal(kx, x_shape), jax.random.normal(kk, k_shape) * 0.1
    conv = lambda x, k: jax.lax.conv_general_dilated(x, k, (stride, stride), ((top, bottom), (left, right)),
                                                     dimension_numbers=("NHWC", "HWIO", "NHWC"))
    g = jnp.ones_like(conv(x, k))
    fns = {"forward": jax.jit(conv),
           "d_input": jax.jit(lambda x, k: jax.vjp(lambda x: conv(x, k), x)[1](g)[0]),
           "d_kernel": jax.jit(lambda x, k: jax.vjp(lambda k: conv(x, k), k)[1](g)[0])}

    def runner(f):
      def run(n):
        for _ in range(n):
          r = f(x, k)
        jax.block_until_ready(r)
      return run
    out["kinds"][name] = {p: median_ms(runner(fns[p]), window_s, windows) for p in PASSES}
  a = jax.random.normal(jax.random.key(1), (2048, 2048))
  matmul = jax.jit(lambda a: a @ a)
  ms = median_ms(lambda n: [matmul(a) for _ in range(n)][-1].block_until_ready(), 1.0, windows)
  out["matmul_2048_gflops"] = 2 * 2048 ** 3 / ms / 1e6
  return out


def torch_worker(kinds, window_s, windows):
  import torch
  import torch.nn.functional as F
  torch.set_num_threads(num_cores())
  out = {"torch": torch.__version__, "threads": torch.get_num_threads(), "kinds": {}}
  for name in kinds:
    (n, h, w, c), (kh, kw, ci, co), stride, (top, bottom, left, right) = KINDS[name]
    cl = torch.channels_last
    x = torch.randn(n, c, h, w).to(memory_format=cl).requires_grad_()
    k = (0.1 * torch.randn(co, ci, kh, kw)).to(memory_format=cl).requires_grad_()
    if top == bottom and left == right:  # symmetric padding inside the convolution, as models write it
      conv = lambda x, k: F.conv2d(x, k, stride=stride, padding=(top, left))
    else:
      conv = lambda x, k: F.conv2d(F.pad(x, (left, right, top, bottom)), k, stride=stride)
    y = conv(x, k)
    g = torch.ones_like(y)

    def forward(m):
      with torch.no_grad():
        for _ in range(m):
          conv(x, k)

    def grad(wrt):
      def run(m):
        for _ in range(m):
          torch.autograd.grad(y, wrt, g, retain_graph=True)
      return run
    out["kinds"][name] = {"forward": median_ms(forward, window_s, windows),
                          "d_input": median_ms(grad(x), window_s, windows),
                          "d_kernel": median_ms(grad(k), window_s, windows)}
  return out


def run_worker(side, kinds, window_s, windows):
  env = {**os.environ, "XLA_FLAGS": ""}
  env["GEN_JAX_XLA_CPU_FLAGS"] = "0" if side == SIDES[0] else "1"
  kind = "torch" if side == SIDES[2] else "jax"
  result = subprocess.run([sys.executable, __file__, "--worker", kind, "--kinds", *kinds,
                           "--window-s", str(window_s), "--windows", str(windows)],
                          env=env, capture_output=True, text=True, check=False)
  if result.returncode:
    raise RuntimeError(f"{side} worker failed:\n{result.stderr[-3000:]}")
  return json.loads(result.stdout.splitlines()[-1])


def environment():
  import jax
  import jaxlib
  import torch
  return {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
          "python": sys.version.split()[0], "cpu_model": cpu_model(), "cpu_simd_flags": cpu_flags(),
          "cpus_in_affinity": num_cores(), "jax": jax.__version__, "jaxlib": jaxlib.__version__,
          "torch": torch.__version__, "loadavg_1_5_15min_at_start": os.getloadavg()}


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--kinds", nargs="*", default=list(KINDS), choices=list(KINDS))
  p.add_argument("--rounds", type=int, default=3)
  p.add_argument("--window-s", type=float, default=0.3)
  p.add_argument("--windows", type=int, default=5)
  p.add_argument("--worker", choices=("jax", "torch"), help=argparse.SUPPRESS)
  p.add_argument("--json", default=os.path.join(HERE, "convolutions_cpu.json"))
  args = p.parse_args()
  if args.worker:
    worker = jax_worker if args.worker == "jax" else torch_worker
    print(json.dumps(worker(args.kinds, args.window_s, args.windows)))
    return
  env = environment()
  rounds = []
  for r in range(args.rounds):
    rounds.append({side: run_worker(side, args.kinds, args.window_s, args.windows) for side in SIDES})
    print(f"round {r + 1}/{args.rounds} done", flush=True)
  ms = {name: {side: {pas: statistics.median(rd[side]["kinds"][name][pas] for rd in rounds) for pas in PASSES}
               for side in SIDES} for name in args.kinds}
  matmul = statistics.median(rd[s]["matmul_2048_gflops"] for rd in rounds for s in SIDES[:2])
  ynn, eigen, torch_side = SIDES
  print(f"\n{cpu_model()}, {num_cores()} cores, jax {env['jax']}, torch {env['torch']}; "
        f"2048^3 matmul {matmul:.0f} GFLOP/s (jax)")
  print(f"{'kind':34s} {'pass':9s} {'YNN ms':>8s} {'Eigen ms':>9s} {'torch ms':>9s} {'Eigen GFLOP/s':>14s} "
        f"{'Eigen/YNN':>10s} {'Eigen/torch':>12s}")
  rows = []
  for name in args.kinds:
    gflop = flops(*KINDS[name]) / 1e9
    for pas in PASSES:
      y, e, t = (ms[name][s][pas] for s in SIDES)
      row = {"kind": name, "pass": pas, "gflop": gflop, "ms": {ynn: y, eigen: e, torch_side: t},
             "eigen_gflops": gflop / e * 1e3, "speedup_eigen_over_ynn": y / e, "speedup_eigen_over_torch": t / e}
      rows.append(row)
      print(f"{name:34s} {pas:9s} {y:8.2f} {e:9.2f} {t:9.2f} {row['eigen_gflops']:14.0f} "
            f"{row['speedup_eigen_over_ynn']:9.2f}x {row['speedup_eigen_over_torch']:11.2f}x")
  result = {"environment": env, "rounds": args.rounds, "matmul_2048_gflops": matmul,
            "flags": {s: rounds[0][s].get("XLA_FLAGS") for s in SIDES[:2]}, "rows": rows,
            "per_round": rounds}
  with open(args.json, "w") as f:
    json.dump(result, f, indent=1)
  print(f"wrote {args.json}")


if __name__ == "__main__":
  main()
