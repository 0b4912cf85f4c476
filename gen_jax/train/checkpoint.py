"""Orbax checkpoints that survive a kill at any moment, and a SIGTERM that saves before exiting.

Orbax writes each checkpoint into a temporary directory and renames it when complete, so a run killed
mid-save (even by SIGKILL) leaves the last complete checkpoint intact; the partial one is ignored.
"""
from __future__ import annotations

import json
import os
import signal

import jax
import orbax.checkpoint as ocp


def make_manager(directory: str, max_to_keep: int) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                         enable_async_checkpointing=False,
                                         cleanup_tmp_directories=True)
  return ocp.CheckpointManager(os.path.abspath(directory), options=options)


FORMAT_FILE = "checkpoint_format.json"


def write_format(workdir: str, checkpoint_format: int) -> None:
  """Records which checkpoint format the run's checkpoints are written in (`TrainState`'s layout)."""
  path = os.path.join(workdir, FORMAT_FILE)
  with open(path + ".tmp", "w") as f:  # written whole, then renamed: a kill leaves no partial file
    json.dump({"checkpoint_format": checkpoint_format}, f)
  os.replace(path + ".tmp", path)


def check_format(workdir: str, checkpoint_format: int) -> None:
  """Raises when the run's checkpoints were written in another format than `checkpoint_format`."""
  path = os.path.join(workdir, FORMAT_FILE)
  found = 1  # runs written before the file existed: params and carried state in one tree
  if os.path.exists(path):
    with open(path) as f:
      found = json.load(f)["checkpoint_format"]
  if found != checkpoint_format:
    raise ValueError(
        f"{workdir}: its checkpoints are in checkpoint format {found} (written by an earlier gen_jax, whose "
        f"TrainState held the carried state inside params), this gen_jax reads format {checkpoint_format}; "
        "retrain the run with its command (README), or load it with gen_jax 0.1.0 at commit 5f04e7f")


def save(manager: ocp.CheckpointManager, step: int, state) -> None:
  manager.save(step, args=ocp.args.StandardSave(state), force=True)
  manager.wait_until_finished()


def restore(manager: ocp.CheckpointManager, abstract_state, step: int | None = None):
  """Restores `step` (default: the latest) into the structure, shapes and shardings of `abstract_state`."""
  step = manager.latest_step() if step is None else step
  if step is None:
    raise FileNotFoundError(f"no checkpoint in {manager.directory}")
  return manager.restore(step, args=ocp.args.StandardRestore(abstract_state))


def abstract_like(state_shape, state_sharding: jax.sharding.Sharding):
  """ShapeDtypeStructs of `state_shape` carrying the (single, e.g. replicated) sharding to restore into."""
  return jax.tree.map(lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=state_sharding),
                      state_shape)


class TerminationFlag:
  """Set by SIGTERM (e.g. a pre-empted job); the loop saves a checkpoint at the next step boundary."""

  def __init__(self):
    self.requested = False
    self._previous = None

  def __enter__(self):
    self._previous = signal.signal(signal.SIGTERM, self._handle)
    return self

  def _handle(self, signum, frame):
    del signum, frame
    self.requested = True

  def __exit__(self, *exc):
    signal.signal(signal.SIGTERM, self._previous)
    return False
