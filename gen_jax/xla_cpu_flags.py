"""The XLA:CPU flag gen_jax sets on import: convolutions through XLA's Eigen kernels, not YNNPACK's.

jaxlib 0.10 sends every convolution on CPU to YNNPACK ("individual_convolution" in the default
`--xla_cpu_experimental_ynn_fusion_type`). On the 2-core x86 machine this project is measured on, XLA's
older Eigen path runs the convolutions gen_jax's models use faster, forward and both gradients
(`python benchmarks/convolutions.py`, ms per call, same run, the two flag sets in two subprocesses):

    kind (shape)                              YNN (default)  fwd / d_input / d_kernel   Eigen (this flag)
    3x3 s1, U-Net   (16,16,16,64)->64          3.07 / 3.45 / 4.63                         1.8 / 2.0 / 2.5
    1x1,    U-Net   (16,16,16,64)->64          0.84 / 0.92 / 2.46                         0.5 / 0.5 / 1.1
    4x4 s2, DCGAN   (64,16,16,64)->128         7.87 / 11.1 / 13.4                         6.4 / 11  / 9.5
    3x3 s1, Glow    (64,8,8,16)->256           3.84 / 4.21 / 3.29                         2.0 / 3.4 / 2.4
    3x3 s1, EBM 28  (64,28,28,32)->32          10.6 / 10.9 / 12.6                         5.9 / 6.8 / 13

(2026-12-02, single-shot probes.) The three-round run of 2026-12-03 on a 2-core AMD EPYC: Eigen faster
on 22 of 24 passes (1.1-2.2x), slower on the DCGAN critic's input gradient (0.91x) and the 28x28 EBM
kernel gradient (0.92x); every end-to-end CPU benchmark faster (benchmarks/RESULTS.md).

Matmuls do not go through this flag, and the numerics are the same convolution (a test checks both paths
against a float64 reference of `lax.conv_general_dilated`). The oneDNN and XNNPACK flags of this jaxlib
(`--xla_cpu_use_onednn`, `--xla_cpu_experimental_onednn_fusion_type=+individual_convolution`,
`--xla_cpu_experimental_xnn_fusion_type=+individual_convolution`) measured no gain, alone or on top of this.

The flag is set only where it was measured and is safe:
- jaxlib 0.10.*: XLA aborts the process on a flag it does not know, and later jaxlibs may drop this one;
- before any JAX backend exists (XLA reads XLA_FLAGS once, when it makes the CPU client); if one does,
  nothing is changed and the convolutions run on the default path;
- when the user's XLA_FLAGS does not already name `xla_cpu_experimental_ynn_fusion_type` (theirs wins);
- unless `GEN_JAX_XLA_CPU_FLAGS=0` is in the environment (the opt-out).
It affects only the CPU backend; on an accelerator the flag is read and unused.
"""
from __future__ import annotations

import os

FLAG = "--xla_cpu_experimental_ynn_fusion_type=-individual_convolution"
OPT_OUT = "GEN_JAX_XLA_CPU_FLAGS"
TESTED_JAXLIB = "0.10."


def apply(environ=os.environ) -> str | None:
  """Appends FLAG to environ["XLA_FLAGS"] where the rules above allow; returns why not, or None."""
  import jaxlib
  from jax._src import xla_bridge

  if environ.get(OPT_OUT, "1") == "0":
    return f"{OPT_OUT}=0"
  if not jaxlib.__version__.startswith(TESTED_JAXLIB):
    return f"jaxlib {jaxlib.__version__} (the flag was measured on {TESTED_JAXLIB}*)"
  flags = environ.get("XLA_FLAGS", "")
  if "xla_cpu_experimental_ynn_fusion_type" in flags:
    return "XLA_FLAGS already sets xla_cpu_experimental_ynn_fusion_type"
  if xla_bridge.backends_are_initialized():
    return "a JAX backend was made before gen_jax was imported"
  environ["XLA_FLAGS"] = f"{flags} {FLAG}".strip()
  return None


not_applied = apply()
