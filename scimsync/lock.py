"""The run lock: two overlapping runs (cron) never both write."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from scimsync.errors import LockError


@contextmanager
def run_lock(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the duration of a writing run.

    The lock is an OS advisory lock (flock), so a crashed run never leaves a stale
    lock behind; the file only records who holds it, for the message.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
            raise LockError(
                f"another scimsync run is writing ({holder}); lock file {path}. "
                "This run exits without changes; the next scheduled run will catch up."
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}".encode(), 0)
        yield
    finally:
        os.close(fd)
