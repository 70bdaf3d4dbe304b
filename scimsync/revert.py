"""Undo one run from the audit log (SPEC §2 ``revert``): a plan, shown and applied like any.

What a run did is read from its audit records (only operations whose result was ``done``
and that really wrote: a saved plan's operation found "already in the wanted state" changed
nothing). A deactivation is undone by a reactivation, a membership removed is added back, a
membership added is removed. A deletion cannot be undone, and creations, updates and
reactivations are not: the plan's notices say so. The owner group a run added stays: without
it nobody would manage the account any more (SPEC §5).

The undo is checked against the targets' current state when it is built, as ``apply`` re-checks
a saved plan (and ``apply`` checks it again just before each write): an account gone, replaced
or renamed since, no longer owned, or protected is not planned but listed as stale; what is
undone already is left out. The rename check happens here, because the engine's re-check
follows an account by its stable id. Also left out, and listed: an account a later run
changed (undoing an older run must not undo a newer one), a membership of a group scimsync no
longer manages (SPEC §5), and a membership put back in a privileged group (a revert never gives
privileges back: the next plan does, if a rule marked ``privileged: true`` gives them).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator, Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from scimsync.audit import verify
from scimsync.config import Config, config_digest
from scimsync.engine.effects import Ownership, check
from scimsync.engine.plan import (
    FieldChange,
    Notice,
    Operation,
    OpKind,
    Plan,
    TargetPlan,
    sort_operations,
)
from scimsync.errors import ConnectorError, ScimsyncError
from scimsync.mapping import TargetMapper
from scimsync.models import Account, glob_match, key
from scimsync.state import load_state
from scimsync.targets import build_target
from scimsync.targets.base import Progress, Target, no_progress

# What the engine records for a saved plan's operation whose target was already in the wanted
# state (engine/apply.py): done without a write, so there is nothing to undo.
NOT_WRITTEN = "already in the wanted state"

RUNS_LISTED = 5


class RevertError(ScimsyncError):
    """The audit log cannot be used to revert (missing, changed, no such run)."""


@dataclass(frozen=True)
class Record:
    """One audit line: what revert reads of it."""

    line: int
    run: str
    time: str
    target: str
    op: OpKind
    account: str
    account_id: str | None
    group: str | None
    changes: tuple[FieldChange, ...]
    result: str
    message: str
    url: str | None  # the target's URL, in records written since revert exists
    reason: str = ""  # why the plan made it ("revert of run ID" for a revert's own writes)

    @property
    def wrote(self) -> bool:
        """Tell whether this operation changed the target."""
        return self.result == "done" and self.message != NOT_WRITTEN


@dataclass(frozen=True)
class Run:
    """The records of one run, in the order they were written."""

    id: str
    records: tuple[Record, ...]

    @property
    def time(self) -> str:
        """Return when the run wrote its first record."""
        return self.records[0].time

    def describe(self) -> str:
        """Describe the run in a few words: id, time, operations."""
        done = sum(1 for r in self.records if r.result == "done")
        count = len(self.records)
        return f"{self.id} ({self.time}, {count} operation{'' if count == 1 else 's'}, {done} done)"


# --- reading the log ---------------------------------------------------------------------


def read_runs(path: Path) -> list[Run]:
    """Read the audit log's runs in the order they started; refuse a log whose chain is broken."""
    if not path.is_file():
        raise RevertError(f"audit log {path}: no such file")
    checked, problem = verify(path)
    if problem is not None:
        raise RevertError(f"audit log {path}: {problem}; refusing to revert from a log that was changed")
    runs: dict[str, list[Record]] = {}
    for record in _records(path, checked):
        runs.setdefault(record.run, []).append(record)
    return [Run(run_id, tuple(records)) for run_id, records in runs.items()]


def _records(path: Path, checked: int) -> Iterator[Record]:
    """Yield the first ``checked`` records: lines appended since the chain was verified are not read."""
    with path.open("rb") as fh:
        lines = (item for item in enumerate(fh, start=1) if item[1].strip())
        for (number, raw), _ in zip(lines, range(checked), strict=False):
            try:
                entry = json.loads(raw)
            except (ValueError, RecursionError):  # rewritten since it was verified
                raise RevertError(f"audit log {path}: line {number}: changed while it was read") from None
            yield _record(number, entry, path)


def _record(number: int, entry: Mapping[str, Any], path: Path) -> Record:
    try:
        return Record(
            line=number,
            run=_text(entry, "run"),
            time=_text(entry, "time"),
            target=_text(entry, "target"),
            op=OpKind(_text(entry, "op")),
            account=_text(entry, "account"),
            account_id=_maybe(entry, "account_id"),
            group=_maybe(entry, "group"),
            changes=tuple(
                FieldChange(_text(c, "changes.field"), _maybe(c, "old"), _maybe(c, "new"))
                for c in _changes(entry)
            ),
            result=_text(entry, "result"),
            message=_maybe(entry, "message") or "",
            url=_maybe(entry, "url"),
            reason=_maybe(entry, "reason") or "",
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise RevertError(f"audit log {path}: line {number}: not an audit record ({exc})") from None


def _text(entry: Mapping[str, Any], name: str) -> str:
    value = entry[name.rsplit(".", 1)[-1]]
    if not isinstance(value, str):
        raise TypeError(f"field '{name}' is not text")
    return value


def _maybe(entry: Mapping[str, Any], name: str) -> str | None:
    value = entry.get(name)
    if value is not None and not isinstance(value, str):
        raise TypeError(f"field '{name}' is not text")
    return value


def _changes(entry: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    changes = entry.get("changes") or []
    if not isinstance(changes, list) or not all(isinstance(c, dict) for c in changes):
        raise TypeError("field 'changes' is not a list of objects")
    return changes


def pick_run(runs: Sequence[Run], run_id: str | None, path: Path) -> Run:
    """Return run ``run_id`` (None: the last one); name the last runs when there is no such run."""
    if not runs:
        raise RevertError(f"audit log {path} records no run: nothing to revert")
    if run_id is None:
        return runs[-1]
    for run in runs:
        if run.id == run_id:
            return run
    last = ", ".join(run.describe() for run in reversed(runs[-RUNS_LISTED:]))
    raise RevertError(f"audit log {path} has no run '{run_id}'; the last runs: {last}")


# --- what undoes a run (pure) ------------------------------------------------------------


@dataclass(frozen=True)
class Undo:
    """The operations that undo a run on one target, and what it will not undo."""

    operations: tuple[Operation, ...]
    notices: tuple[Notice, ...]


def undo(run: Run, target: str, *, owner_group: str) -> Undo:
    """Return the operations that undo what ``run`` wrote to ``target`` (no I/O)."""
    wrote = [r for r in run.records if r.target == target and r.wrote]
    created = {key(r.account) for r in wrote if r.op is OpKind.CREATE_USER}
    deleted = {_who(r) for r in wrote if r.op is OpKind.DELETE_USER}
    names = _final_names(wrote)
    notices = [
        Notice(target, r.account, "cannot_revert", _DELETED.format(run=run.id))
        for r in wrote
        if r.op is OpKind.DELETE_USER
    ]
    ops: dict[tuple[OpKind, str, str], Operation] = {}
    kept: dict[str, None] = {}
    joined = 0  # memberships of accounts the run created: part of the creation
    for r in wrote:
        if r.op not in _INVERSE or _who(r) in deleted:
            continue  # not undone, or gone with a deletion
        account = names.get(r.account_id or "", r.account)
        if r.op is OpKind.ADD_MEMBER and r.account_id is None and key(r.account) in created:
            joined += 1
        elif r.op is OpKind.ADD_MEMBER and key(r.group) == key(owner_group):
            kept[account] = None
        else:
            kind, expected = _INVERSE[r.op]
            op = Operation(
                kind=kind,
                target=target,
                account=account,
                reason=f"revert of run {run.id}",
                account_id=r.account_id,
                group=r.group,
                expected=expected,
            )
            ops.setdefault((kind, _who(r), key(r.group)), op)
    notices += [Notice(target, a, "kept", _KEPT.format(run=run.id, group=owner_group)) for a in kept]
    others = _not_reverted(wrote, joined)
    if others:
        notices.append(Notice(target, f"run {run.id}", "not_reverted", f"{others}: not reverted"))
    return Undo(sort_operations(ops.values()), tuple(notices))


def _who(r: Record) -> str:
    """Name the account of a record: its stable id, or its username before it had one."""
    return f"id:{r.account_id}" if r.account_id else f"name:{key(r.account)}"


_INVERSE: Mapping[OpKind, tuple[OpKind, Mapping[str, bool]]] = {
    OpKind.DEACTIVATE_USER: (OpKind.REACTIVATE_USER, {"active": False}),
    OpKind.REMOVE_MEMBER: (OpKind.ADD_MEMBER, {"member": False}),
    OpKind.ADD_MEMBER: (OpKind.REMOVE_MEMBER, {"member": True}),
}
_DELETED = (
    "deleted by run {run}: a deletion cannot be undone (apply creates a new account when the person is "
    "in scope)"
)
_KEPT = "keeps the owner group '{group}' run {run} gave it: without it nobody would manage the account"


def _final_names(records: Sequence[Record]) -> dict[str, str]:
    """Return account id -> username after the run, for the accounts it renamed."""
    names = {}
    for r in records:
        change = next((c for c in r.changes if c.field == "username"), None)
        if r.op is OpKind.UPDATE_USER and r.account_id and change is not None and change.new:
            names[r.account_id] = change.new
    return names


def _not_reverted(records: Sequence[Record], memberships: int) -> str:
    """Say what the run did that revert leaves as it is: '2 creations (and their 5 memberships), 1 update'."""
    counts = [
        (sum(1 for r in records if r.op is kind), noun)
        for kind, noun in (
            (OpKind.CREATE_USER, "creation"),
            (OpKind.UPDATE_USER, "update"),
            (OpKind.REACTIVATE_USER, "reactivation"),
            (OpKind.CREATE_GROUP, "group creation"),
        )
    ]
    parts = [f"{n} {noun}{'' if n == 1 else 's'}" for n, noun in counts if n]
    if parts and memberships and counts[0][0]:
        parts[0] += f" (and their {memberships} membership{'' if memberships == 1 else 's'})"
    return ", ".join(parts)


# --- checked against the targets ---------------------------------------------------------


def settle(op: Operation, fresh: Account | None, ownership: Ownership) -> str | None:
    """Return why ``op`` is stale now, "done" when it is undone already, or None to apply it."""
    if fresh is None:
        return "the account no longer exists"
    if op.account_id is not None and fresh.id != op.account_id:
        return f"another account holds the username '{op.account}' now"
    if key(fresh.username) != key(op.account):
        return f"the account was renamed to '{fresh.username}' since"
    problem = ownership.problem(op, fresh)
    if problem is not None:
        return problem
    verdict = check(op, fresh)
    return None if verdict == "apply" else "done" if verdict == "done" else "the account changed since"


def build_revert(
    config: Config,
    audit_log: Path,
    *,
    run_id: str | None = None,
    targets: Sequence[str] = (),
    progress: Progress = no_progress,
) -> Plan:
    """Build the plan that undoes run ``run_id`` (None: the last run) of ``audit_log``. Never writes."""
    runs = read_runs(audit_log)
    run = pick_run(runs, run_id, audit_log)
    _not_a_revert(run)
    later = _touched_after(runs, run)
    touched = list(dict.fromkeys(r.target for r in run.records))
    names = [t for t in touched if not targets or t in targets]
    for name in names:
        _same_target(config, run, name)
    state, _ = load_state(config.state_file)
    plans = []
    for name in names:
        wanted = undo(run, name, owner_group=config.policy.owner_group)
        remembered = state.target(name)
        rule_groups = remembered.rule_groups if remembered.url in ("", config.targets[name].url) else {}
        managed = _managed(config, name)
        operations, notices = [], list(wanted.notices)
        for op in wanted.operations:
            why = _left_out(config, op, later, managed)
            if why is None:
                operations.append(op)
            else:
                what = f"{op.kind.value} {op.group}" if op.group else op.kind.value
                notices.append(Notice(name, op.account, "stale", f"cannot {what}: {why}"))
        tp = TargetPlan(
            target=name,
            type=config.targets[name].type,
            operations=tuple(operations),
            notices=tuple(notices),
            rule_groups=rule_groups,  # kept as they are: apply writes them back to the state file
        )
        plans.append(_checked(config, tp, run, progress))
    return Plan(
        targets=tuple(plans),
        config_digest=config_digest(config),
        created_at=datetime.now(UTC).isoformat(timespec="seconds"),
        source=f"revert of run {run.id}",
    )


def _not_a_revert(run: Run) -> None:
    """Refuse to revert a revert: it would take away only half (a reactivation has no inverse)."""
    undone = next(
        (
            r.reason.removeprefix("revert of run ")
            for r in run.records
            if r.reason.startswith("revert of run ")
        ),
        None,
    )
    if undone is not None:
        raise RevertError(
            f"run {run.id} is itself a revert of run {undone}: it is not reverted; "
            "the next plan puts back what the source says"
        )


def _touched_after(runs: Sequence[Run], run: Run) -> set[tuple[str, str]]:
    """Return (target, account slot) of every account a later run wrote to.

    A later revert of this same run is not a change to keep: what it did is undone already.
    """
    index = next(i for i, r in enumerate(runs) if r.id == run.id)
    undo = f"revert of run {run.id}"
    writes = [r for later in runs[index + 1 :] for r in later.records if r.wrote and r.reason != undo]
    return {(r.target, _who(r)) for r in writes} | {(r.target, f"name:{key(r.account)}") for r in writes}


def _managed(config: Config, name: str) -> Callable[[str], bool]:
    """Return a test of whether scimsync manages a group on target ``name`` now (SPEC §5).

    Memberships of other groups are never added or removed. The rules' constant groups, the
    default groups and the owner group are managed; a templated rule manages any group of
    the shape its template makes. A rule dropped from the config manages nothing any more.
    """
    mapper = TargetMapper(name, config)
    named = {key(g) for g in mapper.managed_groups(())}
    shapes = mapper.templated_globs()
    return lambda group: key(group) in named or any(glob_match(group, shape) for shape in shapes)


def _left_out(
    config: Config, op: Operation, later: set[tuple[str, str]], managed: Callable[[str], bool]
) -> str | None:
    """Return why an undo operation is not planned (a later run, an unmanaged or privileged group)."""
    if (op.target, _slot(op)) in later or (op.target, f"name:{key(op.account)}") in later:
        return "a later run changed this account since; revert that run first, or let the next plan decide"
    if op.group is None:
        return None
    if not managed(op.group):
        return f"scimsync no longer manages group '{op.group}' (no rule or default_groups gives it)"
    if op.kind is OpKind.ADD_MEMBER and key(op.group) in {key(g) for g in config.policy.privileged_groups}:
        return (
            f"'{op.group}' is a privileged group: a revert never gives privileges back; "
            "the next plan adds it if a privileged rule gives it"
        )
    return None


def _same_target(config: Config, run: Run, name: str) -> None:
    """Refuse a run on a target the config does not name, or names at another URL."""
    if name not in config.targets:
        raise RevertError(
            f"run {run.id} wrote to target '{name}', which is not in the config; "
            f"revert the others with --target NAME (targets: {', '.join(config.targets)})"
        )
    urls = {r.url for r in run.records if r.target == name and r.url}
    other = sorted(urls - {config.targets[name].url})
    if other:
        raise RevertError(
            f"run {run.id} wrote to target '{name}' at {other[0]}, and the config points it at "
            f"{config.targets[name].url}: refusing to revert on another instance"
        )


def _checked(config: Config, tp: TargetPlan, run: Run, progress: Progress) -> TargetPlan:
    """Read each account the undo touches; keep the operations that still apply."""
    if not tp.operations:
        return tp
    try:
        target = build_target(tp.target, config.targets[tp.target], config.http_settings())
        try:
            fresh = _read_accounts(target, tp.operations, config.http.concurrency, progress)
            ownership = Ownership.of(
                tp,
                owner_group=config.policy.owner_group,
                owner_marker=target.capabilities().owner_marker,
                protected=tuple(config.policy.protected_users),
            )
        finally:
            target.close()
    except ConnectorError as exc:
        return TargetPlan(target=tp.target, type=tp.type, error=str(exc))
    kept, notices, done = [], list(tp.notices), 0
    for op in tp.operations:
        why = settle(op, fresh[_slot(op)], ownership)
        if why is None:
            kept.append(op)
        elif why == "done":
            done += 1
        else:
            what = f"{op.kind.value} {op.group}" if op.group else op.kind.value
            notices.append(Notice(tp.target, op.account, "stale", f"cannot {what}: {why}"))
    if done:
        notices.append(
            Notice(tp.target, f"run {run.id}", "reverted", f"{done} of its changes are undone already")
        )
    return TargetPlan(
        target=tp.target,
        type=tp.type,
        operations=tuple(kept),
        notices=tuple(notices),
        rule_groups=tp.rule_groups,
    )


def _slot(op: Operation) -> str:
    return f"id:{op.account_id}" if op.account_id else f"name:{key(op.account)}"


def _read_accounts(
    target: Target, ops: Sequence[Operation], concurrency: int, progress: Progress
) -> dict[str, Account | None]:
    """Read every account the operations name, once each, in parallel."""
    wanted = {_slot(op): op for op in ops}
    done = 0

    def read(op: Operation) -> tuple[str, Account | None]:
        return _slot(op), target.get_account(op.account, account_id=op.account_id)

    found = {}
    with ThreadPoolExecutor(max_workers=max(1, concurrency)) as pool:
        for slot, account in pool.map(read, wanted.values()):
            found[slot] = account
            done += 1
            progress(f"read {target.name}", done, len(wanted))
    return found


def stale_notices(plan: Plan) -> list[Notice]:
    """Return the notices of undo operations that cannot be applied any more."""
    return [n for tp in plan.targets for n in tp.notices if n.kind == "stale"]
