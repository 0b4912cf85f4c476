"""Train and evaluate one config:

  python -m experiments.main --config=experiments/configs/quickstart.py --workdir=runs/quickstart
  python -m experiments.main --config=experiments/configs/glow_digits.py:cpu --workdir=runs/glow \
      --config.train.num_steps=100

Running again with the same workdir resumes from its newest intact checkpoint.

On several hosts (or processes), run the same command on each, adding either `--distributed=auto`
(Slurm, Open MPI, a TPU pod: JAX reads the cluster's environment) or all of
`--coordinator_address=HOST:PORT --num_processes=N --process_id=I` (HOST:PORT of process 0); see
`gen_jax.drivers.distributed`. The global batch is the config's, whatever the number of processes.
"""
from __future__ import annotations

import jax
from absl import app, flags, logging
from ml_collections import config_flags

from experiments import absl_app
from gen_jax.drivers import distributed
from gen_jax.drivers.loop import train_and_evaluate

_CONFIG = config_flags.DEFINE_config_file("config", None, "Path to a config file (optionally PATH:VARIANT).",
                                          lock_config=True)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for metrics, samples and checkpoints.")
_STRICT_RESUME = flags.DEFINE_bool("strict_resume", False, "Stop when the newest checkpoint is damaged, instead "
                                   "of naming it, moving it to checkpoints_damaged/ and resuming from the newest intact one.")
_DISTRIBUTED = flags.DEFINE_enum("distributed", "none", list(distributed.MODES),
                                 "'auto': join a multi-process run through JAX's cluster auto-detection (Slurm, "
                                 "Open MPI, TPU pods); 'none': one process unless the three flags below are given.")
_COORDINATOR = flags.DEFINE_string("coordinator_address", None, "HOST:PORT of process 0 of a multi-process run.")
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Number of processes of a multi-process run.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index in [0, num_processes).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
  if len(argv) > 1:
    raise app.UsageError(f"unexpected arguments: {argv[1:]}")
  try:  # before any other JAX call
    distributed.initialize(_DISTRIBUTED.value, _COORDINATOR.value, _NUM_PROCESSES.value, _PROCESS_ID.value)
  except ValueError as error:
    raise app.UsageError(str(error)) from None
  if not flags.FLAGS["verbosity"].present:  # keep Orbax's per-save INFO lines out of the progress bar
    logging.set_verbosity(logging.WARNING)
  logging.info("JAX devices: %s (process %d of %d)", jax.devices(), jax.process_index(), jax.process_count())
  train_and_evaluate(_CONFIG.value, _WORKDIR.value, strict_resume=_STRICT_RESUME.value)


if __name__ == "__main__":
  absl_app.run(main)
