"""One training process per workdir: an advisory lock (`fcntl.flock`) on WORKDIR/.lock, held while it trains.

Two processes training in one workdir would both append every metric line and race each other's
checkpoints; the second now refuses to start. The kernel releases the lock when its holder exits,
however it exits (SIGKILL included), so a killed run never leaves a stale lock behind.
"""
from __future__ import annotations

import contextlib
import fcntl
import os

LOCK_FILE = ".lock"


@contextlib.contextmanager
def hold(workdir: str, enabled: bool = True):
  """Holds the workdir's lock for the block; with `enabled=False` (the processes of a multi-process run
  other than the chief, which share its workdir) does nothing.

  Raises:
    RuntimeError: another process holds it (naming that process, as far as it wrote its pid).
  """
  if not enabled:
    yield
    return
  path = os.path.join(workdir, LOCK_FILE)
  fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
  try:
    try:
      fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
      holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
      raise RuntimeError(f"{workdir} is in use: another process (pid {holder}) is training in it; wait for it "
                         "to finish or use another workdir") from None
    os.ftruncate(fd, 0)
    os.pwrite(fd, str(os.getpid()).encode(), 0)
    yield
  finally:
    os.close(fd)  # closing the descriptor releases the lock
