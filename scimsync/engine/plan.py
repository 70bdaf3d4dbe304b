"""The plan: a value that says what apply will do, and its stable JSON form.

A plan is computed by ``diff`` (pure), checked by ``guards``, rendered by ``render``
and carried out by ``apply``. Its JSON form is documented in the README and versioned
by ``FORMAT_VERSION``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from scimsync.errors import PlanFileError

FORMAT_VERSION = 1


class OpKind(StrEnum):
    """Operation kinds, in the order SPEC §6 applies them."""

    CREATE_GROUP = "create_group"
    CREATE_USER = "create_user"
    REACTIVATE_USER = "reactivate_user"
    UPDATE_USER = "update_user"
    ADD_MEMBER = "add_member"
    REMOVE_MEMBER = "remove_member"
    DEACTIVATE_USER = "deactivate_user"
    DELETE_USER = "delete_user"


# Operations of one phase run in parallel; phases run one after the other (SPEC §6).
PHASES: tuple[frozenset[OpKind], ...] = (
    frozenset({OpKind.CREATE_GROUP}),
    frozenset({OpKind.CREATE_USER, OpKind.REACTIVATE_USER}),
    frozenset({OpKind.UPDATE_USER}),
    frozenset({OpKind.ADD_MEMBER}),
    frozenset({OpKind.REMOVE_MEMBER}),
    frozenset({OpKind.DEACTIVATE_USER, OpKind.DELETE_USER}),
)

_ORDER = {kind: i for i, kind in enumerate(OpKind)}


@dataclass(frozen=True)
class FieldChange:
    """One field of an account, old -> new (old is None on create)."""

    field: str
    old: str | None
    new: str | None


@dataclass(frozen=True)
class Operation:
    """One write on one target, with why it is planned and the state it was computed from.

    ``account`` is the target username (the group name for ``create_group``);
    ``account_id`` the target's stable id when the account exists; ``expected`` the
    state the plan saw, re-checked before a saved plan is applied.
    """

    kind: OpKind
    target: str
    account: str
    reason: str
    account_id: str | None = None
    group: str | None = None
    changes: tuple[FieldChange, ...] = ()
    expected: Mapping[str, Any] = field(default_factory=dict, compare=False, hash=False)
    source_id: str | None = None

    def sort_key(self) -> tuple[int, str, str]:
        """Order operations by SPEC §6 phase, then by account and group."""
        return (_ORDER[self.kind], self.account.casefold(), (self.group or "").casefold())

    def change(self, name: str) -> FieldChange | None:
        """Return the change of field ``name``, if this operation makes one."""
        return next((c for c in self.changes if c.field == name), None)


@dataclass(frozen=True)
class Notice:
    """Something the plan will not do, and why (cannot update on this target, protected...)."""

    target: str
    account: str
    kind: str
    message: str


@dataclass(frozen=True)
class Collision:
    """Two or more in-scope source users that map to the same username or email."""

    target: str
    field: str
    value: str
    source_users: tuple[str, ...]


@dataclass(frozen=True)
class GuardViolation:
    """A safety guard that blocks the run (exit 3)."""

    guard: str
    target: str
    count: int
    limit: int
    message: str


@dataclass(frozen=True)
class TargetPlan:
    """The plan for one target. ``error`` is set when the target could not be read."""

    target: str
    type: str
    operations: tuple[Operation, ...] = ()
    collisions: tuple[Collision, ...] = ()
    notices: tuple[Notice, ...] = ()
    owned_count: int = 0
    error: str | None = None

    def count(self, *kinds: OpKind) -> int:
        """Count the operations of the given kinds."""
        return sum(1 for op in self.operations if op.kind in kinds)


@dataclass(frozen=True)
class Plan:
    """A whole plan: every target, the guards it tripped, and the config it was made with."""

    targets: tuple[TargetPlan, ...]
    config_digest: str = ""
    created_at: str = ""
    source: str = ""
    source_users: int = 0
    guards: tuple[GuardViolation, ...] = ()
    format_version: int = FORMAT_VERSION

    @property
    def operations(self) -> tuple[Operation, ...]:
        """Return every operation of every target."""
        return tuple(op for t in self.targets for op in t.operations)

    @property
    def has_changes(self) -> bool:
        """Tell whether applying this plan would write anything."""
        return bool(self.operations)

    def target(self, name: str) -> TargetPlan:
        """Return the plan of target ``name``."""
        for t in self.targets:
            if t.target == name:
                return t
        raise KeyError(name)


@dataclass(frozen=True)
class Summary:
    """Counts for the closing line; accounts and groups are counted separately (SPEC §7)."""

    create: int
    update: int
    deactivate: int
    memberships: int
    groups: int

    def line(self) -> str:
        """Return the closing line scripts read."""
        return (
            f"Plan: {self.create} to create, {self.update} to update, "
            f"{self.deactivate} to deactivate, {self.memberships} membership changes."
        )


def summarize(operations: Iterable[Operation]) -> Summary:
    """Count accounts to create, update (incl. reactivate), deactivate (incl. delete)."""
    ops = list(operations)

    def accounts(*kinds: OpKind) -> int:
        return len({(op.target, op.account.casefold()) for op in ops if op.kind in kinds})

    return Summary(
        create=accounts(OpKind.CREATE_USER),
        update=accounts(OpKind.UPDATE_USER, OpKind.REACTIVATE_USER),
        deactivate=accounts(OpKind.DEACTIVATE_USER, OpKind.DELETE_USER),
        memberships=sum(1 for op in ops if op.kind in (OpKind.ADD_MEMBER, OpKind.REMOVE_MEMBER)),
        groups=sum(1 for op in ops if op.kind is OpKind.CREATE_GROUP),
    )


def sort_operations(operations: Iterable[Operation]) -> tuple[Operation, ...]:
    """Return operations in SPEC §6 order (stable within a phase)."""
    return tuple(sorted(operations, key=Operation.sort_key))


# --- JSON -----------------------------------------------------------------------------


def to_dict(plan: Plan) -> dict[str, Any]:
    """Return the stable JSON form of a plan (documented in the README)."""
    summary = summarize(plan.operations)
    return {
        "format_version": plan.format_version,
        "config_digest": plan.config_digest,
        "created_at": plan.created_at,
        "source": plan.source,
        "source_users": plan.source_users,
        "summary": {
            "create": summary.create,
            "update": summary.update,
            "deactivate": summary.deactivate,
            "membership_changes": summary.memberships,
            "groups_to_create": summary.groups,
        },
        "guards": [vars(g) for g in plan.guards],
        "targets": [_target_to_dict(t) for t in plan.targets],
    }


def _target_to_dict(t: TargetPlan) -> dict[str, Any]:
    return {
        "target": t.target,
        "type": t.type,
        "owned_count": t.owned_count,
        "error": t.error,
        "operations": [_op_to_dict(op) for op in t.operations],
        "collisions": [
            {"field": c.field, "value": c.value, "source_users": list(c.source_users)} for c in t.collisions
        ],
        "notices": [{"account": n.account, "kind": n.kind, "message": n.message} for n in t.notices],
    }


def _op_to_dict(op: Operation) -> dict[str, Any]:
    return {
        "op": op.kind.value,
        "account": op.account,
        "account_id": op.account_id,
        "group": op.group,
        "changes": [{"field": c.field, "old": c.old, "new": c.new} for c in op.changes],
        "reason": op.reason,
        "expected": dict(op.expected),
        "source_id": op.source_id,
    }


def from_dict(data: Mapping[str, Any]) -> Plan:
    """Rebuild a plan from its JSON form; raise PlanFileError when it is not one."""
    try:
        version = data["format_version"]
        if version != FORMAT_VERSION:
            raise PlanFileError(
                f"plan file has format version {version}; this scimsync reads version {FORMAT_VERSION}"
            )
        targets = tuple(_target_from_dict(t) for t in data["targets"])
        guards = tuple(GuardViolation(**g) for g in data.get("guards", []))
        return Plan(
            targets=targets,
            config_digest=str(data["config_digest"]),
            created_at=str(data.get("created_at", "")),
            source=str(data.get("source", "")),
            source_users=int(data.get("source_users", 0)),
            guards=guards,
        )
    except (KeyError, TypeError, ValueError) as exc:
        raise PlanFileError(f"not a scimsync plan file: missing or bad field {exc}") from None


def _target_from_dict(t: Mapping[str, Any]) -> TargetPlan:
    name = str(t["target"])
    return TargetPlan(
        target=name,
        type=str(t["type"]),
        owned_count=int(t.get("owned_count", 0)),
        error=t.get("error"),
        operations=tuple(
            Operation(
                kind=OpKind(op["op"]),
                target=name,
                account=str(op["account"]),
                account_id=op.get("account_id"),
                group=op.get("group"),
                changes=tuple(FieldChange(c["field"], c["old"], c["new"]) for c in op.get("changes", [])),
                reason=str(op.get("reason", "")),
                expected=dict(op.get("expected", {})),
                source_id=op.get("source_id"),
            )
            for op in t["operations"]
        ),
        collisions=tuple(
            Collision(name, c["field"], c["value"], tuple(c["source_users"])) for c in t.get("collisions", [])
        ),
        notices=tuple(Notice(name, n["account"], n["kind"], n["message"]) for n in t.get("notices", [])),
    )
