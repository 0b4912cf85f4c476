"""gen_jax's former hand-written Dormand-Prince 5(4) next to diffrax's, same run, same problems, same
tolerances, reported as ratios time(diffrax) / time(hand-written) (> 1: hand-written faster). This measurement
decided that gen_jax.ode.solve_ode wraps diffrax (gen_jax/ode/solver.py's docstring has the numbers).

Why: one ODE layer serves the probability-flow likelihood and sampler of the diffusion family, flow
matching, and the continuous-normalizing-flow log-density (gen_jax.ode.change_of_variables). The field's
maintained solver library is diffrax (Kidger 2021); the project prefers it unless it is measured slower here.

Problems (float32, t from 0 to 1 for the likelihoods, 1 to 0 for sampling; random networks, as throughput
does not depend on training; the U-Net's zero-initialised output convolutions are re-drawn so that the
field is not identically 0):
  (a) mlp_exact: the change-of-variables ODE (z [B, 2], int div [B]) of a velocity field
      TimeConditionedMLP(hidden_sizes=(64, 64)) on 2-D data, exact divergence (gen_jax.ode.exact_divergence,
      2 Jacobian-vector products), batch 512.
  (b) unet_hutchinson: the same for UNet(channels=16, channel_multipliers=(1, 2), attention_resolutions=(),
      num_groups=4, dropout=0) on 8x8x1 images, Hutchinson's divergence (one Rademacher eps fixed along the
      solve), batch 64.
  (c) unet_sample: the state z [64, 8, 8, 1] alone (no divergence), the probability-flow sampler's ODE.
The right-hand side is the same Python function on every side.

Sides, each one `jax.jit` function compiled ahead of time (compile seconds reported apart), warm:
  hand-written dopri5: benchmarks/former_dopri5.py (gen_jax/ode/solver.py as of commit 4f9fb6d, kept there):
                   solve_ode(fn, y0, t0, t1, method="dopri5", rtol=1e-5, atol=1e-5, max_steps=10000).
  diffrax Dopri5:  diffeqsolve(ODETerm, Dopri5(), t0, t1, dt0=None, y0, PIDController(rtol=1e-5, atol=1e-5),
                   max_steps=10000, saveat=SaveAt(t1=True), throw=False), default adjoint
                   (RecursiveCheckpointAdjoint).
  diffrax Tsit5:   the same with Tsit5() (diffrax's recommended default; for information).
  gen_jax solve_ode (diffrax): today's gen_jax.ode.solve_ode (diffrax's Dopri5 and PIDController behind the
                   same interface: Hairer's starting step, non-finite trial steps shrunk 5x, ForwardMode).
  The last two on (a) only unless --all-sides, as the U-Net solves are long.
Both controllers use the RMS norm over every component of the state with the error scale
atol + rtol max(|y0|, |y1|), the I controller with safety 0.9 and factors in [0.2, 10], with these
differences of policy: the hand-written one does not enlarge the step right after a rejection (Hairer's
facmax = 1) and shrinks it after an acceptance with err > 0.59, and starts with Hairer's heuristic step;
diffrax never shrinks the step after an acceptance (factormin = 1 then), and with dt0=None its first step
is 0.01 (diffrax 0.7.2: the heuristic in PIDController.init returns 0.01 unless the term is an ODETerm, and
diffeqsolve passes it a WrapTerm; seen by counting the evaluations). So they take different numbers of
steps; the time per function evaluation separates the libraries' overhead from the controllers' choices.
Function evaluations: gen_jax reports them; raw diffrax's are 1 + 6 x (accepted + rejected) for the FSAL
Dopri5/Tsit5 (one more per rejection of the first step), checked by counting calls with a host callback
on problem (a).

Timing: benchmarks/timing.py's alternating windows (A, B, C, A, B, C, ...), median over the repeats.

  pip install diffrax
  python benchmarks/ode_vs_diffrax.py            # ~20 min on 2 busy cores; writes benchmarks/ode_vs_diffrax_cpu.json
  python benchmarks/ode_vs_diffrax.py --quick    # smoke test (batches 64 and 8)
"""
from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import Timed, compare, cpu_flags, cpu_model, describe, log, num_cores  # pylint: disable=wrong-import-position
import former_dopri5  # pylint: disable=wrong-import-position

import jax  # pylint: disable=wrong-import-position
import jax.numpy as jnp  # pylint: disable=wrong-import-position

DEFAULT_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ode_vs_diffrax_cpu.json")
PROBLEMS = ("mlp_exact", "unet_hutchinson", "unet_sample")
# The U-Net solves take tens of seconds each on 2 shared cores: one call per window, the calibration call
# (untimed) as the warm-up.
TIMING = {"full": dict(warmup_calls=1, window_s=3.0, repeats=3, max_calls=1000),
          "full_unet": dict(warmup_calls=0, window_s=0.0, repeats=2, max_calls=1),
          "quick": dict(warmup_calls=1, window_s=0.3, repeats=2, max_calls=100)}


def environment() -> dict:
  import diffrax
  import equinox
  import flax
  import jaxlib
  return {
      "date_utc": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
      "python": sys.version.split()[0], "cpu_model": cpu_model(), "cpu_simd_flags": cpu_flags(),
      "os_cpu_count": os.cpu_count(), "cpus_in_affinity": num_cores(),
      "jax": jax.__version__, "jaxlib": jaxlib.__version__, "flax": flax.__version__,
      "diffrax": diffrax.__version__, "equinox": equinox.__version__, "numpy": np.__version__,
      "jax_backend": jax.default_backend(), "XLA_FLAGS": os.environ.get("XLA_FLAGS", ""),
      "loadavg_1_5_15min_at_start": os.getloadavg(),
  }


# ---------------------------------------------------------------------------------------------
# Problems: (rhs(params, t, y), params, y0, t0, t1, readout(y) -> {name: array})
# ---------------------------------------------------------------------------------------------


def _redraw_zero_kernels(params, key):
  """Zero-initialised kernels (the U-Net's output convolutions) get LeCun-normal values instead."""
  leaves, treedef = jax.tree_util.tree_flatten_with_path(params)
  keys = jax.random.split(key, len(leaves))
  out = []
  for (path, leaf), k in zip(leaves, keys):
    if "kernel" in jax.tree_util.keystr(path) and not np.any(np.asarray(leaf)):
      fan_in = int(np.prod(leaf.shape[:-1]))
      leaf = jax.random.normal(k, leaf.shape, leaf.dtype) / np.sqrt(fan_in)
    out.append(leaf)
  return jax.tree_util.tree_unflatten(treedef, out)


def make_problem(name: str, quick: bool):
  from gen_jax import nn
  from gen_jax.distributions import gaussian
  from gen_jax.ode import divergence
  rng = np.random.default_rng(0)
  if name == "mlp_exact":
    batch = 64 if quick else 512
    net = nn.TimeConditionedMLP(hidden_sizes=(64, 64), output_size=2)
    z0 = jnp.asarray(rng.standard_normal((batch, 2)), jnp.float32)
    params = net.init(jax.random.key(0), z0, jnp.zeros((batch,)))
    eps = None
  else:
    batch = 8 if quick else 64
    net = nn.UNet(channels=16, channel_multipliers=(1, 2), attention_resolutions=(), num_groups=4,
                  dropout=0.0)
    z0 = jnp.asarray(rng.uniform(-1, 1, (batch, 8, 8, 1)), jnp.float32)
    params = net.init(jax.random.key(0), z0, jnp.zeros((batch,)))
    params = _redraw_zero_kernels(params, jax.random.key(1))
    eps = divergence.divergence_noise(jax.random.key(2), z0.shape, "rademacher")

  def velocity(params, t, z):
    return net.apply(params, z, jnp.full(z.shape[:1], t, z.dtype))

  if name == "unet_sample":
    rhs = lambda params, t, z: velocity(params, t, z)
    return rhs, params, z0, 1.0, 0.0, lambda z: {"z": z}

  def rhs(params, t, state):
    z, _ = state
    field = lambda y: velocity(params, t, y)
    if eps is None:
      return divergence.exact_divergence(field, z)
    return divergence.hutchinson_divergence(field, z, eps)

  def readout(state):
    z, integral = state
    log_p = gaussian.sum_per_example(gaussian.standard_normal_log_prob(z)) + integral
    return {"log_p": log_p, "z": z}

  y0 = (z0, jnp.zeros((batch,), jnp.float32))
  return rhs, params, y0, 0.0, 1.0, readout


# ---------------------------------------------------------------------------------------------
# Solvers: each returns (y, t, accepted, rejected, num_function_evals or -1, ok)
# ---------------------------------------------------------------------------------------------


def gen_jax_solver(rhs, t0, t1, rtol, atol, max_steps, hand_written=True):
  if hand_written:
    solver = former_dopri5
  else:
    from gen_jax.ode import solver

  def solve(params, y0):
    sol = solver.solve_ode(lambda t, y: rhs(params, t, y), y0, t0, t1, method="dopri5", rtol=rtol, atol=atol,
                           max_steps=max_steps)
    return sol.y, sol.t, sol.num_steps, sol.num_rejected_steps, sol.num_function_evals, sol.succeeded
  return solve


def diffrax_solver(rhs, t0, t1, rtol, atol, max_steps, solver_name, adjoint=None):
  import diffrax

  def solve(params, y0):
    kwargs = {} if adjoint is None else {"adjoint": adjoint}
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(lambda t, y, args: rhs(args, t, y)), getattr(diffrax, solver_name)(), t0, t1, None,
        y0, args=params, stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps, saveat=diffrax.SaveAt(t1=True), throw=False, **kwargs)
    y = jax.tree.map(lambda a: a[0], sol.ys)
    accepted, rejected = sol.stats["num_accepted_steps"], sol.stats["num_rejected_steps"]
    nfe = 1 + 6 * (accepted + rejected)  # FSAL: the first step's extra first stage, then 6 per step
    return y, sol.ts[0], accepted, rejected, nfe, sol.result == diffrax.RESULTS.successful
  return solve


class Side:
  """A solver compiled ahead of time; `run(n)` solves n times and waits."""

  def __init__(self, name, solve, params, y0):
    self.name, self.params, self.y0 = name, params, y0
    t0 = time.perf_counter()
    self.fn = jax.jit(solve).lower(params, y0).compile()
    self.compile_s = time.perf_counter() - t0
    self.out = None

  def run(self, n):
    for _ in range(n):
      self.out = self.fn(self.params, self.y0)
    jax.block_until_ready(self.out)


def count_evals(rhs):
  """Evaluations of rhs in one solve, counted on the host (jax.debug.callback; untimed)."""
  calls = [0]

  def bump():
    calls[0] += 1

  def counted(params, t, y):
    jax.debug.callback(bump)
    return rhs(params, t, y)
  return counted, calls


def bench_problem(name, args, t_start):
  rhs, params, y0, t0, t1, readout = make_problem(name, args.quick)
  tol = dict(rtol=args.rtol, atol=args.atol, max_steps=args.max_steps)
  solvers = [("hand-written dopri5", gen_jax_solver(rhs, t0, t1, **tol)),
             ("diffrax Dopri5", diffrax_solver(rhs, t0, t1, solver_name="Dopri5", **tol))]
  if name == "mlp_exact" or args.all_sides:
    solvers.append(("diffrax Tsit5", diffrax_solver(rhs, t0, t1, solver_name="Tsit5", **tol)))
    solvers.append(("gen_jax solve_ode (diffrax)", gen_jax_solver(rhs, t0, t1, hand_written=False, **tol)))
  if args.forward_mode:
    import diffrax
    solvers.append(("diffrax Dopri5 ForwardMode",
                    diffrax_solver(rhs, t0, t1, solver_name="Dopri5", adjoint=diffrax.ForwardMode(), **tol)))
  sides = []
  for label, solve in solvers:
    sides.append(Side(label, solve, params, y0))
    log(t_start, f"[{name}] {label}: compiled in {sides[-1].compile_s:.1f} s")
  timed = [Timed(s.name, s.run, 1) for s in sides]
  timing = args.timing if args.quick or name == "mlp_exact" else TIMING["full_unet"]
  rates = compare(timed, **timing)
  for side in timed:
    print(describe(side))
  results = {}
  for side in sides:
    y, t, accepted, rejected, nfe, ok = side.out
    results[side.name] = dict(
        seconds_per_solve=1.0 / rates[side.name], ms_per_function_eval=1000.0 / rates[side.name] / int(nfe),
        compile_s=side.compile_s, t_reached=float(t),
        accepted_steps=int(accepted), rejected_steps=int(rejected), function_evals=int(nfe),
        succeeded=bool(ok), repeats_solves_per_s=next(s.rates for s in timed if s.name == side.name))
    side.readout = {k: np.asarray(v) for k, v in readout(y).items()}
  ours = sides[0]
  for side in sides[1:]:
    r = results[side.name]
    r["ratio_time_vs_hand_written"] = r["seconds_per_solve"] / results[ours.name]["seconds_per_solve"]
    r["ratio_time_per_eval_vs_hand_written"] = r["ms_per_function_eval"] / results[ours.name]["ms_per_function_eval"]
    r["max_abs_diff_vs_hand_written"] = {k: float(np.max(np.abs(side.readout[k] - ours.readout[k])))
                                    for k in ours.readout}
  scale = {k: float(np.max(np.abs(v))) for k, v in ours.readout.items()}
  if args.count_evals and name == "mlp_exact":
    for side, (label, _) in zip(sides, solvers):
      counted, calls = count_evals(rhs)
      if label.startswith("diffrax"):
        solve = diffrax_solver(counted, t0, t1, solver_name=label.split()[1], **tol)
      else:
        solve = gen_jax_solver(counted, t0, t1, hand_written=label.startswith("hand"), **tol)
      jax.block_until_ready(jax.jit(solve)(params, y0))
      results[label]["function_evals_counted"] = calls[0]
  print(f"  {name}: max |readout| of hand-written: " + ", ".join(f"{k} {v:.3g}" for k, v in scale.items()))
  for label, r in results.items():
    extra = ""
    if "ratio_time_vs_hand_written" in r:
      diffs = ", ".join(f"{k} {v:.2e}" for k, v in r["max_abs_diff_vs_hand_written"].items())
      extra = (f"  time ratio vs hand-written {r['ratio_time_vs_hand_written']:.3f} (per evaluation "
               f"{r['ratio_time_per_eval_vs_hand_written']:.3f}); max |diff| {diffs}")
    counted = f" (counted {r['function_evals_counted']})" if "function_evals_counted" in r else ""
    print(f"  {label:<28s} {1000 * r['seconds_per_solve']:9.2f} ms/solve ({r['ms_per_function_eval']:.3f} ms/eval)  compile {r['compile_s']:5.1f} s  "
          f"NFE {r['function_evals']}{counted}  steps {r['accepted_steps']}+{r['rejected_steps']} rejected  "
          f"ok {r['succeeded']}{extra}")
  return dict(problem=name, batch=int(jax.tree.leaves(y0)[0].shape[0]), max_abs_readout_hand_written=scale,
              sides=results)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--quick", action="store_true", help="small batches, short windows (a smoke test)")
  p.add_argument("--problems", default=",".join(PROBLEMS), help=f"comma-separated subset of {PROBLEMS}")
  p.add_argument("--rtol", type=float, default=1e-5)
  p.add_argument("--atol", type=float, default=1e-5)
  p.add_argument("--max-steps", type=int, default=10_000)
  p.add_argument("--all-sides", action="store_true",
                 help="time diffrax Tsit5 and gen_jax's solve_ode on the U-Net problems too")
  p.add_argument("--forward-mode", action="store_true",
                 help="also time diffrax Dopri5 with adjoint=ForwardMode() (a plain while loop)")
  p.add_argument("--no-count-evals", dest="count_evals", action="store_false",
                 help="skip counting the evaluations with a host callback on mlp_exact")
  p.add_argument("--json", default=None, help=f"output file (default {DEFAULT_JSON}; none with --quick)")
  args = p.parse_args(argv)
  args.timing = TIMING["quick" if args.quick else "full"]
  t_start = time.perf_counter()
  env = environment()
  print("environment:")
  for k, v in env.items():
    print(f"  {k}: {v}")
  rows = [bench_problem(name, args, t_start) for name in args.problems.split(",")]
  print("\nsummary (seconds per solve; ratio = other / hand-written, > 1: hand-written faster):")
  for row in rows:
    ours = row["sides"]["hand-written dopri5"]["seconds_per_solve"]
    others = ", ".join(f"{k} {v['seconds_per_solve']:.4g} s ({v['ratio_time_vs_hand_written']:.2f}x)"
                       for k, v in row["sides"].items() if "ratio_time_vs_hand_written" in v)
    print(f"  {row['problem']:<16s} hand-written {ours:.4g} s; {others}")
  env["loadavg_1_5_15min_at_end"] = os.getloadavg()
  out = args.json or (None if args.quick else DEFAULT_JSON)
  if out:
    with open(out, "w") as f:
      json.dump(dict(environment=env, args={k: v for k, v in vars(args).items()}, results=rows), f, indent=1)
    print(f"wrote {out}")
  log(t_start, "done")


if __name__ == "__main__":
  main()
