"""How long every experiment config takes before its first optimizer step, and the step after that.

    python benchmarks/compile_times.py                      # every config, default and :cpu variant
    python benchmarks/compile_times.py ddpm_digits glow_mnist --variants cpu

For each config: the task built on its real dataset, the train state initialised (compile + run), the
first train call (trace + compile + one step), then one more step (run only): "compile" below is the
first call less the second. A step that the engine runs as a `lax.scan` (no convolution, or not on CPU)
is timed as a call of `train.steps_per_call` steps, per step. Writes benchmarks/compile_times_cpu.json.
"""
import argparse
import datetime
import glob
import importlib
import json
import os
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import gen_jax  # pylint: disable=wrong-import-position  (first: it sets the XLA:CPU flag)
import jax  # pylint: disable=wrong-import-position
from timing import cpu_model, num_cores  # pylint: disable=wrong-import-position
from gen_jax import data as data_lib, models  # pylint: disable=wrong-import-position
from gen_jax.drivers import loop  # pylint: disable=wrong-import-position
from gen_jax.train import sharding, step as step_lib  # pylint: disable=wrong-import-position

NOT_TRAINED_HERE = {"base", "gan_base", "__init__"}


def label(name: str, variant: str) -> str:
  return f"{name}:{variant}" if variant else name


def measure(name: str, variant: str) -> dict:
  config = importlib.import_module(f"experiments.configs.{name}").get_config(variant or None)
  t = config.train
  mesh = sharding.make_mesh(jax.devices()[:1])
  train_ds = data_lib.load_dataset(config.data.name, "train", config.data.data_dir)
  t0 = time.perf_counter()
  task = models.build_task(config, train_ds.spec)
  init_state, state_sharding = step_lib.make_init_state(task, t.ema_decay, mesh)
  examples = loop.examples(task, train_ds)
  batch_at = lambda s: jax.tree.map(
      lambda a: a[data_lib.batch_indices(s, t.batch_size, len(train_ds), config.seed)], examples)
  state = jax.block_until_ready(init_state(jax.random.key(0), batch_at(0)))
  t_init = time.perf_counter() - t0
  steps = step_lib.make_train_steps(task, t.ema_decay, mesh, state_sharding)
  key = jax.random.key(1)
  k = 1
  plan = lambda: jax.tree.map(lambda *b: np.stack(b), *[batch_at(s) for s in range(k)])
  t0 = time.perf_counter()
  state, _ = jax.block_until_ready(steps(state, plan(), key))
  first = time.perf_counter() - t0
  if not steps.step_by_step and t.steps_per_call > 1:  # the run compiles the K-step scan, not this
    k = t.steps_per_call
    t0 = time.perf_counter()
    state, _ = jax.block_until_ready(steps(state, plan(), key))
    first = time.perf_counter() - t0
  t0 = time.perf_counter()
  state, metrics = jax.block_until_ready(steps(state, plan(), key))
  steady = time.perf_counter() - t0
  return {"config": label(name, variant), "batch": t.batch_size,
          "plan": "step by step" if steps.step_by_step else f"lax.scan of {k}",
          "build_and_init_s": round(t_init, 2), "compile_s": round(first - steady, 2),
          "step_s": round(steady / k, 4), "loss_finite": bool(np.isfinite(np.asarray(metrics["loss"])).all())}


def main():
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("configs", nargs="*", help="config module names (default: all in experiments/configs)")
  p.add_argument("--variants", default=",cpu", help="comma-separated variants; '' is the default config")
  p.add_argument("--json", default=os.path.join(ROOT, "benchmarks", "compile_times_cpu.json"))
  args = p.parse_args()
  names = args.configs or sorted(
      n for n in (os.path.basename(f)[:-3] for f in glob.glob(os.path.join(ROOT, "experiments/configs/*.py")))
      if n not in NOT_TRAINED_HERE)
  rows = []
  for name in names:
    for variant in args.variants.split(","):
      try:
        row = measure(name, variant)
      except Exception as e:  # a config the machine cannot run (e.g. data not here): say so, go on
        row = {"config": label(name, variant), "error": f"{type(e).__name__}: {e}"[:300]}
      rows.append(row)
      print(json.dumps(row), flush=True)
  result = {"date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
            "cpu_model": cpu_model(), "cpus_in_affinity": num_cores(), "jax": jax.__version__,
            "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""), "rows": rows}
  with open(args.json, "w") as f:
    json.dump(result, f, indent=1)
  print(f"wrote {args.json}")


if __name__ == "__main__":
  main()
