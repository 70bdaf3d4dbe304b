"""Carry out a plan: SPEC §6 phases in order, operations of a phase in parallel.

A failed operation never stops the others (it is reported at the end); a target
that fails (bad credentials, error budget spent) never stops the other targets.
Dry-run is ``plan``: there is no pretend mode here.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import defaultdict
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor, wait
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Protocol, TypeVar

from scimsync.engine.batches import Ready, member_batch, run_batched
from scimsync.engine.effects import Ownership, apply_effect, check, made_by
from scimsync.engine.flow import Flow
from scimsync.engine.plan import PHASES, Operation, OpKind, Plan, TargetPlan
from scimsync.errors import AuthError, ConnectorError, NotManageableError, outcome_unknown
from scimsync.models import Account, key
from scimsync.targets.base import (
    AccountMembers,
    GroupWithMembers,
    JoinsOnCreate,
    Progress,
    Target,
    no_progress,
)

T = TypeVar("T")

# SPEC §8: how many times a write whose outcome is unknown is read back and, when it did not
# take effect, sent again.
UNKNOWN_OUTCOME_REPEATS = 2
# The audit message of a membership the account's creation gave, with no write of its own.
GIVEN = "given by the account's creation"


class Status(StrEnum):
    """What became of one operation."""

    DONE = "done"
    FAILED = "failed"
    STALE = "stale"
    SKIPPED = "skipped"


@dataclass(frozen=True)
class OpResult:
    """One operation and its outcome."""

    op: Operation
    status: Status
    message: str = ""


@dataclass(frozen=True)
class TargetResult:
    """The outcome on one target; ``stopped`` says why writing stopped early, if it did."""

    target: str
    results: tuple[OpResult, ...] = ()
    stopped: str | None = None
    created: Mapping[str, str] = field(default_factory=dict)  # source id -> new account's id

    def count(self, status: Status) -> int:
        """Count results with ``status``."""
        return sum(1 for r in self.results if r.status is status)

    @property
    def ok(self) -> bool:
        """Tell whether every operation is done (or deliberately skipped as not manageable)."""
        return self.stopped is None and not any(
            r.status in (Status.FAILED, Status.STALE) for r in self.results
        )


@dataclass(frozen=True)
class ApplyResult:
    """The outcome of a whole apply."""

    targets: tuple[TargetResult, ...]

    @property
    def ok(self) -> bool:
        """Tell whether every target applied cleanly."""
        return all(t.ok for t in self.targets)

    @property
    def stale(self) -> int:
        """Count stale operations over all targets."""
        return sum(t.count(Status.STALE) for t in self.targets)


class Recorder(Protocol):
    """Where each operation's outcome is written (the audit log)."""

    def record(self, op: Operation, result: str, message: str = "") -> None:
        """Record one outcome."""
        ...


def _never(failed: int, attempted: int) -> bool:
    return False


@dataclass
class ApplyOptions:
    """How to apply: parallelism, saved-plan re-checks, error budget, audit, progress, stop."""

    concurrency: int = 8
    recheck: bool = False
    failures_exceeded: Callable[[int, int], bool] = _never
    budget_text: str = ""
    recorder: Recorder | None = None
    progress: Progress = no_progress
    stop: threading.Event = field(default_factory=threading.Event)
    owner_group: str = "scimsync-managed"
    protected_users: tuple[str, ...] = ()


def apply_plan(plan: Plan, targets: Mapping[str, Target], options: ApplyOptions) -> ApplyResult:
    """Apply every target's operations; targets run side by side."""
    runnable = [tp for tp in plan.targets if tp.error is None and tp.operations and tp.target in targets]
    with ThreadPoolExecutor(max_workers=max(1, len(runnable))) as pool:
        futures = [pool.submit(_TargetRun(tp, targets[tp.target], options).run) for tp in runnable]
        # Wake up now and then: Python runs signal handlers only in the main thread, and only
        # when it runs, so a SIGTERM must not wait for the last write of a long apply.
        while wait(futures, timeout=0.1).not_done:
            pass
        return ApplyResult(tuple(f.result() for f in futures))


class _TargetRun:
    """Applies one target's operations and keeps the accounts' evolving state."""

    def __init__(self, plan: TargetPlan, target: Target, options: ApplyOptions) -> None:
        self.plan = plan
        self.target = target
        self.options = options
        self.accounts: dict[str, Account | None] = {}
        self.failed_creates: set[str] = set()
        self.locks: defaultdict[str, threading.Lock] = defaultdict(threading.Lock)
        self.guard = threading.Lock()
        self.attempted = 0
        self.failed = 0
        self.finished = 0
        self.stopped: str | None = None
        self.created: dict[str, str] = {}  # source id -> id of the account created for it
        self.made: set[str] = set()  # slots of the accounts this run created
        self._ownership: Ownership | None = None
        # The owner-group membership of an account created here goes with its creation (SPEC §5):
        # a run stopped after the creations must not leave accounts nobody owns. slot -> op.
        self.marks: dict[str, Operation] = {
            self._slot(op): op
            for op in plan.operations
            if op.kind is OpKind.ADD_MEMBER
            and op.account_id is None
            and key(op.group) == key(options.owner_group)
        }
        # The memberships each account created here is planned to get: a target that can
        # give some with the creation itself (JoinsOnCreate, Jira §1.9) saves their writes.
        self.joins: dict[str, list[Operation]] = defaultdict(list)
        for op in plan.operations:
            if op.kind is OpKind.ADD_MEMBER and op.account_id is None and op.group:
                self.joins[self._slot(op)].append(op)
        self.early: dict[Operation, OpResult] = {}  # memberships done with the creation
        self.with_members: dict[Operation, OpResult] = {}  # groups created with their first members
        self.deferred: dict[str, Operation] = {}  # group key -> its creation, made with its members

    def ownership(self) -> Ownership:
        """Return the rule that re-checks ownership (reads the target's capabilities once)."""
        if self._ownership is None:
            self._ownership = Ownership.of(
                self.plan,
                owner_group=self.options.owner_group,
                owner_marker=self.target.capabilities().owner_marker,
                protected=self.options.protected_users,
            )
        return self._ownership

    def run(self) -> TargetResult:
        """Run the operations and collect the results (in phase order, plan order within)."""
        if any(member_batch(self.target, phase) is not None for phase in PHASES):
            return self._run_phases()
        ops = self.plan.operations
        # An account's additions go together where one read-back decides them all (a saved
        # plan re-checks each operation on its own).
        together = isinstance(self.target, AccountMembers) and not self.options.recheck
        results = Flow(ops, self.options.concurrency, together=together).run(self._run_unit)
        return TargetResult(self.plan.target, tuple(results), self.stopped, dict(self.created))

    def _run_phases(self) -> TargetResult:
        """Run the phases one after the other (a target that sends memberships in chunks of a group)."""
        results: list[OpResult] = []
        deferred = self.deferred = self._deferred()
        for phase in PHASES:
            ops = [op for op in self.plan.operations if op.kind in phase and op not in deferred.values()]
            if not ops:
                continue
            batch = member_batch(self.target, phase)
            with ThreadPoolExecutor(max_workers=self.options.concurrency) as pool:
                if batch is None:
                    results.extend(pool.map(self._run_one, ops))
                elif OpKind.ADD_MEMBER in phase and deferred:
                    results.extend(run_batched(pool, ops, batch, self, first=self._create_with))
                    # A new group none of whose members could be added is created on its own.
                    left = [op for op in deferred.values() if op not in self.with_members]
                    results.extend(pool.map(self._run_one, left))
                    results.extend(self.with_members.values())
                else:
                    results.extend(run_batched(pool, ops, batch, self))
        return TargetResult(self.plan.target, tuple(results), self.stopped, dict(self.created))

    def _deferred(self) -> dict[str, Operation]:
        """Return the new groups created with their first members (``GroupWithMembers``), by name key.

        Reference §3.7: POST /Groups carries members, so a new group waits for its members'
        creations and is made with them, saving the request that would add them. A saved plan
        keeps the §6 order (its re-checks read each group before the group phase).
        """
        if self.options.recheck or not isinstance(self.target, GroupWithMembers):
            return {}
        added = {key(op.group) for op in self.plan.operations if op.kind is OpKind.ADD_MEMBER}
        return {
            key(op.group or op.account): op
            for op in self.plan.operations
            if op.kind is OpKind.CREATE_GROUP and key(op.group or op.account) in added
        }

    def _create_with(self, chunk: list[Ready]) -> list[tuple[Ready, OpResult]] | None:
        """Create a deferred group with the chunk's accounts (None: the chunk goes the usual way).

        Called with the first chunk of each group, before its other chunks. A refused create
        falls back to creating the group alone; the chunk's members are then added as usual.
        """
        create = self.deferred.get(key(chunk[0].op.group))
        if create is None or create in self.with_members:
            return None
        target = self.target
        assert isinstance(target, GroupWithMembers)
        halted = self.halted(create)
        if halted is not None:
            self.with_members[create] = halted
            return None
        name = create.group or create.account
        try:
            with self.locks[self._slot(create)]:
                shown = target.create_group_with(name, [item.account for item in chunk])
        except ConnectorError as exc:
            # SPEC §8: after an unknown outcome the group is read before anything is sent again.
            if outcome_unknown(exc) and self._exists(name):
                self.with_members[create] = self._finish(create, Status.DONE, "read back: it took")
            else:
                self.with_members[create] = self._run_one(create)
            return None
        self.with_members[create] = self._finish(create, Status.DONE, "with its first members")
        if not shown:
            return None  # created; the members the answer does not show are added as usual
        return [(item, self.done(item)) for item in chunk]

    def _exists(self, group: str) -> bool:
        try:
            return self.target.group_exists(group)
        except ConnectorError:
            return False

    def _slot(self, op: Operation) -> str:
        # Accounts that exist are tracked by their stable id (a rename changes the username).
        return f"id:{op.account_id}" if op.account_id else f"name:{key(op.account)}"

    def _run_unit(self, ops: list[Operation]) -> list[OpResult]:
        """Run one operation, or an account's additions together (``Flow``, ``AccountMembers``)."""
        results = {n: early for n, op in enumerate(ops) if (early := self.early.get(op)) is not None}
        pending = [n for n in range(len(ops)) if n not in results]
        if len(pending) == 1:
            results[pending[0]] = self._run_one(ops[pending[0]])
        elif pending:
            results.update(zip(pending, self._add_together([ops[n] for n in pending]), strict=True))
        return [results[n] for n in range(len(ops))]

    def _add_together(self, ops: list[Operation]) -> list[OpResult]:
        """Add one account to several groups with one request each and one read back (AccountMembers)."""
        slot = self._slot(ops[0])
        first = self._blocked(ops[0], slot)
        if first is not None:
            # What blocks one blocks all: a stop, a stopped target and failed creates only grow.
            rest = [self._blocked(op, slot) for op in ops[1:]]
            return [first, *(r for r in rest if r is not None)]
        target = self.target
        assert isinstance(target, AccountMembers)
        with self.locks[slot]:
            account = self._current(ops[0], slot)
            errors: list[ConnectorError | None]
            try:
                if account is None:
                    raise self._missing(ops[0])
                errors = target.add_groups(account, [op.group or "" for op in ops])
            except ConnectorError as exc:
                errors = [exc] * len(ops)
            results = []
            for op, error in zip(ops, errors, strict=True):
                if error is None:
                    account = apply_effect(op, account)
                    results.append(self._finish(op, Status.DONE))
                else:
                    results.append(self._failed(op, error))
            self.accounts[slot] = account
        return results

    def _run_one(self, op: Operation) -> OpResult:
        early = self.early.get(op)
        return early if early is not None else self._locked(op, self._attempt)

    def _locked(self, op: Operation, step: Callable[[Operation, str], T]) -> T | OpResult:
        """Run ``step`` under the account's lock unless the operation must not start."""
        slot = self._slot(op)
        blocked = self._blocked(op, slot)
        if blocked is not None:
            return blocked
        with self.locks[slot]:
            return self._guarded(op, slot, lambda: step(op, slot))

    def _blocked(self, op: Operation, slot: str) -> OpResult | None:
        """Return the result of an operation that must not start, or None.

        A stop, writing to the target stopped, or its account's creation failed in this run.
        """
        halted = self.halted(op)
        if halted is not None:
            return halted
        if slot in self.failed_creates:
            return self._finish(
                op, Status.SKIPPED, "the account was not created in this run", attempted=False
            )
        return None

    def halted(self, op: Operation) -> OpResult | None:
        """Return the result of an operation that must not start: a stop, or writing stopped."""
        if self.options.stop.is_set():
            return OpResult(op, Status.SKIPPED, "interrupted before it started")
        if self.stopped:
            return OpResult(op, Status.SKIPPED, self.stopped)
        return None

    def _guarded(self, op: Operation, slot: str, step: Callable[[], T]) -> T | OpResult:
        """Run ``step``; a connector error becomes the operation's result."""
        try:
            return step()
        except ConnectorError as exc:
            if op.kind is OpKind.CREATE_USER and not isinstance(exc, AuthError):
                self.failed_creates.add(slot)
            return self._failed(op, exc)

    def _failed(self, op: Operation, exc: ConnectorError) -> OpResult:
        """Return the result of an operation its connector error ended."""
        if isinstance(exc, NotManageableError):
            return self._finish(op, Status.SKIPPED, f"not manageable: {exc.cause}", attempted=False)
        if isinstance(exc, AuthError):
            return self.refused(op, exc)
        return self._finish(op, Status.FAILED, str(exc))

    def refused(self, op: Operation, exc: AuthError) -> OpResult:
        """Fail an operation refused for the credentials."""
        # 401: the credentials are gone for every write. A 403 may concern this
        # one account only, so it is an ordinary failure (and counts in the budget).
        if exc.status == 401:
            self.stopped = f"stopped writing to {self.plan.target}: {exc}"
        return self._finish(op, Status.FAILED, str(exc))

    def _attempt(self, op: Operation, slot: str) -> OpResult:
        account = self._current(op, slot)
        verdict = self._recheck(op, slot, account) if self.options.recheck else None
        return verdict if verdict is not None else self._do(op, slot, account)

    def _recheck(self, op: Operation, slot: str, account: Account | None) -> OpResult | None:
        """Return why a saved plan's operation is not applied (stale, or done already), or None."""
        group_exists = (
            self.target.group_exists(op.group or op.account) if op.kind is OpKind.CREATE_GROUP else None
        )
        problem = None if slot in self.made else self.ownership().problem(op, account)
        if problem is not None:
            # SPEC §6: a saved plan re-checks that the account is still ours to touch.
            return self._finish(op, Status.STALE, f"the target changed since: {problem}", attempted=False)
        verdict = check(op, account, group_exists=group_exists)
        if verdict == "stale":
            if op.kind is OpKind.CREATE_USER:
                # Someone else's account holds the name now: its memberships are not ours.
                self.failed_creates.add(slot)
            return self._finish(
                op, Status.STALE, "the target changed since the plan was made", attempted=False
            )
        if verdict == "done":
            return self._finish(op, Status.DONE, "already in the wanted state", attempted=False)
        return None

    def _do(self, op: Operation, slot: str, account: Account | None) -> OpResult:
        """Send the operation's write and keep its effect (the caller holds the slot's lock)."""
        created = self._write_settled(op, account)
        if created is not None:
            self.made.add(slot)  # created by this run: ours, before the owner marker is added
            if op.source_id:
                with self.guard:
                    self.created[op.source_id] = created.id
        self.accounts[slot] = created if created is not None else apply_effect(op, account)
        result = self._finish(op, Status.DONE)
        if created is None:
            return result
        joined = {key(g) for g in created.groups}
        for member in self.joins.get(slot, ()):
            if key(member.group) in joined:  # the create gave it (JoinsOnCreate), or the read-back shows it
                self.early[member] = self._finish(member, Status.DONE, GIVEN)
        mark = self.marks.get(slot)
        if mark is not None and mark not in self.early:
            self._mark(mark, slot, created)
        return result

    def _mark(self, op: Operation, slot: str, created: Account | None) -> None:
        """Add the owner group of an account just created, as part of its creation (SPEC §5).

        Planned as a membership, it is done here so that a run stopped before the memberships
        (a signal, the error budget) leaves no account nobody owns. A failure leaves it to its
        own turn in the memberships phase.
        """
        try:
            self._write_settled(op, created)
        except ConnectorError:
            return
        self.accounts[slot] = apply_effect(op, created)
        self.early[op] = self._finish(op, Status.DONE, "with the account's creation")

    # -- the steps of a phase sent in chunks (batches.run_batched) ------------------------

    def check(self, index: int, op: Operation) -> OpResult | Ready:
        """Run an operation's checks (stop, budget, saved-plan re-check): its result, or Ready."""
        early = self.early.get(op)
        if early is not None:
            return early
        return self._locked(op, lambda op, slot: self._ready(index, op, slot))

    def _ready(self, index: int, op: Operation, slot: str) -> OpResult | Ready:
        account = self._current(op, slot)
        verdict = self._recheck(op, slot, account) if self.options.recheck else None
        if verdict is not None:
            return verdict
        if account is None:
            raise self._missing(op)
        return Ready(index, op, slot, account)

    def alone(self, item: Ready) -> OpResult:
        """Send one checked operation on its own."""
        halted = self.halted(item.op)
        if halted is not None:
            return halted
        with self.locks[item.slot]:
            account = self.accounts.get(item.slot, item.account)
            return self._guarded(item.op, item.slot, lambda: self._do(item.op, item.slot, account))

    def done(self, item: Ready) -> OpResult:
        """Keep the effect of an operation its chunk carried out."""
        with self.locks[item.slot]:
            self.accounts[item.slot] = apply_effect(item.op, self.accounts.get(item.slot, item.account))
        return self._finish(item.op, Status.DONE)

    def _current(self, op: Operation, slot: str) -> Account | None:
        if slot in self.accounts:
            return self.accounts[slot]
        if op.kind is OpKind.CREATE_GROUP:
            return None
        if self.options.recheck:
            # By the stable id when the account existed at plan time: a rename since then
            # must not make a deactivation look done.
            fresh = self.target.get_account(op.account, account_id=op.account_id)
        elif op.kind is OpKind.CREATE_USER:
            fresh = None
        else:
            # A fresh plan was computed moments ago: the plan's own view is the state.
            fresh = Account(id=op.account_id or "", username=op.account, email=None, display_name="")
        self.accounts[slot] = fresh
        return fresh

    def _write(self, op: Operation, account: Account | None) -> Account | None:
        """Send the one write an operation needs; return the new account for create_user."""
        kind = op.kind
        if kind is OpKind.CREATE_GROUP:
            self.target.create_group(op.group or op.account)
            return None
        if kind is OpKind.CREATE_USER:
            values = {c.field: c.new or "" for c in op.changes}
            name, email = values.get("username", op.account), values.get("email", "")
            display = values.get("display_name", "")
            if isinstance(self.target, JoinsOnCreate):
                groups = [m.group or "" for m in self.joins.get(self._slot(op), ())]
                made = self.target.create_user_in(
                    name, email, display, external_id=op.source_id, groups=groups
                )
                # Never more than the plan shows: a group it does not hold is not claimed.
                planned = {key(g) for g in groups}
                return dataclasses.replace(
                    made, groups=frozenset(g for g in made.groups if key(g) in planned)
                )
            return self.target.create_user(name, email, display, external_id=op.source_id)
        if account is None:
            raise self._missing(op)
        if kind is OpKind.UPDATE_USER:
            self.target.update_user(account, {c.field: c.new or "" for c in op.changes})
        elif kind in (OpKind.REACTIVATE_USER, OpKind.DEACTIVATE_USER):
            self.target.set_active(account, kind is OpKind.REACTIVATE_USER)
        elif kind is OpKind.DELETE_USER:
            self.target.delete_user(account)
        elif kind is OpKind.ADD_MEMBER:
            self.target.add_member(account, op.group or "")
        elif kind is OpKind.REMOVE_MEMBER:
            self.target.remove_member(account, op.group or "")
        return None

    def _write_settled(self, op: Operation, account: Account | None) -> Account | None:
        """Send the write; after an unknown outcome, read back and repeat only if it did not land.

        SPEC §8: a timeout or a dropped connection after sending, a 502 or a 504 leaves the
        outcome unknown. The account (or group) is read again: done means done (a create then
        adopts the account only when it is the one this run created); otherwise the write goes
        again, at most UNKNOWN_OUTCOME_REPEATS times. Anything else keeps the original error.
        """
        for repeat in range(UNKNOWN_OUTCOME_REPEATS + 1):
            try:
                return self._write(op, account)
            except ConnectorError as exc:
                if repeat == UNKNOWN_OUTCOME_REPEATS or not outcome_unknown(exc):
                    raise
                verdict, fresh = self._read_back(op, account)
                if verdict == "done":
                    return fresh if op.kind is OpKind.CREATE_USER else None
                if verdict != "apply":
                    raise
        raise AssertionError("unreachable")  # pragma: no cover

    def _read_back(self, op: Operation, account: Account | None) -> tuple[str, Account | None]:
        """Read what a write of unknown outcome left: ("done" | "apply" | "stale", the account)."""
        try:
            if op.kind is OpKind.CREATE_GROUP:
                return check(op, None, group_exists=self.target.group_exists(op.group or op.account)), None
            if op.kind is OpKind.CREATE_USER:
                fresh = self.target.get_account(op.account)
                if fresh is not None and not made_by(op, fresh, self.target.capabilities().owner_marker):
                    return "stale", fresh  # not provably the account this run created: never adopted
                return check(op, fresh), fresh
            known = op.account_id or (account.id if account is not None and account.id else None)
            fresh = self.target.get_account(op.account, account_id=known)
        except ConnectorError:
            return "stale", None  # cannot tell: the write's own error stands
        return check(op, fresh), fresh

    def _missing(self, op: Operation) -> ConnectorError:
        return ConnectorError(self.plan.target, f"user {op.account}", "the account does not exist")

    def _finish(
        self, op: Operation, status: Status, message: str = "", *, attempted: bool = True
    ) -> OpResult:
        with self.guard:
            if attempted:
                self.attempted += 1
                self.failed += status is Status.FAILED
                if not self.stopped and self.options.failures_exceeded(self.failed, self.attempted):
                    self.stopped = (
                        f"stopped writing to {self.plan.target}: {self.failed} of {self.attempted} writes "
                        f"failed, over policy.max_write_failures ({self.options.budget_text})"
                    )
            self.finished += 1
            done = self.finished
        if self.options.recorder is not None:
            try:
                self.options.recorder.record(op, status.value, message)
            except OSError as exc:
                # No write may go unaudited: stop this target, keep the other targets going.
                self.stopped = f"stopped writing to {self.plan.target}: cannot write the audit log: {exc}"
        self.options.progress(f"apply {self.plan.target}", done, len(self.plan.operations))
        return OpResult(op, status, message)
