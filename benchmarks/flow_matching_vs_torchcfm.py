"""Flow-matching training throughput of gen_jax next to torchcfm (PyTorch), same run, same U-Net,
reported as ratios gen_jax / torchcfm (> 1: gen_jax faster).

One step: x_1 the uint8 batch mapped to [-1, 1] (2 x / 255 - 1), x_0 ~ N(0, I), t ~ U(0, 1), the
straight conditional path x_t = t x_1 + (1 - t) x_0 (sigma = 0), the loss mean (v(t, x_t) -
(x_1 - x_0))^2, backward, Adam update (lr 2e-4), on the same uint8 batch, dropout 0.1 in both U-Nets.
  gen_jax:  flow_matching_task(FlowMatching(event_shape, network=nn.UNet(...), num_levels=256), spec,
            optax.adam(lr), coupling=...).update: FlowMatching.loss(x, rng, train=True, coupling=...)
            with rngs={"dropout": key}, as the training loop calls it; one `jax.jit` step with the state
            donated and the step's key fold_in(key, step) (timing.TaskStep); NHWC.
  torchcfm: ConditionalFlowMatcher(sigma=0.0).sample_location_and_conditional_flow(x0, x1), then
            diffusers' UNet2DModel (the same layout; timing.diffusers_unet) on (x_t, 1000 t) in train
            mode (gen_jax's U-Net embeds 1000 t the same way), torch.mean((vt - ut) ** 2),
            torch.optim.Adam, eager; NCHW.
Layouts (the script checks that both networks have the same parameter count):
  (a) the digits :cpu config's U-Net (experiments/configs/flow_matching_digits.py:cpu: channels 32,
      channel_multipliers (1, 2), num_res_blocks 1, attention at 4x4, num_groups 8), 8x8x1, batch 128;
  (b) the CPU-size CIFAR-like layout of diffusion_vs_diffusers (b): channels 32, (1, 2, 2, 2),
      num_res_blocks 2, attention at 16x16, num_groups 32, 32x32x3, batch 64;
  (c) for information, layout (a) with minibatch-OT couplings: gen_jax coupling="minibatch_ot" (ott-jax's
      Sinkhorn, epsilon 0.01 relative to the mean cost, inside the jitted step) against torchcfm's
      ExactOptimalTransportConditionalFlowMatcher (POT's exact `emd` on the CPU, numpy round trip,
      outside autograd). The two solve different problems (entropic vs exact plan), so this is the
      cost of each library's OT-CFM step, not of one algorithm.

torch runs with torch.set_num_threads(n) for each n of --threads (default: the cores this process may
use, as XLA uses them all, and 1), each timed, the fastest compared. A probe before the runs times one
convolution at each count (benchmarks/timing.py); by default a count over 2x slower than 1 thread is
skipped (an oversubscribed machine: OpenMP waits for descheduled threads, and an eager step of layout
(b) can then take minutes), and the JSON records it. Compilation and warm-up are excluded (gen_jax compiles ahead of time;
compile times are reported); the two sides' timed windows alternate (benchmarks/timing.py) and each
number is the median over the repeats.

  pip install -r benchmarks/requirements.txt && pip install --no-deps torchcfm==1.0.7 pot
  python benchmarks/flow_matching_vs_torchcfm.py          # ~5-8 min on 2 busy cores; writes
                                                           # benchmarks/flow_matching_vs_torchcfm_cpu.json
  python benchmarks/flow_matching_vs_torchcfm.py --quick  # smoke test: short windows, small (b), no JSON
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import (UNET_KEYS, TaskStep, Timed, TorchTrainStep, add_run_arguments, compare_with_torch,  # pylint: disable=wrong-import-position
                    count_params, diffusers_unet, final_losses, init_task, json_path, log, num_cores, parse_threads,
                    probe_and_print, random_images, start_jax_and_torch, torch_environment, torch_sides,
                    write_results, xla_flops)

DEFAULT_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "flow_matching_vs_torchcfm_cpu.json")
NUM_LEVELS = 256      # uint8 data on both sides, mapped to the bin centres 2 x / 255 - 1

DIGITS_CPU = dict(channels=32, channel_multipliers=(1, 2), num_res_blocks=1, attention_resolutions=(4,),
                  num_groups=8, image_size=8, image_channels=1, batch=128)
CIFAR_CPU = dict(channels=32, channel_multipliers=(1, 2, 2, 2), num_res_blocks=2, attention_resolutions=(16,),
                 num_groups=32, image_size=32, image_channels=3, batch=64)
# part -> (title, layout, coupling)
PARTS = {
    "full": {
        "digits": ("digits :cpu U-Net (32 ch, (1, 2))", DIGITS_CPU, "independent"),
        "cifar": ("CPU-size CIFAR-like U-Net (32 ch, (1, 2, 2, 2))", CIFAR_CPU, "independent"),
        "ot": ("digits :cpu U-Net, minibatch OT (Sinkhorn vs exact emd)", DIGITS_CPU, "minibatch_ot"),
    },
    "quick": {
        "digits": ("digits :cpu U-Net (32 ch, (1, 2))", DIGITS_CPU, "independent"),
        "cifar": ("tiny CIFAR-like U-Net (8 ch, 16x16, quick)",
                  dict(CIFAR_CPU, channels=8, channel_multipliers=(1, 2), num_res_blocks=1,
                       attention_resolutions=(8,), num_groups=4, image_size=16, batch=8), "independent"),
        "ot": ("digits :cpu U-Net, minibatch OT (Sinkhorn vs exact emd)", DIGITS_CPU, "minibatch_ot"),
    },
}
TIMING = {
    "full": dict(digits=dict(warmup_calls=2, window_s=3.0, repeats=7, max_calls=200),
                 cifar=dict(warmup_calls=1, window_s=5.0, repeats=5, max_calls=100),
                 ot=dict(warmup_calls=2, window_s=3.0, repeats=7, max_calls=200)),
    "quick": dict(digits=dict(warmup_calls=1, window_s=0.3, repeats=2, max_calls=50),
                  cifar=dict(warmup_calls=1, window_s=0.3, repeats=2, max_calls=50),
                  ot=dict(warmup_calls=1, window_s=0.3, repeats=2, max_calls=50)),
}


# ---------------------------------------------------------------------------------------------
# gen_jax
# ---------------------------------------------------------------------------------------------


class JaxFlowMatching(TaskStep):
  """flow_matching_task's update (FlowMatching.loss + Adam), jitted with the state donated and compiled
  ahead of time (as gen_jax.train.step.train_step)."""

  def __init__(self, jax, layout, x_uint8, coupling, dropout, lr, ot_epsilon):
    import optax
    from gen_jax.data.spec import DataSpec
    from gen_jax.models.flow_matching.task import flow_matching_model, flow_matching_task
    shape = (layout["image_size"], layout["image_size"], layout["image_channels"])
    self.model = flow_matching_model(shape, network="unet", sigma=0.0, num_levels=NUM_LEVELS,
                                     **{k: layout[k] for k in UNET_KEYS}, dropout=dropout)
    spec = DataSpec(name="bench", event_shape=shape, num_levels=NUM_LEVELS, kind="image")
    task = flow_matching_task(self.model, spec, optax.adam(lr), coupling=coupling, ot_epsilon=ot_epsilon)
    x = jax.device_put(x_uint8)
    # "rbg" keys compile the initialisation much faster than threefry on CPU; the step uses threefry.
    params, model_state, opt_state, self.init_s = init_task(jax, task, x, jax.random.key(0, impl="rbg"))
    self.num_params = count_params(params)
    super().__init__(jax, task, params, model_state, opt_state, x)
    self.flops_per_step = xla_flops(self.step)


# ---------------------------------------------------------------------------------------------
# torchcfm
# ---------------------------------------------------------------------------------------------


class TorchCFM(TorchTrainStep):
  """torchcfm's training loop (examples/images/cifar10/train_cifar10.py), eager: x0 ~ N(0, I),
  FM.sample_location_and_conditional_flow, the U-Net on (x_t, 1000 t), MSE to u_t, backward, Adam."""

  def __init__(self, torch, unet, x_uint8, coupling, lr):
    from torchcfm.conditional_flow_matching import (ConditionalFlowMatcher,
                                                    ExactOptimalTransportConditionalFlowMatcher)
    super().__init__(torch, unet, x_uint8, lr)
    self.fm = (ExactOptimalTransportConditionalFlowMatcher(sigma=0.0) if coupling == "minibatch_ot"
               else ConditionalFlowMatcher(sigma=0.0))

  def loss_of(self, x1):
    x0 = self.torch.randn_like(x1)
    t, xt, ut = self.fm.sample_location_and_conditional_flow(x0, x1)
    vt = self.net(xt, 1000.0 * t).sample
    return self.torch.mean((vt - ut) ** 2)


# ---------------------------------------------------------------------------------------------


def bench_train(name, args, jax, torch, t_start):
  title, layout, coupling = args.parts_table[name]
  timing = args.timing[name]
  x = random_images(layout["batch"], layout["image_size"], layout["image_channels"])
  batch, size, channels = layout["batch"], layout["image_size"], layout["image_channels"]
  log(t_start, f"[{name}] {title}, {size}x{size}x{channels}, batch {batch}, coupling {coupling}: "
               "building and compiling gen_jax")
  jax_tr = JaxFlowMatching(jax, layout, x, coupling, args.dropout, args.lr, args.ot_epsilon)
  torch.manual_seed(0)
  torch_tr = TorchCFM(torch, diffusers_unet(layout, args.dropout), x, coupling, args.lr)
  print(f"  parameters: gen_jax nn.UNet {jax_tr.num_params:,}, diffusers UNet2DModel {torch_tr.num_params:,}")
  if jax_tr.num_params != torch_tr.num_params:
    raise SystemExit(f"the two U-Nets differ: gen_jax {jax_tr.num_params} vs diffusers {torch_tr.num_params} "
                     "parameters")
  gflop = jax_tr.flops_per_step / 1e9
  log(t_start, f"  gen_jax init {jax_tr.init_s:.1f} s, compile {jax_tr.compile_s:.1f} s; XLA's count of one step "
               f"{gflop:.3f} GFLOP")
  label = "torchcfm exact OT" if coupling == "minibatch_ot" else "torchcfm"
  theirs_sides = torch_sides(torch, Timed, f"{label} eager", torch_tr.run, batch, args.threads)
  t0 = time.perf_counter()
  ours, theirs_name, theirs, windows = compare_with_torch(Timed(f"gen_jax jit ({coupling})", jax_tr.run, batch),
                                                          theirs_sides, timing)
  loss_j, loss_t = final_losses(t_start, t0, {"gen_jax": jax_tr.loss, "torchcfm": torch_tr.loss})
  row = dict(part=name, measure=f"train examples/s, {title}, {size}x{size}x{channels}", coupling=coupling,
             batch=batch, parameters=jax_tr.num_params, gen_jax=ours, torchcfm=theirs, torchcfm_side=theirs_name,
             ratio=ours / theirs, gen_jax_compile_s=jax_tr.compile_s)
  detail = dict(layout=layout, dropout=args.dropout, parameters_gen_jax=jax_tr.num_params,
                parameters_torch=torch_tr.num_params, gen_jax_init_s=jax_tr.init_s,
                gen_jax_compile_s=jax_tr.compile_s, xla_gflop_per_step=gflop,
                gflop_per_s_gen_jax=gflop * ours / batch, gflop_per_s_torchcfm=gflop * theirs / batch,
                seconds_per_step_gen_jax=batch / ours, seconds_per_step_torchcfm=batch / theirs,
                final_loss_gen_jax=loss_j, final_loss_torchcfm=loss_t, **windows, loadavg_after=os.getloadavg())
  print(f"  {row['measure']} ({coupling}): gen_jax {ours:.4g}, {theirs_name} {theirs:.4g}, ratio {row['ratio']:.2f}x; "
        f"{batch / ours * 1000:.1f} vs {batch / theirs * 1000:.1f} ms/step", flush=True)
  return row, detail


def markdown_table(rows) -> str:
  lines = ["| measure | coupling | batch | parameters | gen_jax ex/s (compile) | torchcfm ex/s (threads) "
           "| ratio (gen_jax / torchcfm) |", "|---|---|---:|---:|---:|---:|---:|"]
  for r in rows:
    threads = r["torchcfm_side"].rsplit("(", 1)[-1].rstrip(")")
    coupling = ("Sinkhorn (ott-jax) vs exact emd (POT)" if r["coupling"] == "minibatch_ot" else "independent")
    lines.append(f"| {r['measure']} | {coupling} | {r['batch']} | {r['parameters']:,} | {r['gen_jax']:.4g} "
                 f"({r['gen_jax_compile_s']:.1f} s) | {r['torchcfm']:.4g} ({threads}) | {r['ratio']:.2f}x |")
  return "\n".join(lines)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  add_run_arguments(p, "short windows, a tiny U-Net for (b) (< 2 min)", DEFAULT_JSON)
  p.add_argument("--parts", default="digits,cifar,ot",
                 help="comma-separated subset of digits (layout a), cifar (layout b), ot (layout a, minibatch OT)")
  p.add_argument("--repeats", type=int, default=None,
                 help="timed windows per side (default 7 for digits / ot, 5 for cifar)")
  p.add_argument("--window", type=float, default=None,
                 help="seconds per timed window (default 3 for digits / ot, 5 for cifar)")
  p.add_argument("--threads", default=None,
                 help="torch intra-op thread count(s), comma-separated; each is timed and the table keeps "
                      "the fastest (default: the cores this process may use, as XLA does, and 1; the larger "
                      "count is skipped when the probe finds it over 2x slower than 1 thread, an "
                      "oversubscribed machine where one eager step can take minutes)")
  p.add_argument("--dropout", type=float, default=0.1,
                 help="dropout rate of the residual blocks, both sides (the digits config's 0.1)")
  p.add_argument("--lr", type=float, default=2e-4, help="Adam learning rate, both sides")
  p.add_argument("--ot-epsilon", type=float, default=0.01,
                 help="gen_jax's Sinkhorn epsilon relative to the mean cost (part ot; the config default)")
  args = p.parse_args(argv)
  mode = "quick" if args.quick else "full"
  args.parts_table = PARTS[mode]
  args.timing = {k: dict(v) for k, v in TIMING[mode].items()}
  for t in args.timing.values():
    if args.repeats:
      t["repeats"] = args.repeats
    if args.window:
      t["window_s"] = args.window
  auto_threads = args.threads is None
  args.threads = parse_threads(args.threads, default=sorted({num_cores(), 1}, reverse=True))
  parts = [s.strip() for s in args.parts.split(",") if s.strip()]
  if unknown := set(parts) - set(PARTS["full"]):
    raise SystemExit(f"unknown --parts {sorted(unknown)}; expected digits, cifar, ot")
  out = json_path(args, DEFAULT_JSON)

  jax, torch, t_start = start_jax_and_torch(args.threads)
  import diffusers
  import ot
  import ott
  import torchcfm
  env = probe_and_print(torch_environment(jax, torch, diffusers=diffusers.__version__,
                                          torchcfm=getattr(torchcfm, "__version__", "unknown"), pot=ot.__version__,
                                          ott_jax=ott.__version__), torch, args.threads)
  if auto_threads:
    probe = env["torch_conv3x3_ms_by_threads"]
    skipped = [t for t in args.threads if t > 1 and probe[t] > 2 * probe[1]]
    if skipped:
      print(f"skipping torch with {skipped} thread(s): over 2x slower than 1 thread in the probe ({probe}); "
            "pass --threads to time them anyway")
      args.threads = [t for t in args.threads if t not in skipped]
    env["torch_threads_skipped"] = skipped
  env["torch_num_threads_timed"] = args.threads
  torch.set_num_threads(args.threads[0])

  rows, details = [], {}
  for name in ("digits", "cifar", "ot"):
    if name in parts:
      row, details[name] = bench_train(name, args, jax, torch, t_start)
      rows.append(row)

  table = markdown_table(rows)
  print("\n" + table)
  log(t_start, "done")
  if out:
    setup = {k: v for k, v in vars(args).items() if k not in ("parts_table", "timing")}
    write_results(out, t_start, environment=env, args=setup, parts={k: args.parts_table[k] for k in parts},
                  timing=args.timing, train=rows, details=details)


if __name__ == "__main__":
  main()
