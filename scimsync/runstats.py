"""What one run did, as it goes: its id, how long each phase took, requests sent per system.

Log lines (`-v`, `--log-format json`), the audit log and the `--report` file all name the
run by this id, so that they can be joined. The counters are process-wide, like logging:
the HTTP layer counts into ``current()`` without being handed anything, and the CLI starts
a fresh ``RunStats`` for each command it runs (``begin``).
"""

from __future__ import annotations

import logging
import os
import secrets
import threading
import time
from collections import Counter
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from scimsync.engine.plan import Operation

log = logging.getLogger("scimsync.apply")


def new_run_id() -> str:
    """Return a run id: UTC time, process id and a random part (two runs in one second differ)."""
    return time.strftime("%Y%m%dT%H%M%SZ", time.gmtime()) + f"-{os.getpid()}-{secrets.token_hex(3)}"


@dataclass
class Timer:
    """The seconds a ``timed`` block took (set when it ends)."""

    seconds: float = 0.0


@dataclass
class RunStats:
    """One run's id, start time, phase durations (seconds) and request counts per system."""

    run_id: str = field(default_factory=new_run_id)
    started: float = field(default_factory=time.time)  # wall clock, for the report
    phases: dict[str, float] = field(default_factory=dict)
    requests: Counter[str] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock, repr=False)

    def count_request(self, system: str) -> None:
        """Count one HTTP request (one attempt: a retry is another request) sent to ``system``."""
        with self._lock:
            self.requests[system] += 1

    def add_phase(self, name: str, seconds: float) -> None:
        """Add ``seconds`` to phase ``name`` (a phase run twice adds up)."""
        with self._lock:
            self.phases[name] = self.phases.get(name, 0.0) + seconds

    @contextmanager
    def timed(self, name: str) -> Iterator[Timer]:
        """Time a block as phase ``name``; the yielded Timer holds its seconds afterwards."""
        timer = Timer()
        started = time.monotonic()
        try:
            yield timer
        finally:
            timer.seconds = time.monotonic() - started
            self.add_phase(name, timer.seconds)


_current = RunStats()
_begun = False


def current() -> RunStats:
    """Return the statistics of the run in progress."""
    return _current


def begin() -> RunStats:
    """Start a new run: a new id, no phases, no requests counted (the CLI, once per command)."""
    global _current, _begun
    _current, _begun = RunStats(), True
    return _current


def audit_run_id() -> str | None:
    """Return the id the audit log should use: the begun run's, or None (each apply its own).

    A program that calls ``api.apply`` again and again without ``begin`` keeps one audit
    run per apply, so that `scimsync revert --run` never undoes two of them at once.
    """
    return _current.run_id if _begun else None


class _Recorder(Protocol):
    def record(self, op: Operation, result: str, message: str = "") -> None: ...


@dataclass(frozen=True)
class LoggedRecorder:
    """A recorder (see ``engine.apply.Recorder``) that logs each outcome, then passes it on.

    One INFO line per applied operation (`-v`): target, kind, account, status, and why.
    """

    inner: _Recorder | None = None

    def record(self, op: Operation, result: str, message: str = "") -> None:
        """Log one outcome, then record it in the audit log, if there is one."""
        what = f"{op.account} in {op.group}" if op.group and op.group != op.account else op.account
        log.info(
            "apply %s: %s %s: %s%s",
            op.target,
            op.kind.value,
            what,
            result,
            f": {message}" if message else "",
            extra={
                "fields": {
                    "target": op.target,
                    "kind": op.kind.value,
                    "account": op.account,
                    "group": op.group,
                    "status": result,
                }
            },
        )
        if self.inner is not None:
            self.inner.record(op, result, message)
