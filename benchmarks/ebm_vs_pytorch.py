"""gen_jax's energy-based model (Langevin sampling and the maximum-likelihood step) next to the same
network and sampler written in PyTorch, same run, same weights, reported as ratios gen_jax / torch
(> 1: gen_jax faster).

The network is the image energy of experiments/configs/ebm_digits.py: `ConvEnergy` with spectral
norm on every kernel (Miyato et al. 2018),
  [B, H, W, 1] in [0, 1] -> 2y - 1 -> conv3x3(c_0) -> per stage s: residual block
  x + conv3x3(swish(conv3x3(swish(x)))) (1x1 projection where the width changes), 2x2 average pool
  -> sum over space -> swish -> Dense(1),
and the torch side is the same layers (nn.Conv2d / nn.Linear under
torch.nn.utils.parametrizations.spectral_norm, F.silu, F.avg_pool2d), NCHW. The script checks that
the two have the same parameter shapes layer by layer, copies gen_jax's weights (and its
power-iteration vectors) into torch, and asserts that both give the same energies and the same
grad_x E on the same inputs before timing anything.

1. Langevin steps/s (unadjusted Langevin, Du & Mordatch 2019's cold setting of the config):
     x <- clip(x - 10 grad_x E(x) + 0.005 eps, 0, 1)
   on a batch of chains; gen_jax `model.apply(variables, rng, B, K, init=x0, method=model.sample)`
   under `jax.jit` (K steps unrolled, `unroll_langevin`, as the :cpu config), torch a Python loop
   of `torch.autograd.grad(net(x).sum(), x)` with the parameters' requires_grad off, the mean
   |grad_x E| accumulated as gen_jax's chain does. Sizes: --size cpu, the digits :cpu config
   (8x8, channels (32, 64), 30 steps per call, 64 chains); --size large, an accelerator-like one
   (28x28, channels (64, 128), 10 steps per call, 64 chains).
2. Maximum-likelihood train steps/s at the cpu size (the digits :cpu run's step): one
   power-iteration step of every spectral norm, uniform dequantization of the uint8 batch, 64 chain
   starts drawn from a 10,000-state replay buffer (5% reset to noise), 30 Langevin steps, the
   chains written back, loss mean E(data) - mean E(neg) + 1.0 (mean E(data)^2 + mean E(neg)^2),
   one Adam step (lr 1e-4, betas (0, 0.999), gradients clipped at norm 100).
     gen_jax: `build_task(ebm_digits.get_config("cpu"), spec).update` in one `jax.jit` step with
              params and optimizer state donated (as the training loop's train_step).
     torch:   eager; spectral norm advanced by reading each kernel in train mode, Langevin and the
              loss in eval mode (spectral norm's stored vectors, as gen_jax's energy), Adam and
              clip_grad_norm_; constant learning rate (gen_jax's warm-up/cosine schedule costs
              nothing measurable); the loss read with .item().
   Goal: gen_jax >= 1.5x.

torch runs with torch.set_num_threads(--threads, default the cores this process may use); with
several counts (--threads 2,1) each is timed and the fastest is compared (benchmarks/timing.py's
probe warns when the machine is oversubscribed). Compilation and warm-up are excluded (compile
times reported); the sides' timed windows alternate and each number is the median of the repeats.

  pip install -r benchmarks/requirements.txt
  python benchmarks/ebm_vs_pytorch.py --threads 2,1   # full run, 8.5 min measured on 2 loaded cores; writes
                                                      # benchmarks/ebm_vs_pytorch_cpu.json
  python benchmarks/ebm_vs_pytorch.py --quick         # smoke test: 4 Langevin steps, 8 chains, short
                                                      # windows, no large size (< 2 min), no JSON
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time

import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import (TaskStep, Timed, check_finite, compare, count_params, describe, fastest, init_task, log,  # pylint: disable=wrong-import-position
                    num_cores, probe_and_print, torch_environment, torch_sides)

DEFAULT_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "ebm_vs_pytorch_cpu.json")
GOAL = 1.5
SIZES = {  # image side, channels per stage, Langevin steps per call, chains (= batch)
    "cpu": dict(image_size=8, channels=(32, 64), steps=30, batch=64),
    "large": dict(image_size=28, channels=(64, 128), steps=10, batch=64),
    "quick": dict(image_size=8, channels=(32, 64), steps=4, batch=8),
}
TIMING = {
    "full": dict(warmup_calls=2, window_s=4.0, repeats=5, max_calls=500),
    "quick": dict(warmup_calls=1, window_s=0.3, repeats=2, max_calls=50),
}


# ---------------------------------------------------------------------------------------------
# gen_jax
# ---------------------------------------------------------------------------------------------


def jax_config(sizes):
  """The digits :cpu config (experiments/configs/ebm_digits.py) at the benchmark's sizes."""
  from experiments.configs import ebm_digits
  config = ebm_digits.get_config("cpu")
  config.model.channels = sizes["channels"]
  config.model.langevin_steps = sizes["steps"]
  config.train.batch_size = sizes["batch"]
  return config


def jax_spec(sizes):
  from gen_jax.data.spec import DataSpec
  s = sizes["image_size"]
  return DataSpec(name="bench", event_shape=(s, s, 1), num_levels=17, kind="image")


class JaxLangevin:
  """`model.sample` from fixed starts, K unrolled steps, jitted and compiled ahead of time."""

  def __init__(self, jax, sizes, variables, x0):
    from gen_jax.models.registry import build_model
    self.jax = jax
    model = build_model(jax_config(sizes).model, jax_spec(sizes))
    self.variables, self.x0, self.key = variables, jax.device_put(x0), jax.random.key(3)
    fn = jax.jit(lambda v, x, key: model.apply(v, key, x.shape[0], sizes["steps"], x, method=model.sample))
    t0 = time.perf_counter()
    self.fn = fn.lower(variables, self.x0, self.key).compile()
    self.compile_s = time.perf_counter() - t0
    self.out = None

  def run(self, n):
    for _ in range(n):
      self.out = self.fn(self.variables, self.x0, self.key)
    self.jax.block_until_ready(self.out)


class JaxTrainStep(TaskStep):
  """The EBM task's update (persistent chains, replay buffer), jitted with the state donated."""

  def __init__(self, jax, sizes, x_uint8):
    from gen_jax.models.registry import build_task
    task = build_task(jax_config(sizes), jax_spec(sizes))
    x = jax.device_put(x_uint8)
    params, model_state, opt_state, self.init_s = init_task(jax, task, x, jax.random.key(0))
    super().__init__(jax, task, params, model_state, opt_state, x)

  def variables(self):
    from gen_jax.train.task import merge_variables
    return merge_variables(self.state[0], self.state[1])["model"]


# ---------------------------------------------------------------------------------------------
# torch: the same network and sampler
# ---------------------------------------------------------------------------------------------


def torch_conv_energy(torch, channels):
  """ConvEnergy's layers in torch, every kernel under torch's spectral_norm parametrization."""
  nn, F = torch.nn, torch.nn.functional
  sn = torch.nn.utils.parametrizations.spectral_norm

  class ResidualBlock(nn.Module):
    def __init__(self, c_in, c):
      super().__init__()
      self.conv0, self.conv1 = sn(nn.Conv2d(c_in, c, 3, padding=1)), sn(nn.Conv2d(c, c, 3, padding=1))
      self.proj = sn(nn.Conv2d(c_in, c, 1)) if c_in != c else None

    def forward(self, x):
      h = self.conv1(F.silu(self.conv0(F.silu(x))))
      return (x if self.proj is None else self.proj(x)) + h

  class ConvEnergy(nn.Module):
    def __init__(self):
      super().__init__()
      self.conv_in = sn(nn.Conv2d(1, channels[0], 3, padding=1))
      widths = [channels[0], *channels]
      self.blocks = nn.ModuleList(ResidualBlock(a, b) for a, b in zip(widths[:-1], widths[1:]))
      self.dense = sn(nn.Linear(channels[-1], 1))

    def forward(self, y):  # [B, 1, H, W] in [0, 1] -> [B]
      h = self.conv_in(2.0 * y - 1.0)
      for block in self.blocks:
        h = F.avg_pool2d(block(h), 2)
      return self.dense(F.silu(h.sum(dim=(2, 3))))[:, 0]

  return ConvEnergy()


def torch_layers(net):
  """(flax path, torch module) pairs in ConvEnergy's parameter layout."""
  pairs = [(("Conv_0",), ("SpectralNorm_0",), net.conv_in)]
  for i, block in enumerate(net.blocks):
    convs = [block.conv0, block.conv1] + ([block.proj] if block.proj is not None else [])
    pairs += [((f"EnergyResidualBlock_{i}", f"Conv_{j}"), (f"EnergyResidualBlock_{i}", f"SpectralNorm_{j}"), m)
              for j, m in enumerate(convs)]
  return pairs + [(("Dense_0",), ("SpectralNorm_1",), net.dense)]


def _get(tree, path):
  for key in path:
    tree = tree[key]
  return tree


def load_jax_weights(torch, net, variables):
  """Copies kernels, biases and each spectral norm's power-iteration state into `net`, checking shapes
  and counts layer by layer. flax's eval-mode sigma runs one power step from the stored u:
  v = n(u W^T), u' = n(v W), sigma = v W u'^T (W the kernel as [kh kw C_in, C_out]); torch's eval
  sigma is u^T W v with its stored vectors, so torch gets u = u', v = v (reordered to C_in, kh, kw)."""
  normalize = lambda a: a / np.sqrt(np.sum(a * a) + 1e-12)
  params, stats = variables["params"]["network"], variables["batch_stats"]["network"]  # EnergyModel.network
  counts = []
  for param_path, sn_path, module in torch_layers(net):
    leaves = {k: np.array(v, np.float32) for k, v in _get(params, param_path).items()}
    kernel, bias = leaves["kernel"], leaves["bias"]
    weight = module.parametrizations.weight.original
    conv = kernel.ndim == 4
    as_torch = kernel.transpose(3, 2, 0, 1) if conv else kernel.T
    if as_torch.shape != tuple(weight.shape) or bias.shape != tuple(module.bias.shape):
      raise SystemExit(f"layer {'/'.join(param_path)} differs: gen_jax kernel {kernel.shape} bias {bias.shape}, "
                       f"torch weight {tuple(weight.shape)} bias {tuple(module.bias.shape)}")
    sn_state = _get(stats, sn_path)
    name = param_path[-1] + "/kernel/u"
    u = np.asarray(sn_state[name], np.float32)
    matrix = kernel.reshape(-1, kernel.shape[-1])
    v = normalize(u @ matrix.T)
    u = normalize(v @ matrix)
    v_torch = v.reshape(kernel.shape[:-1]).transpose(2, 0, 1).reshape(-1) if conv else v.reshape(-1)
    parametrization = module.parametrizations.weight[0]
    with torch.no_grad():
      weight.copy_(torch.from_numpy(np.ascontiguousarray(as_torch)))
      module.bias.copy_(torch.from_numpy(bias))
      parametrization._u.copy_(torch.from_numpy(u.reshape(-1)))  # pylint: disable=protected-access
      parametrization._v.copy_(torch.from_numpy(np.ascontiguousarray(v_torch)))  # pylint: disable=protected-access
    counts.append(("/".join(param_path), kernel.size + bias.size, weight.numel() + module.bias.numel()))
  theirs = int(sum(p.numel() for p in net.parameters()))
  if any(a != b for _, a, b in counts) or count_params(params) != theirs:
    raise SystemExit(f"parameter counts differ: {counts}, gen_jax {count_params(params)} vs torch {theirs}")
  return {"per_layer": {name: a for name, a, _ in counts}, "total": theirs}


def check_same_function(jax, torch, sizes, variables, net):
  """E and grad_x E of both networks on the same random inputs agree (float32 tolerances)."""
  from gen_jax.models.registry import build_model
  model = build_model(jax_config(sizes).model, jax_spec(sizes))
  s, b = sizes["image_size"], min(sizes["batch"], 16)
  y = np.random.default_rng(5).uniform(size=(b, s, s, 1)).astype(np.float32)
  energy = lambda v, y: model.apply(v, y, method=model.energy)
  e_jax, g_jax = jax.jit(lambda v, y: (energy(v, y), jax.grad(lambda y: energy(v, y).sum())(y)))(variables, y)
  net.eval()
  y_t = torch.from_numpy(y.transpose(0, 3, 1, 2).copy()).requires_grad_(True)
  e_t = net(y_t)
  (g_t,) = torch.autograd.grad(e_t.sum(), y_t)
  e_t, g_t = e_t.detach().numpy(), g_t.numpy().transpose(0, 2, 3, 1)
  e_err = float(np.max(np.abs(np.asarray(e_jax) - e_t)))
  g_err = float(np.max(np.abs(np.asarray(g_jax) - g_t)) / (np.max(np.abs(g_t)) + 1e-12))
  if not (np.allclose(e_jax, e_t, rtol=1e-4, atol=1e-4) and g_err < 1e-4):
    raise SystemExit(f"the two energies differ on the same weights: max |dE| {e_err:.2e}, relative max |d grad| {g_err:.2e}")
  return {"max_abs_energy_diff": e_err, "max_rel_grad_diff": g_err}


def torch_langevin(torch, net, x, num_steps, step_size, noise_scale):
  """K unadjusted Langevin steps on [0, 1], as gen_jax's langevin_chain; (x, mean |grad_x E|)."""
  net.requires_grad_(False)
  g_norm = torch.zeros(())
  for _ in range(num_steps):
    x = x.detach().requires_grad_(True)
    (g,) = torch.autograd.grad(net(x).sum(), x)
    x = (x.detach() - step_size * g + noise_scale * torch.randn_like(g)).clamp_(0.0, 1.0)
    g_norm = g_norm + g.flatten(1).norm(dim=1).mean()
  net.requires_grad_(True)
  return x, g_norm / num_steps


class TorchLangevin:
  def __init__(self, torch, net, x0_nhwc, config):
    self.torch, self.net, self.config = torch, net, config
    self.x0 = torch.from_numpy(np.ascontiguousarray(x0_nhwc.transpose(0, 3, 1, 2)))
    self.out = None

  def run(self, n):
    self.net.eval()
    m = self.config.model
    for _ in range(n):
      self.out = torch_langevin(self.torch, self.net, self.x0, m.langevin_steps, m.step_size, m.noise_scale)


class TorchTrainStep:
  """The same ML step, eager (see the module docstring)."""

  def __init__(self, torch, net, x_uint8, config, num_levels):
    self.torch, self.net, self.config, self.num_levels = torch, net, config, num_levels
    self.x = torch.from_numpy(np.ascontiguousarray(x_uint8.transpose(0, 3, 1, 2)))
    self.buffer = torch.rand(config.ebm.buffer_size, *self.x.shape[1:])
    o = config.optim
    self.opt = torch.optim.Adam(net.parameters(), lr=o.learning_rate, betas=(o.b1, o.b2), eps=o.eps)
    self.sn_modules = [m for _, _, m in torch_layers(net)]
    self.loss = None

  def run(self, n):
    torch, net, config = self.torch, self.net, self.config
    m, e = config.model, config.ebm
    for _ in range(n):
      net.train()
      with torch.no_grad():
        for module in self.sn_modules:  # one power-iteration step each (torch updates u, v in train mode)
          _ = module.weight
      net.eval()
      y = (self.x.float() + torch.rand(self.x.shape)) / self.num_levels
      b = y.shape[0]
      indices = torch.randperm(self.buffer.shape[0])[:b]
      reset = torch.rand(b, 1, 1, 1) < e.reinit_prob
      starts = torch.where(reset, torch.rand_like(y), self.buffer[indices])
      negatives, _ = torch_langevin(torch, net, starts, m.langevin_steps, m.step_size, m.noise_scale)
      self.buffer[indices] = negatives
      e_data, e_neg = net(torch.cat([y, negatives])).chunk(2)
      loss = (e_data.mean() - e_neg.mean()
              + e.energy_l2 * (e_data.square().mean() + e_neg.square().mean()))
      self.opt.zero_grad()
      loss.backward()
      torch.nn.utils.clip_grad_norm_(net.parameters(), config.optim.grad_clip_norm)
      self.opt.step()
      self.loss = loss.item()


# ---------------------------------------------------------------------------------------------


def timed_pair(args, torch, label, ours_run, theirs_run, items_per_call):
  ours_side = Timed("gen_jax jit", ours_run, items_per_call)
  theirs_sides = torch_sides(torch, Timed, "torch eager", theirs_run, items_per_call, args.threads)
  sides = [ours_side] + theirs_sides
  rates = compare(sides, **args.timing)
  for side in sides:
    print(describe(side))
  ours = rates[ours_side.name]
  theirs_name, theirs = fastest(rates, theirs_sides)
  detail = dict(medians=rates, repeats={s.name: s.rates for s in sides},
                calls_per_window={s.name: s.calls_per_window for s in sides}, loadavg_after=os.getloadavg())
  print(f"  {label}: gen_jax {ours:.4g}/s, {theirs_name} {theirs:.4g}/s; ratio {ours / theirs:.2f}x")
  return ours, theirs, theirs_name, detail


def describe_size(sizes):
  s = sizes["image_size"]
  return f"ConvEnergy {s}x{s}x1, channels {tuple(sizes['channels'])}, spectral norm"


def bench_train(args, jax, torch, sizes, t_start):
  config = jax_config(sizes)
  x = np.random.default_rng(0).integers(0, 17, (sizes["batch"], sizes["image_size"], sizes["image_size"], 1),
                                         dtype=np.uint8)
  log(t_start, f"[train] {describe_size(sizes)}, batch {sizes['batch']}, {sizes['steps']} Langevin steps: "
               "compiling gen_jax")
  ours = JaxTrainStep(jax, sizes, x)
  net = torch_conv_energy(torch, sizes["channels"])
  counts = load_jax_weights(torch, net, ours.variables())
  parity = check_same_function(jax, torch, sizes, ours.variables(), net)
  log(t_start, f"  parameters (equal, layer by layer): {counts['total']:,} {counts['per_layer']}; same E and "
               f"grad_x E on the same weights ({parity}); gen_jax init {ours.init_s:.1f} s, compile {ours.compile_s:.1f} s")
  theirs = TorchTrainStep(torch, net, x, config, 17)
  r_ours, r_theirs, theirs_name, detail = timed_pair(args, torch, "ML train steps/s", ours.run, theirs.run, 1)
  loss_j, loss_t = check_finite("gen_jax", ours.loss), check_finite("torch", theirs.loss)
  ratio = r_ours / r_theirs
  row = dict(measure=f"ML train steps/s ({sizes['steps']} Langevin steps + energy update), {describe_size(sizes)}",
             batch=sizes["batch"], gen_jax=r_ours, torch=r_theirs, torch_side=theirs_name, ratio=ratio,
             goal=GOAL, goal_met=bool(ratio >= GOAL))
  detail.update(sizes=sizes, parameters=counts, parity=parity, gen_jax_init_s=ours.init_s,
                gen_jax_compile_s=ours.compile_s, final_loss_gen_jax=loss_j, final_loss_torch=loss_t)
  return row, detail


def bench_langevin(args, jax, torch, sizes, t_start):
  config = jax_config(sizes)
  s, b = sizes["image_size"], sizes["batch"]
  from gen_jax.models.registry import build_model  # pylint: disable=import-outside-toplevel
  model = build_model(config.model, jax_spec(sizes))
  variables = jax.jit(model.init)(jax.random.key(0), np.zeros((b, s, s, 1), np.float32))
  net = torch_conv_energy(torch, sizes["channels"])
  counts = load_jax_weights(torch, net, variables)
  parity = check_same_function(jax, torch, sizes, variables, net)
  log(t_start, f"[langevin] {describe_size(sizes)}: parameters (equal, layer by layer) {counts['total']:,}; "
               f"same E and grad_x E on the same weights ({parity})")
  x0 = np.random.default_rng(1).uniform(size=(b, s, s, 1)).astype(np.float32)
  log(t_start, f"[langevin] {describe_size(sizes)}, {b} chains, {sizes['steps']} steps per call: compiling gen_jax")
  ours = JaxLangevin(jax, sizes, variables, x0)
  log(t_start, f"  gen_jax compile {ours.compile_s:.1f} s")
  theirs = TorchLangevin(torch, net, x0, config)
  r_ours, r_theirs, theirs_name, detail = timed_pair(args, torch, "Langevin steps/s", ours.run, theirs.run,
                                                     sizes["steps"])
  row = dict(measure=f"Langevin steps/s, {describe_size(sizes)}, {sizes['steps']} steps per call", batch=b,
             gen_jax=r_ours, torch=r_theirs, torch_side=theirs_name, ratio=r_ours / r_theirs)
  detail.update(sizes=sizes, parameters=counts, parity=parity, gen_jax_compile_s=ours.compile_s)
  return row, detail


def markdown_table(rows) -> str:
  lines = ["| measure | chains / batch | gen_jax | torch | ratio (gen_jax / torch) | goal |",
           "|---|---:|---:|---:|---:|---:|"]
  for r in rows:
    goal = f"{r['goal']}x ({'met' if r['goal_met'] else 'not met'})" if "goal" in r else "-"
    lines.append(f"| {r['measure']} | {r['batch']} | {r['gen_jax']:.4g} | {r['torch']:.4g} "
                 f"({r['torch_side'].removeprefix('torch eager ').strip('()')}) | {r['ratio']:.2f}x | {goal} |")
  return "\n".join(lines)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  p.add_argument("--quick", action="store_true", help="smoke test: 4 Langevin steps, 8 chains, short windows, no "
                                                      "large size; no JSON unless --json is given")
  p.add_argument("--json", metavar="OUT", default=None, help=f"full run default: {DEFAULT_JSON}")
  p.add_argument("--parts", default="langevin,train,large", help="comma-separated subset of langevin, train, large")
  p.add_argument("--threads", default=None, help="torch intra-op thread count(s), comma-separated; the fastest is "
                                                 "compared (default: the cores this process may use)")
  args = p.parse_args(argv)
  parts = [s.strip() for s in args.parts.split(",") if s.strip()]
  if unknown := set(parts) - {"langevin", "train", "large"}:
    raise SystemExit(f"unknown --parts {sorted(unknown)}; expected langevin, train, large")
  if args.quick:
    parts = [q for q in parts if q != "large"]
  args.timing = TIMING["quick" if args.quick else "full"]
  sizes = SIZES["quick" if args.quick else "cpu"]
  args.threads = [int(t) for t in args.threads.split(",")] if args.threads else [num_cores()]
  json_path = args.json or (None if args.quick else DEFAULT_JSON)

  os.environ.setdefault("JAX_PLATFORMS", "cpu")
  import jax
  import torch
  torch.set_num_threads(args.threads[0])
  torch.manual_seed(0)
  t_start = time.perf_counter()
  env = probe_and_print(torch_environment(jax, torch), torch, args.threads)

  rows, details = [], {}
  if "langevin" in parts:
    row, details["langevin"] = bench_langevin(args, jax, torch, sizes, t_start)
    rows.append(row)
  if "train" in parts:
    row, details["train"] = bench_train(args, jax, torch, sizes, t_start)
    rows.append(row)
  if "large" in parts:
    row, details["langevin_large"] = bench_langevin(args, jax, torch, SIZES["large"], t_start)
    rows.append(row)

  print("\n" + markdown_table(rows))
  log(t_start, "done")
  if json_path:
    with open(json_path, "w") as f:
      json.dump(dict(environment=env, args={k: v for k, v in vars(args).items() if k != "timing"}, sizes=sizes,
                     large_sizes=SIZES["large"], timing=args.timing, rows=rows, details=details,
                     total_s=time.perf_counter() - t_start, loadavg_at_end=os.getloadavg()), f, indent=1)
    print(f"wrote {json_path}")


if __name__ == "__main__":
  main()
