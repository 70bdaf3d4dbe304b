"""The order apply runs a target's operations in: a bounded pool with no barrier between kinds.

``Flow`` takes the operations of one target and a step that runs a unit of them (one
operation, or one account's additions together); it knows nothing of targets or results.
"""

from __future__ import annotations

import heapq
import threading
from collections.abc import Callable, Sequence
from typing import TypeVar

from scimsync.engine.plan import PHASES, Operation, OpKind
from scimsync.models import key

R = TypeVar("R")


class Flow:
    """Runs a target's operations in a bounded pool, each as soon as what it waits for is done.

    SPEC §6 orders the kinds of operation: create groups, create or reactivate users, update
    users, add memberships, remove memberships, deactivate or delete users. The order holds
    where it matters, for each account and each group: an account's operations go one after
    the other in that order, and a membership waits for its group's creation. Nothing waits
    for other accounts: a new account's memberships go as soon as its own creation is done,
    not after the slowest creation of the run. Among the operations that may start, the
    earlier kind (then plan order) goes first, so the run still moves through §6 as a whole.
    """

    def __init__(self, ops: Sequence[Operation], concurrency: int, *, together: bool = False) -> None:
        """``together``: an account's additions go as one unit (a target with ``AccountMembers``)."""
        self.ops = ops
        self.size = max(1, concurrency)
        rank = {kind: i for i, phase in enumerate(PHASES) for kind in phase}
        self.order = sorted(range(len(ops)), key=lambda i: (rank[ops[i].kind], i))
        self.units: list[list[int]] = []  # operation indices run by one step, in order
        self.after: list[list[int]] = []  # the units that wait for each unit
        self.waiting: list[int] = []
        last: dict[str, int] = {}  # chain -> its last unit
        creates: dict[str, int] = {}  # "group:" key -> the unit creating it
        for i in self.order:
            op = ops[i]
            if op.kind is OpKind.CREATE_GROUP:
                chain = "group:" + key(op.group or op.account)
            else:
                chain = f"id:{op.account_id}" if op.account_id else f"name:{key(op.account)}"
            previous = last.get(chain)
            if (
                together
                and previous is not None
                and op.kind is OpKind.ADD_MEMBER
                and ops[self.units[previous][-1]].kind is OpKind.ADD_MEMBER
            ):
                unit = previous
                self.units[unit].append(i)
            else:
                unit = len(self.units)
                self.units.append([i])
                self.after.append([])
                self.waiting.append(0)
                if previous is not None:
                    self._wait(unit, previous)
            if op.kind is OpKind.CREATE_GROUP:
                creates[chain] = unit
            elif op.kind is OpKind.ADD_MEMBER and "group:" + key(op.group) in creates:
                self._wait(unit, creates["group:" + key(op.group)])
            last[chain] = unit

    def _wait(self, unit: int, before: int) -> None:
        if unit not in self.after[before]:
            self.after[before].append(unit)
            self.waiting[unit] += 1

    def run(self, step: Callable[[list[Operation]], list[R]]) -> list[R]:
        """Run ``step`` on every unit; return the results in §6 order (plan order within a kind).

        ``size`` workers take the first ready unit each; the one that finishes a unit makes
        ready what waited for it. A step that raises stops new units from starting; the error
        is raised once the running ones have ended.
        """
        ready = [u for u, count in enumerate(self.waiting) if not count]  # units are made in §6 order
        heapq.heapify(ready)
        results: dict[int, R] = {}
        errors: list[BaseException] = []
        left = len(self.units)
        lock = threading.Condition(threading.Lock())

        def work() -> None:
            nonlocal left
            while True:
                with lock:
                    while not ready and left and not errors:
                        lock.wait()
                    if errors or not ready:
                        return
                    unit = heapq.heappop(ready)
                try:
                    done = step([self.ops[i] for i in self.units[unit]])
                except BaseException as exc:
                    with lock:
                        errors.append(exc)
                        lock.notify_all()
                    return
                with lock:
                    results.update(zip(self.units[unit], done, strict=True))
                    left -= 1
                    for other in self.after[unit]:
                        self.waiting[other] -= 1
                        if not self.waiting[other]:
                            heapq.heappush(ready, other)
                            lock.notify()
                    if not left:
                        lock.notify_all()

        workers = [threading.Thread(target=work, daemon=True) for _ in range(min(self.size, len(self.units)))]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        if errors:
            raise errors[0]
        return [results[i] for i in self.order if i in results]
