"""The GAN two-player step of gen_jax next to pytorch/examples' DCGAN (PyTorch), same run, same
layers, same batch, reported as ratios gen_jax / torch (> 1: gen_jax faster).

1. Training, two-player steps/s (and examples/s = steps/s x batch) of DCGAN (Radford et al. 2016) on
   64x64x3 images, batch 64 (the example's default), latent 100, 64 base channels (nz = 100,
   ngf = ndf = 64): G 3,576,704 and D 2,765,568 parameters on both sides (checked, layer by layer).
   One step, in pytorch/examples' dcgan/main.py order, on one uint8 batch of real images:
     D: BCE(D(x), 1) + BCE(D(G(z)).detach, 0), real and fake through D separately (each with its
        own BatchNorm statistics), one Adam step;  G: BCE(D'(G(z)), 1) through the updated D', the
        same fake G(z), one Adam step. Adam(2e-4, betas (0.5, 0.999)) for each player.
     gen_jax: `task = gan_task(gan_model((64, 64, 3), architecture="dcgan", latent_dim=100,
              channels=64, num_levels=256), spec, loss="non_saturating")` (both optimizers are
              gan_task's defaults, the example's Adam), `task.update(params, state, opt_state, x_uint8,
              fold_in(key, step), step)` in one `jax.jit` step with params, optimizer state and step
              counter donated (as the training loop's `train_step`); NHWC. gen_jax's D outputs logits
              and its losses are softplus forms: "non_saturating" is D: E softplus(-l_real) +
              E softplus(l_fake) = BCE(sigmoid(l_real), 1) + BCE(sigmoid(l_fake), 0) and G:
              E softplus(-l_fake) = BCE(sigmoid(l_fake), 1), the example's losses exactly ("minimax"
              would give G the saturating E log(1 - D(G(z))) instead, which is not BCE).
     torch:   the example's Generator / Discriminator (Sigmoid output, nn.BCELoss) with its
              `weights_init` (convs N(0, 0.02), BatchNorm weight N(1, 0.02), bias 0) and its training
              iteration verbatim (zero_grad, backward of errD_real, then of errD_fake on
              fake.detach(), optimizerD.step(); zero_grad, backward of errG, optimizerG.step(); the
              .item() reads of the losses and of D(x), D(G(z)) it prints), eager, NCHW; the uint8
              batch is mapped to [-1, 1] inside the step (the example's Normalize((0.5,), (0.5,)),
              gen_jax's `to_model_space`). Goal: gen_jax >= 1.2x.
2. Sampling, images/s (optional, --parts sample): G in eval mode (BatchNorm running averages) on
   z ~ N(0, I), output mapped to uint8 levels; gen_jax `task.sample(params, rng, num)` under
   `jax.jit`, torch `netG.eval()` under `no_grad` with the same conversion.

torch runs with torch.set_num_threads(--threads, default the cores this process may use, as XLA
uses them all); with several counts (--threads 2,1) each is timed and the fastest is compared. A
probe before the runs times one convolution at each count and warns when more threads are slower
than 1 (an oversubscribed machine: OpenMP waits for descheduled threads).

Compilation and warm-up are excluded (gen_jax compiles ahead of time; compile times are reported);
the two sides' timed windows alternate (benchmarks/timing.py) and each number is the median over
the repeats.

  pip install -r benchmarks/requirements.txt
  python benchmarks/gan_vs_pytorch.py            # full run, ~5-10 min on 2 quiet cores; writes
                                                 # benchmarks/gan_vs_pytorch_cpu.json
  python benchmarks/gan_vs_pytorch.py --quick    # smoke test: 16x16 images, 8 base channels, batch 8,
                                                 # < 2 min, no JSON
"""
from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from timing import (THREADS_HELP, CompiledCall, TaskStep, Timed, add_run_arguments, compare_with_torch,  # pylint: disable=wrong-import-position
                    count_params, count_torch_params, final_losses, init_task, json_path, log, parse_threads,
                    probe_and_print, random_images, start_jax_and_torch, torch_environment, torch_nchw, torch_sides,
                    write_results, xla_flops)

DEFAULT_JSON = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gan_vs_pytorch_cpu.json")
# pytorch/examples dcgan/main.py at nz = 100, ngf = ndf = 64, nc = 3 (tests/test_gan_parts.py).
EXAMPLE_PARAMETERS = {"generator": 3_576_704, "discriminator": 2_765_568}
GOAL = 1.2
LR, BETA1, BETA2 = 2e-4, 0.5, 0.999   # the example's Adam (--lr 0.0002 --beta1 0.5); gan_task's default

SIZES = {  # image side, latent dimension, base channels (ngf = ndf), batch, sampling batch
    "full": dict(image_size=64, latent_dim=100, channels=64, batch=64, sample_batch=64),
    "quick": dict(image_size=16, latent_dim=100, channels=8, batch=8, sample_batch=8),
}
TIMING = {
    "full": dict(train=dict(warmup_calls=2, window_s=10.0, repeats=5, max_calls=200),
                 sample=dict(warmup_calls=3, window_s=3.0, repeats=5, max_calls=500)),
    "quick": dict(train=dict(warmup_calls=2, window_s=0.3, repeats=2, max_calls=50),
                  sample=dict(warmup_calls=2, window_s=0.2, repeats=2, max_calls=50)),
}


def num_doublings(size) -> int:
  """n with size = 4 * 2^n: the example's layout has a 4 x 4 base (gen_jax picks the same plan)."""
  from gen_jax.models.gan.networks import resolution_plan
  bh, bw, n = resolution_plan(size, size)
  if (bh, bw) != (4, 4):
    raise SystemExit(f"--image-size must be 4 * 2^n (8, 16, 32, 64, ...) for the example's 4x4 base, got {size}")
  return n


# ---------------------------------------------------------------------------------------------
# gen_jax
# ---------------------------------------------------------------------------------------------


class JaxGAN(TaskStep):
  """gan_task's two-player step, jitted with the state donated and compiled ahead of time."""

  def __init__(self, jax, sizes, x_uint8, loss):
    from gen_jax.data.spec import DataSpec
    from gen_jax.models.gan.task import gan_model, gan_task
    size = sizes["image_size"]
    self.model = gan_model((size, size, 3), architecture="dcgan", latent_dim=sizes["latent_dim"],
                           channels=sizes["channels"], num_levels=256)
    spec = DataSpec(name="bench", event_shape=(size, size, 3), num_levels=256, kind="image")
    task = gan_task(self.model, spec, loss=loss)   # gan_task's default: Adam(2e-4, 0.5, 0.999) for each player
    x = jax.device_put(x_uint8)
    # "rbg" keys compile the initialisation much faster than threefry on CPU (~4 s vs ~20 s at the
    # --quick size here); the step itself uses threefry keys, as the training loop does.
    params, model_state, opt_state, self.init_s = init_task(jax, task, x, jax.random.key(0, impl="rbg"))
    super().__init__(jax, task, params, model_state, opt_state, x)  # as gen_jax.train.step.train_step
    self.flops_per_step = xla_flops(self.step)

  def parameters(self, player):
    return self.state[0]["model"]["params"][player]


def jax_sampler(jax, gan, num) -> CompiledCall:
  """task.sample(params, rng, num) jitted and compiled ahead of time: G in eval mode, uint8 levels."""
  from gen_jax.train.task import merge_variables
  return CompiledCall(jax, lambda params, rng: gan.task.sample(params, rng, num),
                      merge_variables(gan.state[0], gan.state[1]), jax.random.key(2))


# ---------------------------------------------------------------------------------------------
# pytorch/examples dcgan/main.py
# ---------------------------------------------------------------------------------------------


def torch_dcgan(torch, nz, ngf, ndf, nc, n):
  """The example's Generator and Discriminator, with its 4 x 4 base and n stride-2 layers (n = 4 at
  64 x 64: exactly the example's layer list), and its weights_init applied."""
  nn = torch.nn

  class Generator(nn.Module):
    def __init__(self):
      super().__init__()
      layers = [nn.ConvTranspose2d(nz, ngf * 2 ** (n - 1), 4, 1, 0, bias=False),   # 4 x 4
                nn.BatchNorm2d(ngf * 2 ** (n - 1)), nn.ReLU(True)]
      for i in range(1, n):                                                       # x2 each
        layers += [nn.ConvTranspose2d(ngf * 2 ** (n - i), ngf * 2 ** (n - 1 - i), 4, 2, 1, bias=False),
                   nn.BatchNorm2d(ngf * 2 ** (n - 1 - i)), nn.ReLU(True)]
      layers += [nn.ConvTranspose2d(ngf, nc, 4, 2, 1, bias=False), nn.Tanh()]
      self.main = nn.Sequential(*layers)

    def forward(self, x):
      return self.main(x)

  class Discriminator(nn.Module):
    def __init__(self):
      super().__init__()
      layers = [nn.Conv2d(nc, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2, inplace=True)]
      for i in range(1, n):
        layers += [nn.Conv2d(ndf * 2 ** (i - 1), ndf * 2 ** i, 4, 2, 1, bias=False),
                   nn.BatchNorm2d(ndf * 2 ** i), nn.LeakyReLU(0.2, inplace=True)]
      layers += [nn.Conv2d(ndf * 2 ** (n - 1), 1, 4, 1, 0, bias=False), nn.Sigmoid()]
      self.main = nn.Sequential(*layers)

    def forward(self, x):
      return self.main(x).view(-1, 1).squeeze(1)

  def weights_init(m):
    classname = m.__class__.__name__
    if classname.find("Conv") != -1:
      torch.nn.init.normal_(m.weight, 0.0, 0.02)
    elif classname.find("BatchNorm") != -1:
      torch.nn.init.normal_(m.weight, 1.0, 0.02)
      torch.nn.init.zeros_(m.bias)

  net_g, net_d = Generator(), Discriminator()
  net_g.apply(weights_init)
  net_d.apply(weights_init)
  return net_g, net_d


class TorchGAN:
  """The example's training iteration, eager, on a fixed uint8 batch (NCHW)."""

  def __init__(self, torch, sizes, x_uint8):
    self.torch = torch
    self.nz = sizes["latent_dim"]
    self.net_g, self.net_d = torch_dcgan(torch, self.nz, sizes["channels"], sizes["channels"], 3,
                                         num_doublings(sizes["image_size"]))
    self.criterion = torch.nn.BCELoss()
    self.opt_d = torch.optim.Adam(self.net_d.parameters(), lr=LR, betas=(BETA1, BETA2))
    self.opt_g = torch.optim.Adam(self.net_g.parameters(), lr=LR, betas=(BETA1, BETA2))
    self.x = torch_nchw(torch, x_uint8)
    self.loss = None
    self.stats = None

  def run(self, n):
    torch, net_g, net_d, criterion = self.torch, self.net_g, self.net_d, self.criterion
    real_label, fake_label = 1, 0
    for _ in range(n):
      # (1) Update D network: maximize log(D(x)) + log(1 - D(G(z)))
      net_d.zero_grad()
      real = self.x.float() / 127.5 - 1.0     # ToTensor + Normalize((0.5,) * 3, (0.5,) * 3)
      batch_size = real.size(0)
      label = torch.full((batch_size,), real_label, dtype=real.dtype)
      output = net_d(real)
      err_d_real = criterion(output, label)
      err_d_real.backward()
      d_x = output.mean().item()
      noise = torch.randn(batch_size, self.nz, 1, 1)
      fake = net_g(noise)
      label.fill_(fake_label)
      output = net_d(fake.detach())
      err_d_fake = criterion(output, label)
      err_d_fake.backward()
      d_g_z1 = output.mean().item()
      err_d = err_d_real + err_d_fake
      self.opt_d.step()
      # (2) Update G network: maximize log(D(G(z)))
      net_g.zero_grad()
      label.fill_(real_label)  # fake labels are real for generator cost
      output = net_d(fake)
      err_g = criterion(output, label)
      err_g.backward()
      d_g_z2 = output.mean().item()
      self.opt_g.step()
      self.loss = err_d.item() + err_g.item()
      self.stats = (d_x, d_g_z1, d_g_z2)


class TorchSampler:
  """G in eval mode under no_grad, z ~ N(0, I), output to uint8 levels (as gen_jax's sample)."""

  def __init__(self, torch, net_g, nz, num):
    self.torch, self.net_g, self.shape = torch, net_g, (num, nz, 1, 1)
    self.out = None

  def run(self, n):
    torch = self.torch
    self.net_g.eval()
    with torch.no_grad():
      for _ in range(n):
        x = self.net_g(torch.randn(self.shape))
        self.out = ((x + 1.0) * 127.5).round().to(torch.uint8)
    self.net_g.train()


def check_same_layers(torch, jax_gan, torch_gan):
  """Layer-by-layer: the same kernel and BatchNorm shapes in the same order, and equal counts."""
  counts = {}
  for player, net, prefix, transposed in (("generator", torch_gan.net_g, "ConvTranspose", True),
                                          ("discriminator", torch_gan.net_d, "Conv", False)):
    ours = jax_gan.parameters(player)
    convs = [m for m in net.modules() if isinstance(m, (torch.nn.Conv2d, torch.nn.ConvTranspose2d))]
    norms = [m for m in net.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    expected = {}
    for i, conv in enumerate(convs):
      a, b, kh, kw = conv.weight.shape   # ConvTranspose2d [in, out, k, k]; Conv2d [out, in, k, k]
      expected[f"{prefix}_{i}"] = {"kernel": (kh, kw, a, b) if transposed else (kh, kw, b, a)}
    for i, norm in enumerate(norms):
      expected[f"BatchNorm_{i}"] = {"scale": tuple(norm.weight.shape), "bias": tuple(norm.bias.shape)}
    got = {layer: {k: tuple(v.shape) for k, v in leaves.items()} for layer, leaves in ours.items()}
    if got != expected:
      raise SystemExit(f"the two {player}s differ:\n  gen_jax {got}\n  torch   {expected}")
    n_ours, n_theirs = count_params(ours), count_torch_params(net)
    if n_ours != n_theirs:
      raise SystemExit(f"the two {player}s differ: gen_jax {n_ours} vs torch {n_theirs} parameters")
    counts[player] = n_ours
  return counts


# ---------------------------------------------------------------------------------------------


def bench_train(args, jax, torch, t_start):
  sizes, batch, size = args.sizes, args.sizes["batch"], args.sizes["image_size"]
  x = random_images(batch, size)
  log(t_start, f"[train] DCGAN {size}x{size}x3, latent {sizes['latent_dim']}, {sizes['channels']} base channels, "
               f"batch {batch}: building and compiling gen_jax")
  jax_gan = JaxGAN(jax, sizes, x, args.loss)
  torch.manual_seed(0)
  torch_gan = TorchGAN(torch, sizes, x)
  counts = check_same_layers(torch, jax_gan, torch_gan)
  if (size, sizes["latent_dim"], sizes["channels"]) == (64, 100, 64) and counts != EXAMPLE_PARAMETERS:
    raise SystemExit(f"pytorch/examples' DCGAN has {EXAMPLE_PARAMETERS} parameters, got {counts}")
  gflop = jax_gan.flops_per_step / 1e9
  log(t_start, f"  parameters (equal, layer by layer): G {counts['generator']:,}, D {counts['discriminator']:,}; "
               f"gen_jax init {jax_gan.init_s:.1f} s, compile {jax_gan.compile_s:.1f} s; XLA's count of one "
               f"step {gflop:.2f} GFLOP")
  theirs_sides = torch_sides(torch, Timed, "torch eager", torch_gan.run, 1, args.threads)
  t0 = time.perf_counter()
  ours, theirs_name, theirs, windows = compare_with_torch(Timed("gen_jax jit", jax_gan.run, 1), theirs_sides,
                                                          args.timing["train"])
  loss_j, loss_t = final_losses(t_start, t0, {"gen_jax": jax_gan.loss, "torch": torch_gan.loss}, "final L_D + L_G")
  ratio = ours / theirs
  row = dict(measure=f"two-player steps/s, DCGAN {size}x{size}x3 (ngf = ndf = {sizes['channels']}, nz = "
                     f"{sizes['latent_dim']})", batch=batch,
             gen_jax=ours, torch=theirs, torch_side=theirs_name,
             gen_jax_examples_per_s=ours * batch, torch_examples_per_s=theirs * batch,
             ratio=ratio, goal=GOAL, goal_met=bool(ratio >= GOAL))
  detail = dict(sizes=sizes, loss=args.loss, parameters=counts, gen_jax_init_s=jax_gan.init_s,
                gen_jax_compile_s=jax_gan.compile_s, xla_gflop_per_step=gflop,
                gflop_per_s_gen_jax=gflop * ours, gflop_per_s_torch=gflop * theirs,
                seconds_per_step_gen_jax=1 / ours, seconds_per_step_torch=1 / theirs,
                final_loss_gen_jax=loss_j, final_loss_torch=loss_t, **windows, loadavg_after=os.getloadavg())
  print(f"  {row['measure']}, batch {batch}: gen_jax {ours:.4g} steps/s ({ours * batch:.4g} examples/s), "
        f"{theirs_name} {theirs:.4g} steps/s ({theirs * batch:.4g} examples/s); ratio {ratio:.2f}x (goal {GOAL}x, "
        f"{'met' if row['goal_met'] else 'not met'}); {1 / ours:.3f} vs {1 / theirs:.3f} s/step, "
        f"{detail['gflop_per_s_gen_jax']:.0f} vs {detail['gflop_per_s_torch']:.0f} GFLOP/s (XLA's count)")
  return row, detail, (jax_gan, torch_gan)


def bench_sampling(args, jax, torch, trained, t_start):
  jax_gan, torch_gan = trained
  num = args.sizes["sample_batch"]
  sampler = jax_sampler(jax, jax_gan, num)
  log(t_start, f"[sample] G in eval mode to uint8, batch {num}: gen_jax compiled in {sampler.compile_s:.1f} s")
  torch_sampler = TorchSampler(torch, torch_gan.net_g, torch_gan.nz, num)
  theirs_sides = torch_sides(torch, Timed, "torch no_grad", torch_sampler.run, num, args.threads)
  ours, theirs_name, theirs, windows = compare_with_torch(Timed("gen_jax jit", sampler.run, num), theirs_sides,
                                                          args.timing["sample"])
  size = args.sizes["image_size"]
  row = dict(measure=f"sampling images/s, G {size}x{size}x3 in eval mode to uint8", batch=num, gen_jax=ours,
             torch=theirs, torch_side=theirs_name, ratio=ours / theirs)
  detail = dict(gen_jax_compile_s=sampler.compile_s, **windows)
  log(t_start, f"  sampling: gen_jax {ours:.4g} images/s, {theirs_name} {theirs:.4g} images/s; ratio {ours / theirs:.2f}x")
  return row, detail


def markdown_table(train_row, sample_row) -> str:
  lines = ["| measure | batch | gen_jax | torch | ratio (gen_jax / torch) | goal |", "|---|---:|---:|---:|---:|---:|"]
  if train_row:
    r = train_row
    lines.append(f"| {r['measure']} | {r['batch']} | {r['gen_jax']:.4g} ({r['gen_jax_examples_per_s']:.4g} ex/s) | "
                 f"{r['torch']:.4g} ({r['torch_examples_per_s']:.4g} ex/s; "
                 f"{r['torch_side'].removeprefix('torch eager ').strip('()')}) | {r['ratio']:.2f}x | "
                 f"{r['goal']}x ({'met' if r['goal_met'] else 'not met'}) |")
  if sample_row:
    r = sample_row
    lines.append(f"| {r['measure']} | {r['batch']} | {r['gen_jax']:.4g} | {r['torch']:.4g} "
                 f"({r['torch_side'].removeprefix('torch no_grad ').strip('()')}) | {r['ratio']:.2f}x | - |")
  return "\n".join(lines)


def main(argv=None):
  p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
  add_run_arguments(p, "16x16 images, 8 base channels, batch 8, short windows (< 2 min)", DEFAULT_JSON)
  p.add_argument("--parts", default="train,sample", help="comma-separated subset of train, sample (needs train)")
  p.add_argument("--batch", type=int, default=None, help="training batch, both sides (default 64, the example's; "
                                                         "--quick 8)")
  p.add_argument("--sample-batch", type=int, default=None, help="images per sampling call (default 64; --quick 8)")
  p.add_argument("--image-size", type=int, default=None, help="image side, 4 * 2^n (default 64; --quick 16)")
  p.add_argument("--channels", type=int, default=None, help="ngf = ndf (default 64; --quick 8)")
  p.add_argument("--latent-dim", type=int, default=None, help="nz (default 100)")
  p.add_argument("--threads", default=None, help=THREADS_HELP)
  args = p.parse_args(argv)
  args.loss = "non_saturating"  # the example's BCE losses (see the module docstring)
  mode = "quick" if args.quick else "full"
  args.sizes, args.timing = dict(SIZES[mode]), TIMING[mode]
  for key in ("batch", "sample_batch", "image_size", "channels", "latent_dim"):
    if getattr(args, key) is not None:
      args.sizes[key] = getattr(args, key)
  args.threads = parse_threads(args.threads)
  parts = [s.strip() for s in args.parts.split(",") if s.strip()]
  if unknown := set(parts) - {"train", "sample"}:
    raise SystemExit(f"unknown --parts {sorted(unknown)}; expected train, sample")
  if "train" not in parts:
    raise SystemExit("--parts sample samples from the networks built in part train; add train")
  if args.sizes["batch"] < 2:
    raise SystemExit("--batch must be >= 2 (BatchNorm in train mode)")
  out = json_path(args, DEFAULT_JSON)

  jax, torch, t_start = start_jax_and_torch(args.threads)
  num_doublings(args.sizes["image_size"])  # fails early on a size without the 4x4 base
  env = probe_and_print(torch_environment(jax, torch), torch, args.threads)

  details = {}
  train_row, details["train"], trained = bench_train(args, jax, torch, t_start)
  sample_row = None
  if "sample" in parts:
    sample_row, details["sampling"] = bench_sampling(args, jax, torch, trained, t_start)

  print("\n" + markdown_table(train_row, sample_row))
  log(t_start, "done")
  if out:
    setup = {k: v for k, v in vars(args).items() if k not in ("sizes", "timing")}
    write_results(out, t_start, environment=env, args=setup, sizes=args.sizes, timing=args.timing,
                  train=train_row, sampling=sample_row, details=details)


if __name__ == "__main__":
  main()
