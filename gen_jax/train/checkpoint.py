"""Orbax checkpoints that survive a kill at any moment, damaged files, and a SIGTERM that saves before exiting.

Orbax writes each checkpoint into a temporary directory and renames it when complete, so a run killed
mid-save (even by SIGKILL) leaves the last complete checkpoint intact; the partial one is ignored.

Orbax has no integrity check of its own that catches flipped bytes (64 flipped bytes in an OCDBT data
file restored silently, an Adam moment off by 4e34), so `save` stores the SHA-256 of every array's
bytes in the step's custom metadata (`_CHECKPOINT_METADATA`, committed with the step) and
`restore_verified` recomputes them after restoring. `restore_newest_intact` walks back from the newest
step past any that are damaged (flipped bytes, truncated or missing files, an empty step directory),
naming each in one line, to the newest that restores and verifies. Steps saved before the checksums
existed restore unverified.
"""
from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
import signal

import jax
import numpy as np
import orbax.checkpoint as ocp
from jax.experimental import multihost_utils

CHECKSUMS = "gen_jax_sha256"  # the custom-metadata key: {tree path: SHA-256 hex of the array's bytes}
DAMAGED_DIR = "checkpoints_damaged"  # beside checkpoints/: where damaged steps are moved, never deleted


def make_manager(directory: str, max_to_keep: int) -> ocp.CheckpointManager:
  options = ocp.CheckpointManagerOptions(max_to_keep=max_to_keep, create=True,
                                         enable_async_checkpointing=False,
                                         cleanup_tmp_directories=True)
  # one item, handled by StandardCheckpointHandler: said here, not inferred from the steps on disk, which a
  # damaged step (an empty directory) would confuse into asking for Composite args on every step
  return ocp.CheckpointManager(os.path.abspath(directory), options=options,
                               item_handlers=ocp.StandardCheckpointHandler())


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


def array_checksums(state) -> dict[str, str]:
  """{tree path: SHA-256 of the leaf's bytes} of every array in `state`, gathered to the host.

  On many processes every one computes them: the train state is replicated over the mesh, so each
  process holds every array whole and gets the same sums; Orbax writes process 0's with the step's
  metadata, and after a restore every process verifies its own copy. (A state sharded across processes
  would need `multihost_utils.process_allgather` first; `jax.device_get` refuses it rather than summing a part.)"""
  leaves = jax.tree_util.tree_leaves_with_path(jax.device_get(state))
  return {jax.tree_util.keystr(path): hashlib.sha256(np.ascontiguousarray(leaf).tobytes()).hexdigest()
          for path, leaf in leaves}


def save(manager: ocp.CheckpointManager, step: int, state) -> None:
  manager.save(step, args=ocp.args.StandardSave(state), force=True,
               custom_metadata={CHECKSUMS: array_checksums(state)})
  manager.wait_until_finished()


class DamagedCheckpoint(ValueError):
  """A checkpoint step that cannot be restored, or whose arrays differ from their checksums."""


def _first_line(error: Exception, limit: int = 200) -> str:
  text = (str(error).strip().splitlines() or [""])[0]
  text = f"{type(error).__name__}: {text}" if text else type(error).__name__
  return text if len(text) <= limit else text[:limit] + "..."


def restore_verified(manager: ocp.CheckpointManager, abstract_state, step: int):
  """Restores `step` into the structure, shapes and shardings of `abstract_state` and checks every
  array against the checksums saved with it.

  Raises:
    DamagedCheckpoint: in one line naming the step's directory and what is wrong.
  """
  where = os.path.join(str(manager.directory), str(step))
  try:
    state = manager.restore(step, args=ocp.args.StandardRestore(abstract_state))
    expected = (manager.metadata(step).custom_metadata or {}).get(CHECKSUMS)
  except Exception as error:  # Orbax and TensorStore raise many types for damaged files
    raise DamagedCheckpoint(f"checkpoint {where} cannot be restored ({_first_line(error)})") from error
  if expected is not None:
    found = array_checksums(state)
    differ = sorted(p for p in set(expected) | set(found) if expected.get(p) != found.get(p))
    if differ:
      raise DamagedCheckpoint(f"checkpoint {where}: {len(differ)} of {len(expected)} arrays differ from the "
                              f"checksums saved with them (first: {differ[0]}); its files are damaged")
  return state


def restore(manager: ocp.CheckpointManager, abstract_state, step: int | None = None):
  """Restores and verifies `step`, or by default the newest intact step (`restore_newest_intact`,
  reporting any damaged newer step as a warning)."""
  if step is not None:
    return restore_verified(manager, abstract_state, step)
  state, _, _ = restore_newest_intact(manager, abstract_state)
  return state


def restore_newest_intact(manager: ocp.CheckpointManager, abstract_state, strict: bool = False):
  """(state, step, damaged): the newest step that restores and verifies, and {step: one-line report}
  of the newer steps that did not (each also logged as a warning).

  Raises:
    FileNotFoundError: no checkpoint in the directory.
    DamagedCheckpoint: with `strict`, the newest step is damaged; without, every step is (a model
      whose train state differs from the saved one's fails so on every step: the error says so).
  """
  steps = sorted(manager.all_steps(), reverse=True)
  if not steps:
    raise FileNotFoundError(f"no checkpoint in {manager.directory}")
  damaged = {}
  for step in steps:
    try:
      state = restore_verified(manager, abstract_state, step)
    except DamagedCheckpoint as error:
      if strict:
        raise
      damaged[step] = str(error)
      continue
    for report in damaged.values():
      logging.warning("%s; skipped: the newest intact step is %d", report, step)
    return state, step, damaged
  raise DamagedCheckpoint(f"no checkpoint in {manager.directory} restores into this train state: "
                          + "; ".join(damaged.values()) + ". If every step fails alike, the model differs from the "
                          "one that wrote them (use a new workdir)")


def _path_name(path) -> str:
  """'params.model.params.Dense_0.kernel' for a tree path, whether the tree is a dataclass or a dict."""
  return ".".join(str(getattr(k, "name", getattr(k, "key", getattr(k, "idx", k)))) for k in path)


def state_differences(manager: ocp.CheckpointManager, abstract_state) -> list[str]:
  """How the arrays saved in the newest readable step differ from `abstract_state`'s ('missing',
  'not in this state', or 'shape (16,) -> (32,)'); [] when they agree or no step's metadata reads."""
  for step in sorted(manager.all_steps(), reverse=True):
    try:
      saved = ocp.StandardCheckpointHandler().metadata(manager.directory / str(step) / "default")
    except Exception:  # a damaged step: `restore_newest_intact` names it
      continue
    saved = {_path_name(p): (tuple(m.shape), str(m.dtype)) for p, m in jax.tree_util.tree_leaves_with_path(saved)}
    new = {_path_name(p): (tuple(a.shape), str(a.dtype)) for p, a in jax.tree_util.tree_leaves_with_path(abstract_state)}
    lines = []
    for name in sorted(set(saved) | set(new)):
      if name not in new:
        lines.append(f"{name}: saved, not in this state")
      elif name not in saved:
        lines.append(f"{name}: in this state, not saved")
      elif saved[name] != new[name]:
        lines.append(f"{name}: saved {saved[name][0]} {saved[name][1]}, this state {new[name][0]} {new[name][1]}")
    return lines
  return []


def set_aside(manager: ocp.CheckpointManager, steps) -> list[str]:
  """Moves the directories of `steps` (damaged ones) out of the checkpoint directory into
  `checkpoints_damaged/` beside it, so the run can save those steps again; returns the new paths.

  On many processes (one shared checkpoint directory) process 0 moves them and every process waits
  for it before reloading; process 0 returns the new paths, the others [].
  """
  directory = str(manager.directory)
  aside = os.path.join(os.path.dirname(directory), DAMAGED_DIR)
  moved = []
  if jax.process_index() == 0:
    os.makedirs(aside, exist_ok=True)
    for step in steps:
      target = os.path.join(aside, str(step))
      suffix = 1
      while os.path.exists(target):
        target, suffix = os.path.join(aside, f"{step}.{suffix}"), suffix + 1
      shutil.move(os.path.join(directory, str(step)), target)
      moved.append(target)
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices("gen_jax: damaged checkpoints set aside")
  manager.reload()
  return moved


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
