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
from scimsync.models import key

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
        return (_ORDER[self.kind], key(self.account), key(self.group))

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
    """The plan for one target. ``error`` is set when the target could not be read.

    ``leavers`` counts the accounts deprovisioned (deactivated, deleted, or with
    ``deprovision: none`` removed from their managed groups), as the max_deactivations
    guard counts them; ``links`` maps source ids to the accounts matched to them,
    ``unlinked`` the source ids whose remembered link no longer holds, and
    ``rule_groups`` the groups templated rules produce: apply merges them into the state
    file (SPEC §5).
    """

    target: str
    type: str
    operations: tuple[Operation, ...] = ()
    collisions: tuple[Collision, ...] = ()
    notices: tuple[Notice, ...] = ()
    owned_count: int = 0
    error: str | None = None
    active_owned_count: int = 0
    leavers: int = 0
    links: Mapping[str, str] = field(default_factory=dict, compare=False, hash=False)
    unlinked: tuple[str, ...] = ()  # source ids whose remembered link is dropped
    rule_groups: Mapping[str, tuple[str, ...]] = field(default_factory=dict, compare=False, hash=False)

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
    warnings: tuple[str, ...] = ()  # said on stderr; not part of the plan file
    allow_deactivations: int | None = None  # the --allow-deactivations it was made with

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
        return len({(op.target, key(op.account)) for op in ops if op.kind in kinds})

    return Summary(
        create=accounts(OpKind.CREATE_USER),
        update=accounts(OpKind.UPDATE_USER, OpKind.REACTIVATE_USER),
        deactivate=accounts(OpKind.DEACTIVATE_USER, OpKind.DELETE_USER),
        memberships=sum(1 for op in ops if op.kind in (OpKind.ADD_MEMBER, OpKind.REMOVE_MEMBER)),
        groups=sum(1 for op in ops if op.kind is OpKind.CREATE_GROUP),
    )


def describe(op: Operation) -> str:
    """Describe an operation in a few words ("add to jira-users", "update display_name")."""
    if op.kind is OpKind.UPDATE_USER:
        return "update " + ", ".join(c.field for c in op.changes)
    if op.kind is OpKind.ADD_MEMBER:
        return f"add to {op.group}"
    if op.kind is OpKind.REMOVE_MEMBER:
        return f"remove from {op.group}"
    if op.kind is OpKind.CREATE_GROUP:
        return f"create group {op.group or op.account}"
    return op.kind.value.removesuffix("_user")


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
        "allow_deactivations": plan.allow_deactivations,
        "guards": [vars(g) for g in plan.guards],
        "targets": [_target_to_dict(t) for t in plan.targets],
    }


def _target_to_dict(t: TargetPlan) -> dict[str, Any]:
    return {
        "target": t.target,
        "type": t.type,
        "owned_count": t.owned_count,
        "active_owned_count": t.active_owned_count,
        "leavers": t.leavers,
        "error": t.error,
        "operations": [_op_to_dict(op) for op in t.operations],
        "collisions": [
            {"field": c.field, "value": c.value, "source_users": list(c.source_users)} for c in t.collisions
        ],
        "notices": [{"account": n.account, "kind": n.kind, "message": n.message} for n in t.notices],
        "links": dict(t.links),
        "unlinked": list(t.unlinked),
        "rule_groups": {k: list(v) for k, v in t.rule_groups.items()},
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
    """Rebuild a plan from its JSON form; raise PlanFileError when it is not one.

    Every field is type-checked: a hand-edited or damaged plan file is refused with the
    field it got wrong, never half-applied.
    """
    try:
        version = data["format_version"]
        if version != FORMAT_VERSION:
            raise PlanFileError(
                f"plan file has format version {version}; this scimsync reads version {FORMAT_VERSION}"
            )
        targets = tuple(_target_from_dict(_obj(t, "targets[]")) for t in _list(data["targets"], "targets"))
        guards = tuple(
            GuardViolation(
                guard=_text(g["guard"], "guard"),
                target=_text(g["target"], "guard target"),
                count=_int(g["count"], "guard count"),
                limit=_int(g["limit"], "guard limit"),
                message=_text(g["message"], "guard message"),
            )
            for g in (_obj(x, "guards[]") for x in _list(data.get("guards", []), "guards"))
        )
        return Plan(
            targets=targets,
            config_digest=_text(data["config_digest"], "config_digest"),
            created_at=_text(data.get("created_at", ""), "created_at"),
            source=_text(data.get("source", ""), "source"),
            source_users=_int(data.get("source_users", 0), "source_users"),
            guards=guards,
            allow_deactivations=_maybe_int(data.get("allow_deactivations"), "allow_deactivations"),
        )
    except KeyError as exc:
        raise PlanFileError(f"not a scimsync plan file: missing field {exc}") from None
    except (AttributeError, TypeError, ValueError) as exc:
        raise PlanFileError(f"not a scimsync plan file: {exc}") from None


def _target_from_dict(t: Mapping[str, Any]) -> TargetPlan:
    name = _text(t["target"], "target")
    return TargetPlan(
        target=name,
        type=_text(t["type"], "type"),
        owned_count=_int(t.get("owned_count", 0), "owned_count"),
        active_owned_count=_int(t.get("active_owned_count", 0), "active_owned_count"),
        leavers=_int(t.get("leavers", 0), "leavers"),
        links={_text(k, "links"): _text(v, "links") for k, v in _obj(t.get("links") or {}, "links").items()},
        unlinked=tuple(_text(u, "unlinked") for u in _list(t.get("unlinked", []), "unlinked")),
        rule_groups={
            _text(k, "rule_groups"): tuple(_text(g, "rule_groups") for g in _list(v, "rule_groups"))
            for k, v in _obj(t.get("rule_groups") or {}, "rule_groups").items()
        },
        error=_maybe_text(t.get("error"), "error"),
        operations=tuple(
            _op_from_dict(name, _obj(op, "operations[]")) for op in _list(t["operations"], "operations")
        ),
        collisions=tuple(
            Collision(
                name,
                _text(c["field"], "collision field"),
                _text(c["value"], "collision value"),
                tuple(_text(u, "collision source_users") for u in _list(c["source_users"], "source_users")),
            )
            for c in (_obj(x, "collisions[]") for x in _list(t.get("collisions", []), "collisions"))
        ),
        notices=tuple(
            Notice(
                name,
                _text(n["account"], "notice account"),
                _text(n["kind"], "notice kind"),
                _text(n["message"], "notice message"),
            )
            for n in (_obj(x, "notices[]") for x in _list(t.get("notices", []), "notices"))
        ),
    )


def _op_from_dict(target: str, op: Mapping[str, Any]) -> Operation:
    return Operation(
        kind=OpKind(op["op"]),
        target=target,
        account=_text(op["account"], "account"),
        account_id=_maybe_text(op.get("account_id"), "account_id"),
        group=_maybe_text(op.get("group"), "group"),
        changes=tuple(
            FieldChange(
                _text(c["field"], "change field"),
                _maybe_text(c["old"], "change old"),
                _maybe_text(c["new"], "change new"),
            )
            for c in (_obj(x, "changes[]") for x in _list(op.get("changes", []), "changes"))
        ),
        reason=_text(op.get("reason", ""), "reason"),
        expected=dict(_obj(op.get("expected", {}), "expected")),
        source_id=_maybe_text(op.get("source_id"), "source_id"),
    )


def _text(value: Any, what: str) -> str:
    if not isinstance(value, str):
        raise TypeError(f"field '{what}' must be text, not {type(value).__name__}")
    return value


def _maybe_text(value: Any, what: str) -> str | None:
    return None if value is None else _text(value, what)


def _int(value: Any, what: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"field '{what}' must be a whole number, not {type(value).__name__}")
    return value


def _maybe_int(value: Any, what: str) -> int | None:
    return None if value is None else _int(value, what)


def _list(value: Any, what: str) -> list[Any]:
    if not isinstance(value, list):
        raise TypeError(f"field '{what}' must be a list, not {type(value).__name__}")
    return value


def _obj(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, dict):
        raise TypeError(f"field '{what}' must be an object, not {type(value).__name__}")
    return value
