"""Membership changes sent many to a request, for targets that can (``BatchMembers``, issue 7).

Within the add-members and remove-members phases (SPEC §6), every operation first passes
its own checks (a stop, the error budget, a saved plan's re-check); the ones that pass are
grouped by group and cut into chunks the target sends as one request each. The executor
(``apply``) runs a chunk that fails again one operation at a time, so one bad member
fails only its own operation.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Protocol, TypeVar

from scimsync.engine.plan import Operation, OpKind
from scimsync.errors import AuthError, ConnectorError
from scimsync.models import Account, key
from scimsync.targets.base import BatchMembers, Target

R = TypeVar("R")
R_co = TypeVar("R_co", covariant=True)

# A group with fewer operations goes one at a time: a chunk of two saves one request, and
# small runs (a joiner or two) keep each write, and each failure, their own.
MIN_CHUNK = 2
_KINDS = {frozenset({OpKind.ADD_MEMBER}): True, frozenset({OpKind.REMOVE_MEMBER}): False}


@dataclass(frozen=True)
class Ready:
    """An operation that passed its checks: its place in the phase, its slot, its account."""

    index: int
    op: Operation
    slot: str
    account: Account


@dataclass(frozen=True)
class Batch:
    """How a phase's chunks go out: at most ``size`` accounts to ``send(group, accounts)``."""

    size: int
    send: Callable[[str, Sequence[Account]], None]


def member_batch(target: Target, phase: frozenset[OpKind]) -> Batch | None:
    """Return how to send ``phase`` in chunks, or None when it goes one operation at a time."""
    if phase not in _KINDS or not isinstance(target, BatchMembers):
        return None
    add = _KINDS[phase]
    size = target.member_batch_size(add=add)
    if size < 2:
        return None
    return Batch(size, target.add_members if add else target.remove_members)


def chunks(ready: Sequence[Ready], size: int) -> list[list[Ready]]:
    """Group operations by group (names compare lower-cased, SPEC §4) and cut each into chunks.

    The chunks of one group are of near-equal size (101 with a size of 50: 34, 34, 33),
    so that no request carries a lone member; plan order is kept within a group. A group
    with fewer than ``MIN_CHUNK`` operations gives chunks of one (sent one at a time).
    """
    by_group: dict[str, list[Ready]] = {}
    for item in ready:
        by_group.setdefault(key(item.op.group), []).append(item)
    cut: list[list[Ready]] = []
    for items in by_group.values():
        if len(items) < MIN_CHUNK:
            cut += [[item] for item in items]
            continue
        count = -(-len(items) // size)
        step = -(-len(items) // count)
        cut += [items[i : i + step] for i in range(0, len(items), step)]
    return cut


class Steps(Protocol[R_co]):
    """What the executor does for one operation; ``R_co`` is its result."""

    def check(self, index: int, op: Operation) -> R_co | Ready:
        """Run the operation's checks: its result (skipped, stale, done, failed), or Ready."""
        ...

    def halted(self, op: Operation) -> R_co | None:
        """Return the result of an operation that must not start (a stop, writing stopped), or None."""
        ...

    def alone(self, item: Ready) -> R_co:
        """Send one checked operation on its own (unless halted)."""
        ...

    def done(self, item: Ready) -> R_co:
        """Record an operation its chunk carried out."""
        ...

    def refused(self, op: Operation, exc: AuthError) -> R_co:
        """Fail an operation refused for the credentials (a 401 stops the target)."""
        ...


# Sends a group's first chunk some other way (a new group created with its first members):
# the chunk's results, or None when the chunk is still to be sent as usual.
First = Callable[[list[Ready]], "list[tuple[Ready, R]] | None"]


def run_batched(
    pool: ThreadPoolExecutor,
    ops: Sequence[Operation],
    batch: Batch,
    steps: Steps[R],
    *,
    first: First[R] | None = None,
) -> list[R]:
    """Check every operation, then send the ready ones in chunks of one group; results in plan order.

    With ``first``, each group's first chunk goes to it, and the group's other chunks after it.
    """
    checked = list(pool.map(steps.check, range(len(ops)), ops))
    results: list[R | None] = [None if isinstance(c, Ready) else c for c in checked]
    ready = [c for c in checked if isinstance(c, Ready)]
    cut = chunks(ready, batch.size)
    if first is None:
        work = [[chunk] for chunk in cut]
    else:
        by_group: dict[str, list[list[Ready]]] = {}
        for chunk in cut:
            by_group.setdefault(key(chunk[0].op.group), []).append(chunk)
        work = list(by_group.values())
    for sent in pool.map(lambda group: _send_all(group, batch, steps, first), work):
        for item, result in sent:
            results[item.index] = result
    return [r for r in results if r is not None]


def _send_all(
    group: list[list[Ready]], batch: Batch, steps: Steps[R], first: First[R] | None
) -> list[tuple[Ready, R]]:
    """Send the chunks of one group in order, the first through ``first`` when given."""
    sent: list[tuple[Ready, R]] = []
    for n, chunk in enumerate(group):
        done = first(chunk) if first is not None and n == 0 else None
        sent += done if done is not None else _send(chunk, batch, steps)
    return sent


def _send(chunk: list[Ready], batch: Batch, steps: Steps[R]) -> list[tuple[Ready, R]]:
    """Send one chunk in one request; a failed chunk goes again one operation at a time."""
    if len(chunk) == 1 or steps.halted(chunk[0].op) is not None:
        # A chunk of one is the very request of one operation; a stopped run sends nothing.
        return [(item, steps.alone(item)) for item in chunk]
    try:
        batch.send(chunk[0].op.group or "", [item.account for item in chunk])
    except AuthError as exc:
        if exc.status == 401:
            return [(item, steps.refused(item.op, exc)) for item in chunk]
        return [(item, steps.alone(item)) for item in chunk]  # a 403 may concern one account
    except ConnectorError:
        # One member the service refuses fails the whole request (a PATCH is atomic,
        # RFC 7644 §3.5.2): each operation alone shows whose it is. Adding a member again,
        # or removing one again, is success (Target), so a chunk that took effect after
        # all (a 5xx, a dropped connection) changes nothing twice.
        return [(item, steps.alone(item)) for item in chunk]
    return [(item, steps.done(item)) for item in chunk]
