"""Views of a plan at any size: filters, counts, and one row per account.

Pure functions over the Plan value; ``render`` turns them into tables, markdown and JSON.
A filter changes only what is shown: the plan that is saved, applied and counted by
``--detailed-exitcode`` stays whole.
"""

from __future__ import annotations

import shlex
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from scimsync.engine.plan import Collision, Notice, Operation, OpKind, Plan, TargetPlan, to_dict
from scimsync.models import glob_match, key

# `--op create` for `--op create_user`, and so on: the words people say.
ALIASES: Mapping[str, OpKind] = {
    "create": OpKind.CREATE_USER,
    "update": OpKind.UPDATE_USER,
    "reactivate": OpKind.REACTIVATE_USER,
    "deactivate": OpKind.DEACTIVATE_USER,
    "delete": OpKind.DELETE_USER,
    "add": OpKind.ADD_MEMBER,
    "remove": OpKind.REMOVE_MEMBER,
}
KIND_CHOICES: tuple[str, ...] = (*(k.value for k in OpKind), *ALIASES)
MEMBERSHIP = frozenset({OpKind.ADD_MEMBER, OpKind.REMOVE_MEMBER})


def kind_of(name: str) -> OpKind:
    """Return the operation kind named by ``name`` (a kind value or an alias, any case)."""
    name = name.strip().lower()
    return ALIASES.get(name) or OpKind(name)


@dataclass(frozen=True)
class PlanFilter:
    """Which operations to show: some kinds (``--op``), some accounts (``--account`` globs).

    Empty means "all". Account globs match case-insensitively, as group rules do; a
    ``create_group`` operation's account is the group's name. Collisions and notices are
    not operations: only ``--account`` narrows them.
    """

    kinds: frozenset[OpKind] = frozenset()
    accounts: tuple[str, ...] = ()

    @classmethod
    def of(cls, kinds: Iterable[str] = (), accounts: Iterable[str] = ()) -> PlanFilter:
        """Build a filter from the command line's ``--op`` and ``--account`` values."""
        return cls(frozenset(kind_of(k) for k in kinds), tuple(accounts))

    @property
    def active(self) -> bool:
        """Tell whether this filter hides anything at all."""
        return bool(self.kinds or self.accounts)

    def matches(self, name: str) -> bool:
        """Tell whether an account name passes the ``--account`` globs."""
        return not self.accounts or any(glob_match(name, g) for g in self.accounts)

    def keeps(self, op: Operation) -> bool:
        """Tell whether ``op`` is shown."""
        return (not self.kinds or op.kind in self.kinds) and self.matches(op.account)

    def apply(self, plan: Plan) -> Plan:
        """Return the plan with only the operations, collisions and notices shown."""
        if not self.active:
            return plan
        return replace(plan, targets=tuple(self._target(tp) for tp in plan.targets))

    def _target(self, tp: TargetPlan) -> TargetPlan:
        return replace(
            tp,
            operations=tuple(op for op in tp.operations if self.keeps(op)),
            collisions=tuple(c for c in tp.collisions if self._keeps_collision(c)),
            notices=tuple(n for n in tp.notices if self.matches(n.account)),
        )

    def _keeps_collision(self, c: Collision) -> bool:
        return any(self.matches(name) for name in (c.value, *c.source_users))

    def describe(self) -> str:
        """Return the filter as the options that make it (``--op add_member --account 'a*'``)."""
        ops = [f"--op {k.value}" for k in OpKind if k in self.kinds]
        return " ".join([*ops, *(f"--account {shlex.quote(g)}" for g in self.accounts)])

    def to_dict(self, whole: Plan, shown: Plan) -> dict[str, Any]:
        """Return the marker a filtered JSON view carries."""
        return {
            "op": [k.value for k in OpKind if k in self.kinds],
            "account": list(self.accounts),
            "operations_shown": len(shown.operations),
            "operations_hidden": len(whole.operations) - len(shown.operations),
        }


SHOW_ALL = PlanFilter()


def filter_line(only: PlanFilter, whole: Plan, shown: Plan) -> str | None:
    """Return the line that says how many operations the filter hides, or None without one."""
    if not only.active:
        return None
    total, seen = len(whole.operations), len(shown.operations)
    return f"Filter {only.describe()}: {seen} of {total} operations shown, {total - seen} hidden."


def view_dict(plan: Plan, only: PlanFilter) -> dict[str, Any]:
    """Return the JSON form of a filtered view: the operations shown, marked ``filter``.

    The ``summary`` stays the whole plan's, as the closing line does: it is what apply does.
    """
    shown = only.apply(plan)
    return {"filter": only.to_dict(plan, shown), **to_dict(shown), "summary": to_dict(plan)["summary"]}


def summary_dict(plan: Plan, only: PlanFilter) -> dict[str, Any]:
    """Return the ``--summary`` view as a JSON value: counts per target and operation."""
    shown = only.apply(plan)
    data: dict[str, Any] = {
        "summary": to_dict(plan)["summary"],
        "guards": [vars(g) for g in plan.guards],
        "targets": [
            {
                "target": c.target,
                "type": c.type,
                "error": c.error,
                "operations": {k.value: n for k, n in c.operations.items()},
                "collisions": c.collisions,
                "notices": c.notices,
            }
            for c in count(shown)
        ],
    }
    if only.active:
        data["filter"] = only.to_dict(plan, shown)
    return data


# --- counts ------------------------------------------------------------------------------


@dataclass(frozen=True)
class TargetCounts:
    """How many operations of each kind, collisions and notices one target's plan holds."""

    target: str
    type: str
    error: str | None
    operations: Mapping[OpKind, int] = field(default_factory=dict)
    collisions: int = 0
    notices: int = 0

    @property
    def total(self) -> int:
        """Return the number of operations."""
        return sum(self.operations.values())


def count(plan: Plan) -> tuple[TargetCounts, ...]:
    """Count each target's operations per kind, its collisions and its notices."""
    return tuple(
        TargetCounts(
            tp.target,
            tp.type,
            tp.error,
            {kind: n for kind in OpKind if (n := tp.count(kind))},
            len(tp.collisions),
            len(tp.notices),
        )
        for tp in plan.targets
    )


def first_line(text: str, limit: int = 200) -> str:
    """Return the first line of an error, cut to ``limit`` characters."""
    line = (text.strip().splitlines() or [""])[0]
    return line if len(line) <= limit else line[: limit - 1] + "…"


# --- one row per account -----------------------------------------------------------------


@dataclass(frozen=True)
class Row:
    """Every operation on one account of one target (or one group creation), in plan order."""

    account: str
    ops: tuple[Operation, ...]

    @property
    def main(self) -> tuple[Operation, ...]:
        """Return the operations on the account itself (not its memberships)."""
        return tuple(op for op in self.ops if op.kind not in MEMBERSHIP)

    @property
    def kinds(self) -> tuple[OpKind, ...]:
        """Return the kinds that name the row: the account's own, else its membership kinds."""
        shown = self.main or self.ops
        return tuple(k for k in OpKind if any(op.kind is k for op in shown))


def rows(operations: Sequence[Operation]) -> list[Row]:
    """Group operations by account, in the order each account first appears.

    Group creations stay rows of their own, even when a user has the group's name.
    """
    grouped: dict[tuple[bool, str], list[Operation]] = {}
    for op in operations:
        grouped.setdefault((op.kind is OpKind.CREATE_GROUP, key(op.account)), []).append(op)
    return [Row(ops[0].account, tuple(ops)) for ops in grouped.values()]


def op_text(op: Operation) -> str:
    """Describe what one operation changes, without its reason."""
    if op.kind is OpKind.UPDATE_USER:
        return "; ".join(f"{c.field}: {c.old!r} -> {c.new!r}" for c in op.changes)
    if op.kind is OpKind.CREATE_USER:
        return ", ".join(f"{c.field}={c.new}" for c in op.changes if c.field != "username")
    if op.kind in MEMBERSHIP:
        return op.group or ""
    return ""


def op_detail(op: Operation) -> str:
    """Describe one operation and why, in one line."""
    text = op_text(op)
    return f"{text} ({op.reason})" if text and op.reason else text or op.reason


def row_detail(row: Row) -> str:
    """Describe a row in one line: the account's own changes, then its memberships.

    ``email=a@x, display_name=A (new in source); add to g1, g2; remove from g3 (why)``.
    Memberships are grouped by reason; a reason already given is not repeated, and the
    groups a new account joins need none (they are what the rules give a new person).
    """
    parts = [op_detail(op) for op in row.main]
    said = {op.reason for op in row.main}
    creating = any(op.kind is OpKind.CREATE_USER for op in row.ops)
    for kind, verb in ((OpKind.ADD_MEMBER, "add to"), (OpKind.REMOVE_MEMBER, "remove from")):
        by_reason: dict[str, list[str]] = {}  # "" gathers the groups whose reason goes unsaid
        for op in row.ops:
            if op.kind is kind:
                quiet = op.reason in said or (creating and kind is OpKind.ADD_MEMBER)
                by_reason.setdefault("" if quiet else op.reason, []).append(op.group or "")
        for reason, groups in by_reason.items():
            parts.append(f"{verb} {', '.join(groups)}" + (f" ({reason})" if reason else ""))
    return "; ".join(parts)


def collision_text(c: Collision) -> str:
    """Describe a collision in one line."""
    users = ", ".join(c.source_users)
    return f"{c.field} {c.value!r} wanted by source users {users}: neither is created or changed"


def notice_text(n: Notice) -> str:
    """Describe a notice in one line."""
    return n.message


def count_rows(counts: Sequence[TargetCounts]) -> tuple[list[TargetCounts], list[tuple[str, list[int]]]]:
    """Return the targets planned and, per operation kind (then collisions, notices), their counts.

    Rows that are zero on every target are left out.
    """
    planned = [c for c in counts if c.error is None]
    table = [(kind.value, [c.operations.get(kind, 0) for c in planned]) for kind in OpKind]
    table += [("collisions", [c.collisions for c in planned]), ("notices", [c.notices for c in planned])]
    return planned, [(name, values) for name, values in table if any(values)]


def fit(sections: Sequence[Sequence[str]], budget: int) -> list[int]:
    """Return how many rows of each section to keep so that all fit in ``budget`` characters.

    Each section gets a share of the budget in proportion to its size and keeps its rows in
    order while they fit in it: a big target never crowds a small one out.
    """
    sizes = [sum(map(len, rows)) for rows in sections]
    if sum(sizes) <= budget:
        return [len(rows) for rows in sections]
    kept = []
    for rows, size in zip(sections, sizes, strict=True):
        share, used, n = max(budget, 0) * size // sum(sizes), 0, 0
        while n < len(rows) and used + len(rows[n]) <= share:
            used += len(rows[n])
            n += 1
        kept.append(n)
    return kept
