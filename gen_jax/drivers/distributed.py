"""Start-up of a multi-host run on JAX's multi-controller runtime: `jax.distributed.initialize()`.

Every host runs the same `python -m experiments.main ...`; this joins them into one JAX job whose
`jax.devices()` are every host's devices, so the loop's Mesh is global and its jitted step's collectives
(XLA's: NCCL on GPUs, ICI on TPUs, gloo on CPUs) span the hosts. Nothing here manages processes or
implements a collective: JAX's coordinator service does both.

Three ways to start (`initialize`), chosen by the command line:
  - none (the default): one process, nothing is called;
  - `auto`: `jax.distributed.initialize()` with no arguments, which reads the cluster's environment
    (JAX 0.10's detectors: Slurm's SLURM_* variables, Open MPI's OMPI_*, mpi4py, Kubernetes, a Cloud TPU
    pod's metadata; JAX_COORDINATOR_ADDRESS, if set, overrides the detected coordinator);
  - explicit: `coordinator_address` (host:port of process 0), `num_processes` and `process_id`, all three.

It must run before any other JAX call (one that touches a backend: `jax.devices()`, creating an array),
since JAX's backends are built once, for the processes known then.
"""
from __future__ import annotations

import jax

MODES = ("none", "auto")


def check_arguments(mode: str, coordinator_address: str | None, num_processes: int | None,
                    process_id: int | None) -> bool:
  """Whether the run is distributed; raises ValueError naming what was expected for a bad combination."""
  if mode not in MODES:
    raise ValueError(f"--distributed must be one of {', '.join(MODES)}, got {mode!r}")
  explicit = {"coordinator_address": coordinator_address, "num_processes": num_processes, "process_id": process_id}
  given = [name for name, value in explicit.items() if value is not None]
  if mode == "auto":
    if given:
      raise ValueError(f"--distributed=auto reads the cluster's environment; drop --{', --'.join(given)}, or drop "
                       "--distributed=auto and give all of --coordinator_address, --num_processes, --process_id")
    return True
  if not given:
    return False
  missing = [name for name in explicit if explicit[name] is None]
  if missing:
    raise ValueError(f"a multi-process run given explicitly needs --coordinator_address, --num_processes and "
                     f"--process_id; missing --{', --'.join(missing)} (or use --distributed=auto on a cluster "
                     "JAX detects: Slurm, Open MPI, a TPU pod)")
  host, _, port = coordinator_address.rpartition(":")
  if not host or not port.isdigit():
    raise ValueError(f"--coordinator_address must be HOST:PORT of process 0 (e.g. 10.0.0.1:1234), got "
                     f"{coordinator_address!r}")
  if num_processes < 1:
    raise ValueError(f"--num_processes must be a positive integer, got {num_processes}")
  if not 0 <= process_id < num_processes:
    raise ValueError(f"--process_id must be in [0, {num_processes}) for --num_processes={num_processes}, "
                     f"got {process_id}")
  return True


def initialize(mode: str = "none", coordinator_address: str | None = None, num_processes: int | None = None,
               process_id: int | None = None, initialization_timeout: int = 300) -> bool:
  """Joins this process to a multi-process JAX job when asked (see the module docstring); returns whether it did.

  On CPU devices the cross-process collectives are gloo's (JAX has no other CPU implementation that
  works without MPI); the setting is made before the backends exist and is ignored by GPU and TPU backends.
  """
  if not check_arguments(mode, coordinator_address, num_processes, process_id):
    return False
  jax.config.update("jax_cpu_collectives_implementation", "gloo")
  if mode == "auto":
    try:
      jax.distributed.initialize(initialization_timeout=initialization_timeout)
    except ValueError as error:  # JAX's own words are terse ("coordinator_address should be defined.")
      raise ValueError(f"--distributed=auto found no cluster that JAX detects (Slurm, Open MPI, mpi4py, Kubernetes, "
                       f"a Cloud TPU pod) to read the processes from ({error}); run under one, or give "
                       "--coordinator_address, --num_processes and --process_id") from error
  else:
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id, initialization_timeout=initialization_timeout)
  return True


def is_chief() -> bool:
  """Process 0: the one that writes logs, metrics, samples and figures."""
  return jax.process_index() == 0
