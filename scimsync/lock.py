"""The run lock: two overlapping runs (cron) never both write."""

from __future__ import annotations

import fcntl
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from scimsync.errors import LockError

POLL_SECONDS = 0.2


@contextmanager
def run_lock(
    path: Path, *, timeout: float = 0, sleep: Callable[[float], None] = time.sleep
) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` for the duration of a writing run.

    The lock is an OS advisory lock (flock), so a crashed run never leaves a stale
    lock behind; the file only records who holds it, for the message. With a ``timeout``
    (seconds, `--lock-timeout`) a run waits that long for the other run to finish.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _acquire(fd, path, timeout, sleep)
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"pid {os.getpid()} since {time.strftime('%Y-%m-%dT%H:%M:%S%z')}".encode(), 0)
        yield
    finally:
        os.close(fd)


def _acquire(fd: int, path: Path, timeout: float, sleep: Callable[[float], None]) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            return
        except BlockingIOError:
            if time.monotonic() >= deadline:
                break
            sleep(POLL_SECONDS)
    holder = os.pread(fd, 200, 0).decode(errors="replace").strip() or "another process"
    waited = f" after waiting {timeout:g} s" if timeout else ""
    raise LockError(
        f"another scimsync run is writing ({holder}); lock file {path}. This run exits without "
        f"changes{waited}; the next scheduled run will catch up (or pass --lock-timeout SECONDS to wait)."
    )
