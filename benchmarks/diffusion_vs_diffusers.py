"""Diffusion training and sampling throughput of gen_jax next to diffusers (PyTorch), same run, same
U-Net, reported as ratios gen_jax / diffusers (> 1: gen_jax faster).

1. U-Net training, examples/s. One step: DDPM's simple loss (Ho et al. 2020: t uniform, x noised
   with the linear-beta schedule of T = 1000 states, MSE between eps and the network's output),
   backward, Adam update (lr 2e-4, DDPM's CIFAR-10 rate), on the same uint8 batch.
     gen_jax:   GaussianDiffusion(denoiser=nn.UNet(...), schedule=make_schedule("linear_betas", T),
                num_levels=256).simple_loss(x_uint8, rng, train=True) (dropout through
                rngs={"dropout": key}), optax.adam, one `jax.jit` step with the state donated and the
                step's key fold_in(key, step); NHWC.
     diffusers: UNet2DModel (same layout) in train mode, DDPMScheduler.add_noise, F.mse_loss,
                torch.optim.Adam, eager; NCHW; torch.set_num_threads(the process's cores).
   Layouts:
     (a) DDPM's CIFAR-10 U-Net, 32x32x3, batch 16: gen_jax UNet(channels=128, channel_multipliers=
         (1, 2, 2, 2), num_res_blocks=2, attention_resolutions=(16,), dropout=0.1) vs UNet2DModel
         with google/ddpm-cifar10-32's config (35,746,307 parameters each; tests/test_unet.py).
         Goal: gen_jax >= 1.2x diffusers.
     (b) the same at channels=32 ("CPU layout"), batch 64. Goal: >= 1.5x.
2. Sampling, images/s on the CPU layout (the networks trained in 1b, eval mode, batch
   --sample-batch): gen_jax `model.apply(variables, rng, num, num_steps, eta, method=model.sample)`
   under `jax.jit` (a `lax.scan` over the steps, then the decoder p(x | z_0) to uint8), for ancestral
   sampling (eta = 1, all T - 1 = 999 transitions) and DDIM (eta = 0) with 100, 50 and 10 steps.
   diffusers: the loop of DDPMPipeline / DDIMPipeline written out (a Python loop over
   scheduler.timesteps calling the UNet and scheduler.step, under no_grad, then the conversion to
   uint8): DDPMScheduler with T steps for ancestral, DDIMScheduler(eta=0) for DDIM. Network
   evaluations per image: gen_jax num_steps + 1 (the decoder's), diffusers num_steps (T for DDPM).

torch runs with torch.set_num_threads(--threads, default the cores this process may use, as XLA
uses them all); with several counts (--threads 2,1) each is timed and the fastest is compared. A
probe before the runs times one convolution at each count and warns when more threads are slower
than 1 (an oversubscribed machine: OpenMP waits for descheduled threads, and torch's numbers are
then meaningless at 2 threads).

Compilation and warm-up are excluded (gen_jax compiles ahead of time; compile times are reported);
the two sides' timed windows alternate (benchmarks/timing.py) and each number is the median over
the repeats. The long ancestral sampler (~1000 network evaluations per call) runs one call per window
with no warm-up call: the DDIM samplers before it warmed up the same network at the same batch, and
the first call of a freshly compiled XLA:CPU executable costs only ~0.7 s more than later ones at the
CPU layout (measured here; under 1% of an ancestral call).

  pip install -r benchmarks/requirements.txt
  python benchmarks/diffusion_vs_diffusers.py            # full run, ~15 min on 2 cores; writes
                                                         # benchmarks/diffusion_vs_diffusers_cpu.json
  python benchmarks/diffusion_vs_diffusers.py --quick    # smoke test: tiny U-Nets, T = 20, < 2 min
"""
from __future__ import annotations

import argparse
import functools
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import (THREADS_HELP, UNET_KEYS, CompiledCall, Timed, TorchTrainStep, add_run_arguments,  # pylint: disable=wrong-import-position
                    compare_with_torch, count_params, diffusers_unet, final_losses, json_path, log, parse_threads,
                    probe_and_print, random_images, start_jax_and_torch, torch_environment, torch_sides,
                    write_results, xla_flops)

DEFAULT_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "diffusion_vs_diffusers_cpu.json")
DDPM_CIFAR10_PARAMETERS = 35_746_307   # diffusers' google/ddpm-cifar10-32 (tests/test_unet.py)

# U-Net layouts (the keyword arguments of gen_jax.nn.UNet) with image size and training batch.
LAYOUTS = {
    "full": {
        "cifar": dict(title="DDPM CIFAR-10 U-Net (128 ch)", channels=128, channel_multipliers=(1, 2, 2, 2),
                      num_res_blocks=2, attention_resolutions=(16,), num_groups=32, image_size=32, batch=16,
                      goal=1.2),
        "cpu": dict(title="CPU-size U-Net (32 ch)", channels=32, channel_multipliers=(1, 2, 2, 2),
                    num_res_blocks=2, attention_resolutions=(16,), num_groups=32, image_size=32, batch=64,
                    goal=1.5),
    },
    # --quick: the same code on tiny networks (few ops, so that XLA compiles them in seconds).
    "quick": {
        "cifar": dict(title="tiny U-Net A (16 ch, quick)", channels=16, channel_multipliers=(1, 2),
                      num_res_blocks=1, attention_resolutions=(8,), num_groups=8, image_size=16, batch=4,
                      goal=1.2),
        "cpu": dict(title="tiny U-Net B (8 ch, quick)", channels=8, channel_multipliers=(1, 2),
                    num_res_blocks=1, attention_resolutions=(8,), num_groups=4, image_size=16, batch=8,
                    goal=1.5),
    },
}
BETA_START, BETA_END = 1e-4, 0.02      # DDPM's linear betas (gen_jax's schedules.linear_betas defaults)

TIMING = {
    "full": dict(train_cifar=dict(warmup_calls=1, window_s=8.0, repeats=3, max_calls=50),
                 train_cpu=dict(warmup_calls=2, window_s=5.0, repeats=3, max_calls=100),
                 # The calibration call (untimed) is the samplers' warm-up.
                 sample_ddim=dict(warmup_calls=0, window_s=5.0, repeats=3, max_calls=100)),
    "quick": dict(train_cifar=dict(warmup_calls=1, window_s=0.3, repeats=2, max_calls=50),
                  train_cpu=dict(warmup_calls=1, window_s=0.3, repeats=2, max_calls=50),
                  sample_ddim=dict(warmup_calls=0, window_s=0.3, repeats=2, max_calls=50)),
}


# ---------------------------------------------------------------------------------------------
# gen_jax
# ---------------------------------------------------------------------------------------------


def gen_jax_model(layout, num_timesteps, dropout):
  from gen_jax.models.diffusion import schedules
  from gen_jax.models.diffusion.diffusion import GaussianDiffusion
  from gen_jax.nn import UNet
  size = layout["image_size"]
  unet = UNet(**{k: layout[k] for k in UNET_KEYS}, dropout=dropout)
  return GaussianDiffusion(event_shape=(size, size, 3), denoiser=unet,
                           schedule=schedules.make_schedule("linear_betas", num_timesteps), num_levels=256)


class JaxTrainer:
  """The jitted train step, compiled ahead of time; `run(n)` makes n calls and waits for the last."""

  def __init__(self, jax, model, x_uint8, lr):
    import jax.numpy as jnp
    import optax
    self.jax = jax
    x = jax.device_put(x_uint8)
    t0 = time.perf_counter()
    # "rbg" keys compile the initialisation of every parameter much faster than threefry on CPU.
    init = jax.jit(functools.partial(model.init, method=model.simple_loss))
    params = init(jax.random.key(0, impl="rbg"), x, jax.random.key(1))["params"]
    self.init_s = time.perf_counter() - t0
    self.num_params = count_params(params)
    optimizer = optax.adam(lr)

    def loss_fn(params, x, rng):
      noise_rng, dropout_rng = jax.random.split(rng)
      per_example = model.apply({"params": params}, x, noise_rng, train=True, method=model.simple_loss,
                                rngs={"dropout": dropout_rng})
      return jnp.mean(per_example)

    def step(state, x, key):
      params, opt_state, i = state
      loss, grads = jax.value_and_grad(loss_fn)(params, x, jax.random.fold_in(key, i))
      updates, opt_state = optimizer.update(grads, opt_state, params)
      return (optax.apply_updates(params, updates), opt_state, i + 1), loss

    self.state = (params, optimizer.init(params), jnp.zeros((), jnp.int32))
    self.x, self.key = x, jax.random.key(2)
    t0 = time.perf_counter()
    self.step = jax.jit(step, donate_argnums=(0,)).lower(self.state, x, self.key).compile()
    self.compile_s = time.perf_counter() - t0
    self.flops_per_step = xla_flops(self.step)
    self.loss = None

  @property
  def params(self):
    return self.state[0]

  def run(self, n):
    for _ in range(n):
      self.state, self.loss = self.step(self.state, self.x, self.key)
    self.jax.block_until_ready((self.state, self.loss))


def jax_sampler(jax, model, params, num, num_steps, eta) -> CompiledCall:
  """model.sample(rng, num, num_steps, eta) jitted and compiled ahead of time; `run(n)`: n batches."""
  return CompiledCall(jax, lambda variables, rng: model.apply(variables, rng, num, num_steps, eta, method=model.sample),
                      {"params": params}, jax.random.key(3))


# ---------------------------------------------------------------------------------------------
# diffusers
# ---------------------------------------------------------------------------------------------


def ddpm_scheduler(num_timesteps):
  from diffusers import DDPMScheduler
  return DDPMScheduler(num_train_timesteps=num_timesteps, beta_schedule="linear", beta_start=BETA_START,
                       beta_end=BETA_END, variance_type="fixed_small", clip_sample=True)


def ddim_scheduler(num_timesteps):
  from diffusers import DDIMScheduler
  return DDIMScheduler(num_train_timesteps=num_timesteps, beta_schedule="linear", beta_start=BETA_START,
                       beta_end=BETA_END, clip_sample=True)


class TorchTrainer(TorchTrainStep):
  """diffusers' train_unconditional loop, eager: add_noise, UNet, MSE to eps, backward, Adam."""

  def __init__(self, torch, unet, x_uint8, num_timesteps, lr):
    super().__init__(torch, unet, x_uint8, lr)
    self.scheduler = ddpm_scheduler(num_timesteps)
    self.num_timesteps = num_timesteps

  def loss_of(self, x0):
    torch = self.torch
    noise = torch.randn_like(x0)
    t = torch.randint(0, self.num_timesteps, (x0.shape[0],))
    noisy = self.scheduler.add_noise(x0, noise, t)
    return torch.nn.functional.mse_loss(self.net(noisy, t).sample, noise)


class TorchSampler:
  """DDPMPipeline / DDIMPipeline's loop written out: set_timesteps, then UNet + scheduler.step."""

  def __init__(self, torch, unet, scheduler, num, image_size, num_steps, step_kwargs):
    self.torch, self.unet, self.scheduler = torch, unet.eval(), scheduler
    self.shape, self.num_steps, self.step_kwargs = (num, 3, image_size, image_size), num_steps, step_kwargs
    self.generator = torch.Generator().manual_seed(0)
    self.out = None

  def run(self, n):
    torch = self.torch
    with torch.no_grad():
      for _ in range(n):
        self.scheduler.set_timesteps(self.num_steps)
        z = torch.randn(self.shape, generator=self.generator)
        for t in self.scheduler.timesteps:
          eps = self.unet(z, t).sample
          z = self.scheduler.step(eps, t, z, generator=self.generator, **self.step_kwargs).prev_sample
        self.out = ((z.clamp(-1.0, 1.0) + 1.0) * 127.5).round().to(torch.uint8)


class OneCallWindows(Timed):
  """A side whose single call is long: one call per window and no calibration call (the samplers
  timed before it ran the same network at the same batch, so it is warm)."""

  def calibrate(self, window_s, max_calls):
    del window_s, max_calls
    self.calls_per_window = 1


# ---------------------------------------------------------------------------------------------
# 1. Training
# ---------------------------------------------------------------------------------------------


def bench_train(name, args, jax, torch, t_start):
  layout, timing = args.layouts[name], args.timing[f"train_{name}"]
  x = random_images(layout["batch"], layout["image_size"])
  log(t_start, f"[train {name}] {layout['title']}, batch {layout['batch']}: building and compiling gen_jax")
  model = gen_jax_model(layout, args.timesteps, args.dropout)
  jax_tr = JaxTrainer(jax, model, x, args.lr)
  torch.manual_seed(0)
  torch_tr = TorchTrainer(torch, diffusers_unet(layout, args.dropout), x, args.timesteps, args.lr)
  if jax_tr.num_params != torch_tr.num_params:
    raise SystemExit(f"the two U-Nets differ: gen_jax {jax_tr.num_params} vs diffusers {torch_tr.num_params} "
                     "parameters")
  if name == "cifar" and not args.quick and jax_tr.num_params != DDPM_CIFAR10_PARAMETERS:
    raise SystemExit(f"DDPM's CIFAR-10 U-Net has {DDPM_CIFAR10_PARAMETERS} parameters, got {jax_tr.num_params}")
  log(t_start, f"  parameters: {jax_tr.num_params:,} each; gen_jax init {jax_tr.init_s:.1f} s, compile "
               f"{jax_tr.compile_s:.1f} s; XLA's count of one step {jax_tr.flops_per_step / 1e9:.2f} GFLOP")
  batch = layout["batch"]
  theirs_sides = torch_sides(torch, Timed, "diffusers eager", torch_tr.run, batch, args.threads)
  t0 = time.perf_counter()
  ours, theirs_name, theirs, windows = compare_with_torch(Timed("gen_jax jit", jax_tr.run, batch), theirs_sides,
                                                          timing)
  loss_j, loss_t = final_losses(t_start, t0, {"gen_jax": jax_tr.loss, "diffusers": torch_tr.loss})
  gflop = jax_tr.flops_per_step / 1e9
  size = layout["image_size"]
  row = dict(measure=f"train examples/s, {layout['title']}, {size}x{size}x3", batch=batch,
             gen_jax=ours, diffusers=theirs, diffusers_side=theirs_name, ratio=ours / theirs,
             goal=layout["goal"], goal_met=bool(ours / theirs >= layout["goal"]))
  detail = dict(layout={k: layout[k] for k in (*UNET_KEYS, "image_size", "batch")}, dropout=args.dropout,
                parameters=jax_tr.num_params, gen_jax_init_s=jax_tr.init_s, gen_jax_compile_s=jax_tr.compile_s,
                xla_gflop_per_step=gflop,
                gflop_per_s_gen_jax=gflop * ours / batch, gflop_per_s_diffusers=gflop * theirs / batch,
                seconds_per_step_gen_jax=batch / ours, seconds_per_step_diffusers=batch / theirs,
                final_loss_gen_jax=loss_j, final_loss_diffusers=loss_t, **windows, loadavg_after=os.getloadavg())
  print(f"  {row['measure']}: gen_jax {ours:.4g}, {theirs_name} {theirs:.4g}, ratio {row['ratio']:.2f}x "
        f"(goal {layout['goal']}x); {batch / ours:.3f} vs {batch / theirs:.3f} s/step, "
        f"{detail['gflop_per_s_gen_jax']:.0f} vs {detail['gflop_per_s_diffusers']:.0f} GFLOP/s (XLA's count)")
  return row, detail, (model, jax_tr, torch_tr)


# ---------------------------------------------------------------------------------------------
# 2. Sampling
# ---------------------------------------------------------------------------------------------


def bench_sampling(args, jax, torch, trained, t_start):
  model, jax_tr, torch_tr = trained
  layout, num = args.layouts["cpu"], args.sample_batch
  size = layout["image_size"]
  # (label, gen_jax num_steps, eta, diffusers scheduler, diffusers steps, step kwargs), shortest first:
  # the long ancestral chain runs last, one call per window, warm from the DDIM runs.
  samplers = [(f"DDIM {n} (eta 0)", n, 0.0, ddim_scheduler(args.timesteps), n, dict(eta=0.0))
              for n in sorted(args.ddim_steps)]
  samplers.append((f"ancestral {args.timesteps - 1} (DDPM)", args.timesteps - 1, 1.0,
                   ddpm_scheduler(args.timesteps), args.timesteps, {}))
  rows, details = [], {}
  seconds_per_eval = {}
  for label, steps, eta, scheduler, torch_steps, step_kwargs in samplers:
    ancestral = eta == 1.0
    side_class = OneCallWindows if ancestral else Timed
    sampler = jax_sampler(jax, model, jax_tr.params, num, steps, eta)
    theirs_sides = []
    if args.diffusers_sampling:
      torch_sampler = TorchSampler(torch, torch_tr.net, scheduler, num, size, torch_steps, step_kwargs)
      theirs_sides = torch_sides(torch, side_class, "diffusers loop", torch_sampler.run, num, args.threads)
    log(t_start, f"[sample] {label}, batch {num}: gen_jax compiled in {sampler.compile_s:.1f} s")
    if ancestral and seconds_per_eval:
      guess = {k: v * (steps + 1) for k, v in seconds_per_eval.items()}
      log(t_start, "  expect about " + ", ".join(f"{k} {v:.0f} s" for k, v in guess.items())
          + f" per call, {args.ancestral_repeats} call(s) per side")
    timing = (dict(warmup_calls=0, window_s=0.0, repeats=args.ancestral_repeats) if ancestral
              else args.timing["sample_ddim"])
    ours, theirs_name, theirs, windows = compare_with_torch(side_class("gen_jax jit (lax.scan)", sampler.run, num),
                                                            theirs_sides, timing)
    evals_ours, evals_theirs = steps + 1, torch_steps
    seconds_per_eval["gen_jax"] = num / ours / evals_ours
    row = dict(measure=f"sampling images/s, {label}, {layout['title']}", batch=num, gen_jax=ours,
               gen_jax_s_per_batch=num / ours, gen_jax_network_evals=evals_ours)
    details[label] = dict(gen_jax_compile_s=sampler.compile_s, **windows)
    text = f"  {label}: gen_jax {ours:.4g} images/s ({num / ours:.2f} s per batch of {num}, {evals_ours} evals)"
    if theirs_sides:
      seconds_per_eval["diffusers"] = num / theirs / evals_theirs
      row.update(diffusers=theirs, diffusers_side=theirs_name, diffusers_s_per_batch=num / theirs,
                 diffusers_network_evals=evals_theirs, ratio=ours / theirs)
      text += (f"; {theirs_name} {theirs:.4g} images/s ({num / theirs:.2f} s, {evals_theirs} evals); "
               f"ratio {row['ratio']:.2f}x")
    rows.append(row)
    log(t_start, text)
  return rows, details


# ---------------------------------------------------------------------------------------------


def markdown_tables(train_rows, sample_rows) -> str:
  lines = ["| measure | batch | gen_jax | diffusers | ratio (gen_jax / diffusers) | goal |",
           "|---|---:|---:|---:|---:|---:|"]
  for r in train_rows:
    lines.append(f"| {r['measure']} | {r['batch']} | {r['gen_jax']:.4g} | {r['diffusers']:.4g} "
                 f"({r['diffusers_side'].removeprefix('diffusers ')}) | "
                 f"{r['ratio']:.2f}x | {r['goal']}x ({'met' if r['goal_met'] else 'not met'}) |")
  if sample_rows:
    lines += ["", "| sampler | batch | gen_jax images/s (s/batch, evals) | diffusers images/s (s/batch, evals) "
                  "| ratio |", "|---|---:|---:|---:|---:|"]
    for r in sample_rows:
      theirs = (f"{r['diffusers']:.4g} ({r['diffusers_s_per_batch']:.2f} s, {r['diffusers_network_evals']}; "
                f"{r['diffusers_side'].removeprefix('diffusers loop ').strip('()')})"
                if "diffusers" in r else "-")
      ratio = f"{r['ratio']:.2f}x" if "ratio" in r else "-"
      lines.append(f"| {r['measure']} | {r['batch']} | {r['gen_jax']:.4g} ({r['gen_jax_s_per_batch']:.2f} s, "
                   f"{r['gen_jax_network_evals']}) | {theirs} | {ratio} |")
  return "\n".join(lines)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  add_run_arguments(p, "tiny U-Nets, T = 20 states, short windows (< 2 min)", DEFAULT_JSON)
  p.add_argument("--parts", default="cifar,cpu,sample",
                 help="comma-separated subset of cifar (train, layout a), cpu (train, layout b), sample "
                      "(sampling on layout b; needs cpu)")
  p.add_argument("--timesteps", type=int, default=None, help="T, DDPM states (default 1000; --quick 20)")
  p.add_argument("--ddim-steps", default=None, help="comma-separated DDIM step counts (default 100,50,10; "
                                                    "--quick 5)")
  p.add_argument("--sample-batch", type=int, default=None, help="images per sampling call (default 16; --quick 4)")
  p.add_argument("--ancestral-repeats", type=int, default=None,
                 help="timed calls of the ancestral sampler per side (default 1: about 1000 network evaluations "
                      "per call, a minute or more each on 2 cores)")
  p.add_argument("--no-diffusers-sampling", dest="diffusers_sampling", action="store_false",
                 help="time gen_jax's samplers only")
  p.add_argument("--threads", default=None, help=THREADS_HELP)
  p.add_argument("--dropout", type=float, default=0.1,
                 help="dropout rate of the residual blocks, both sides (DDPM's CIFAR-10 value 0.1; 0 shows "
                      "what drawing the dropout masks costs each side)")
  p.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate, both sides (DDPM's CIFAR-10 rate)")
  args = p.parse_args(argv)
  mode = "quick" if args.quick else "full"
  args.layouts, args.timing = LAYOUTS[mode], TIMING[mode]
  args.timesteps = args.timesteps or (20 if args.quick else 1000)
  args.ddim_steps = [int(s) for s in (args.ddim_steps or ("5" if args.quick else "100,50,10")).split(",")]
  args.sample_batch = args.sample_batch or (4 if args.quick else 16)
  args.ancestral_repeats = args.ancestral_repeats or 1
  args.threads = parse_threads(args.threads)
  parts = [s.strip() for s in args.parts.split(",") if s.strip()]
  if unknown := set(parts) - {"cifar", "cpu", "sample"}:
    raise SystemExit(f"unknown --parts {sorted(unknown)}; expected cifar, cpu, sample")
  if "sample" in parts and "cpu" not in parts:
    raise SystemExit("--parts sample samples from the networks trained in part cpu; add cpu")
  if max(args.ddim_steps) > args.timesteps - 1:
    raise SystemExit(f"--ddim-steps must be <= T - 1 = {args.timesteps - 1}")
  out = json_path(args, DEFAULT_JSON)

  jax, torch, t_start = start_jax_and_torch(args.threads)
  import diffusers
  env = probe_and_print(torch_environment(jax, torch, diffusers=diffusers.__version__), torch, args.threads)

  train_rows, sample_rows, details, trained = [], [], {}, None
  for name in ("cifar", "cpu"):
    if name in parts:
      row, detail, models = bench_train(name, args, jax, torch, t_start)
      train_rows.append(row)
      details[f"train_{name}"] = detail
      if name == "cpu":
        trained = models
      del models
  if "sample" in parts:
    sample_rows, details["sampling"] = bench_sampling(args, jax, torch, trained, t_start)

  table = markdown_tables(train_rows, sample_rows)
  print("\n" + table)
  log(t_start, "done")
  if out:
    setup = {k: v for k, v in vars(args).items() if k not in ("layouts", "timing")}
    write_results(out, t_start, environment=env, args=setup, layouts=args.layouts, timing=args.timing,
                  train=train_rows, sampling=sample_rows, details=details)


if __name__ == "__main__":
  main()
