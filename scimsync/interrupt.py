"""SIGINT and SIGTERM in every phase of a run (SPEC §2: exit 130 / 143).

While reading and planning, the first signal cancels the reads: every HTTP request not yet
sent raises ``RunInterruptedError`` (``check``), so the worker threads end within one request
and nothing is written. While applying, it sets the apply's stop flag instead: operations in
flight finish and are audited, none starts after. A second signal aborts at once, with one
line and no traceback from the thread pools.
"""

from __future__ import annotations

import os
import signal
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from types import FrameType

from scimsync.errors import RunInterruptedError

_cancel = threading.Event()  # set: reads stop; only ever set while a command's handlers are in
_received: list[int] = []
_active: list[Interrupts] = []  # the command running now (handled())


def check() -> None:
    """Raise ``RunInterruptedError`` when the reads were cancelled by a signal."""
    if _cancel.is_set():
        raise RunInterruptedError(_received[0] if _received else signal.SIGINT, phase="reading")


def wait(seconds: float) -> None:
    """Sleep ``seconds`` (a retry's backoff), waking at once when the reads are cancelled."""
    if _cancel.wait(seconds):
        check()


class Interrupts:
    """The signals one command received, and what the first one stops."""

    def __init__(self) -> None:
        self.stop = threading.Event()  # the apply's stop flag
        self.applying = False  # writes in flight finish: the signal only sets ``stop``
        self.prompting = False  # the main thread waits for an answer: the signal ends the wait

    @property
    def received(self) -> list[int]:
        """Return the signals received so far, first first."""
        return list(_received)

    def handle(self, signum: int, frame: FrameType | None) -> None:
        """The handler: first signal stops (reads at once, writes after those in flight); second aborts."""
        if _received:
            name = signal.Signals(signum).name
            os.write(
                2, f"error: {name} again: aborted at once; operations in flight may be unaudited\n".encode()
            )
            os._exit(128 + signum)
        _received.append(signum)
        self.stop.set()
        if not self.applying:
            _cancel.set()
        if self.prompting:
            raise RunInterruptedError(signum, phase="reading")

    def raise_if_received(self) -> None:
        """After the apply wound down: exit 130/143 as the first signal asks."""
        if _received:
            raise RunInterruptedError(_received[0])


def active() -> Interrupts:
    """Return the running command's interrupts (a fresh, unconnected one outside a command)."""
    return _active[-1] if _active else Interrupts()


@contextmanager
def handled() -> Iterator[Interrupts]:
    """Install the handlers for one command (main thread only); restore the old ones after."""
    interrupts = Interrupts()
    main = threading.current_thread() is threading.main_thread()
    previous = (
        {s: signal.signal(s, interrupts.handle) for s in (signal.SIGINT, signal.SIGTERM)} if main else {}
    )
    _active.append(interrupts)
    try:
        yield interrupts
    finally:
        _active.pop()
        for s, h in previous.items():
            signal.signal(s, h)
        _cancel.clear()
        _received.clear()
