"""The plan file (README "Plan output"): its exact JSON form, a lossless round trip of every
field, defaults for optional keys, and refusal of every wrongly typed field by name.

Also the plan value's small helpers that the file and the closing line depend on: the summary
counts, the SPEC §6 operation order, ``Plan.target`` and ``TargetPlan.count``.
"""

from __future__ import annotations

import copy
import dataclasses
import json
from typing import Any

import pytest

from scimsync.engine.plan import (
    FORMAT_VERSION,
    Collision,
    FieldChange,
    GuardViolation,
    Notice,
    Operation,
    OpKind,
    Plan,
    TargetPlan,
    from_dict,
    sort_operations,
    summarize,
    to_dict,
)
from scimsync.errors import PlanFileError

# --- a plan that uses every field ---------------------------------------------------------

JIRA_OPS = (
    Operation(
        OpKind.CREATE_GROUP,
        "jira",
        "jira-devs",
        "needed by a rule",
        group="jira-devs",
        expected={"exists": False},
    ),
    Operation(
        OpKind.CREATE_USER,
        "jira",
        "amara",
        "new in source",
        changes=(
            FieldChange("username", None, "amara"),
            FieldChange("email", None, "amara@acme.example"),
            FieldChange("display_name", None, "Amara Kowalski"),
        ),
        expected={"exists": False},
        source_id="00u1",
    ),
    Operation(
        OpKind.REACTIVATE_USER,
        "jira",
        "bruno",
        "active again in source",
        account_id="JIRAUSER2",
        expected={"active": False},
        source_id="00u2",
    ),
    Operation(
        OpKind.UPDATE_USER,
        "jira",
        "bruno",
        "changed in source (matched by id)",
        account_id="JIRAUSER2",
        changes=(FieldChange("display_name", "B", "Bruno R"), FieldChange("email", "b@old.example", None)),
        expected={"display_name": "B", "email": "b@old.example"},
        source_id="00u2",
    ),
    Operation(
        OpKind.ADD_MEMBER,
        "jira",
        "amara",
        "in source group devs",
        group="jira-devs",
        expected={"member": False, "groups": ["jira-users"], "nested": {"n": 1, "x": None}},
    ),
    Operation(
        OpKind.REMOVE_MEMBER,
        "jira",
        "olga",
        "not in source group devs",
        account_id="JIRAUSER3",
        group="jira-devs",
        expected={"member": True},
    ),
    Operation(
        OpKind.DEACTIVATE_USER,
        "jira",
        "olga",
        "left the source",
        account_id="JIRAUSER3",
        expected={"active": True},
        source_id="00u3",
    ),
    Operation(
        OpKind.DELETE_USER,
        "jira",
        "pavel",
        "left the source",
        account_id="JIRAUSER4",
        expected={"active": False},
    ),
)

FULL = Plan(
    targets=(
        TargetPlan(
            target="jira",
            type="jira",
            operations=JIRA_OPS,
            collisions=(
                Collision("jira", "email", "x@acme.example", ("00u7", "00u8")),
                Collision("jira", "username", "sam", ("00u9", "00u10", "00u11")),
            ),
            notices=(
                Notice("jira", "carl", "cannot_update", "cannot update display_name"),
                Notice("jira", "admin", "protected", "protected user"),
            ),
            owned_count=38,
            error=None,
            active_owned_count=35,
            leavers=2,
            links={"00u1": "JIRAUSER1", "00u2": "JIRAUSER2"},
            unlinked=("00u5", "00u6"),
            rule_groups={"jira-{{ group.name }}": ("jira-devs", "jira-ops"), "all-staff": ()},
        ),
        TargetPlan(
            target="wiki",
            type="confluence",
            error="wiki: GET /rest/api/user: connection refused",
        ),
    ),
    config_digest="sha256:0123abcd",
    created_at="2026-11-28T14:00:00+00:00",
    source="file",
    source_users=40,
    guards=(
        GuardViolation("max_deactivations", "jira", 12, 10, "12 deactivations, limit 10"),
        GuardViolation("max_deactivation_ratio", "jira", 30, 25, "30% of owned accounts"),
    ),
    allow_deactivations=7,
)


def _assert_same(again: object, original: object, where: str) -> None:
    """Compare two dataclass values field by field, compare=False fields included."""
    assert type(again) is type(original), where
    assert dataclasses.is_dataclass(original)
    for f in dataclasses.fields(original):
        got, want = getattr(again, f.name), getattr(original, f.name)
        if f.name in ("targets", "operations", "changes", "collisions", "notices", "guards"):
            assert len(got) == len(want), f"{where}.{f.name}"
            for i, (g, w) in enumerate(zip(got, want, strict=True)):
                _assert_same(g, w, f"{where}.{f.name}[{i}]")
        else:
            assert got == want, f"{where}.{f.name}"
            assert type(got) is type(want), f"{where}.{f.name}"


def _round_trip(plan: Plan) -> Plan:
    return from_dict(json.loads(json.dumps(to_dict(plan))))


def test_round_trip_keeps_every_field() -> None:
    again = _round_trip(FULL)
    _assert_same(again, FULL, "plan")
    assert again == FULL
    # The fields dataclass equality skips, spelled out.
    jira = again.target("jira")
    assert jira.links == {"00u1": "JIRAUSER1", "00u2": "JIRAUSER2"}
    assert jira.rule_groups == {"jira-{{ group.name }}": ("jira-devs", "jira-ops"), "all-staff": ()}
    assert [op.expected for op in again.operations] == [op.expected for op in FULL.operations]
    assert again.target("wiki").links == {}
    assert again.target("wiki").rule_groups == {}
    assert again.allow_deactivations == 7
    assert {op.kind for op in again.operations} == set(OpKind)


def test_round_trip_of_the_file_form_is_stable() -> None:
    data = json.loads(json.dumps(to_dict(FULL)))
    assert to_dict(from_dict(data)) == data
    assert data["summary"] == {
        "create": 1,
        "update": 1,
        "deactivate": 2,
        "membership_changes": 2,
        "groups_to_create": 1,
    }


def test_warnings_are_not_part_of_the_plan_file() -> None:
    plan = dataclasses.replace(FULL, warnings=("state file unreadable",))
    data = to_dict(plan)
    assert "warnings" not in data
    assert from_dict(data).warnings == ()


# --- the documented JSON form -------------------------------------------------------------

SMALL = Plan(
    targets=(
        TargetPlan(
            target="jira",
            type="jira",
            operations=(
                Operation(
                    OpKind.UPDATE_USER,
                    "jira",
                    "amara.kowalski",
                    "changed in source (matched by username)",
                    account_id="JIRAUSER10412",
                    changes=(FieldChange("display_name", "Amara Oldname", "Amara Kowalski"),),
                    expected={"display_name": "Amara Oldname"},
                    source_id="00u10000",
                ),
                Operation(
                    OpKind.CREATE_GROUP,
                    "jira",
                    "jira-team-alpha",
                    "needed by a rule",
                    group="jira-team-alpha",
                ),
            ),
            collisions=(Collision("jira", "email", "x@acme.example", ("a", "b")),),
            notices=(Notice("jira", "amara.kowalski", "cannot_update", "cannot update email"),),
            owned_count=38,
            active_owned_count=35,
            leavers=1,
            links={"00u10000": "JIRAUSER10412"},
            unlinked=("00u99",),
            rule_groups={"jira-{{ group.name }}": ("jira-team-alpha",)},
        ),
    ),
    config_digest="abc123",
    created_at="2026-11-28T14:00:00+00:00",
    source="file",
    source_users=40,
    guards=(GuardViolation("max_deactivations", "jira", 12, 10, "too many"),),
    allow_deactivations=3,
)

SMALL_JSON: dict[str, Any] = {
    "format_version": 1,
    "config_digest": "abc123",
    "created_at": "2026-11-28T14:00:00+00:00",
    "source": "file",
    "source_users": 40,
    "summary": {"create": 0, "update": 1, "deactivate": 0, "membership_changes": 0, "groups_to_create": 1},
    "allow_deactivations": 3,
    "guards": [
        {"guard": "max_deactivations", "target": "jira", "count": 12, "limit": 10, "message": "too many"}
    ],
    "targets": [
        {
            "target": "jira",
            "type": "jira",
            "owned_count": 38,
            "active_owned_count": 35,
            "leavers": 1,
            "error": None,
            "operations": [
                {
                    "op": "update_user",
                    "account": "amara.kowalski",
                    "account_id": "JIRAUSER10412",
                    "group": None,
                    "changes": [{"field": "display_name", "old": "Amara Oldname", "new": "Amara Kowalski"}],
                    "reason": "changed in source (matched by username)",
                    "expected": {"display_name": "Amara Oldname"},
                    "source_id": "00u10000",
                },
                {
                    "op": "create_group",
                    "account": "jira-team-alpha",
                    "account_id": None,
                    "group": "jira-team-alpha",
                    "changes": [],
                    "reason": "needed by a rule",
                    "expected": {},
                    "source_id": None,
                },
            ],
            "collisions": [{"field": "email", "value": "x@acme.example", "source_users": ["a", "b"]}],
            "notices": [
                {"account": "amara.kowalski", "kind": "cannot_update", "message": "cannot update email"}
            ],
            "links": {"00u10000": "JIRAUSER10412"},
            "unlinked": ["00u99"],
            "rule_groups": {"jira-{{ group.name }}": ["jira-team-alpha"]},
        }
    ],
}


def test_to_dict_is_the_documented_form() -> None:
    data = to_dict(SMALL)
    assert data == SMALL_JSON
    assert json.loads(json.dumps(data)) == SMALL_JSON
    assert FORMAT_VERSION == 1


def test_documented_form_reads_back() -> None:
    assert to_dict(from_dict(SMALL_JSON)) == SMALL_JSON
    _assert_same(from_dict(SMALL_JSON), SMALL, "plan")


def test_a_plan_without_limit_says_null() -> None:
    data = to_dict(dataclasses.replace(SMALL, allow_deactivations=None))
    assert data["allow_deactivations"] is None
    assert from_dict(data).allow_deactivations is None


# --- optional keys ------------------------------------------------------------------------


def test_optional_keys_default() -> None:
    minimal = {
        "format_version": FORMAT_VERSION,
        "config_digest": "d",
        "targets": [
            {"target": "jira", "type": "jira", "operations": [{"op": "create_user", "account": "amara"}]}
        ],
    }
    plan = from_dict(minimal)
    assert (plan.config_digest, plan.created_at, plan.source, plan.source_users) == ("d", "", "", 0)
    assert plan.guards == ()
    assert plan.allow_deactivations is None
    assert plan.warnings == ()
    assert plan.format_version == FORMAT_VERSION
    (t,) = plan.targets
    assert (t.target, t.type, t.owned_count, t.active_owned_count, t.leavers, t.error) == (
        "jira",
        "jira",
        0,
        0,
        0,
        None,
    )
    assert t.collisions == ()
    assert t.notices == ()
    assert t.unlinked == ()
    assert t.links == {}
    assert t.rule_groups == {}
    (op,) = t.operations
    assert (op.kind, op.target, op.account, op.account_id, op.group, op.source_id) == (
        OpKind.CREATE_USER,
        "jira",
        "amara",
        None,
        None,
        None,
    )
    assert op.changes == ()
    assert op.reason == ""
    assert op.expected == {}


def test_null_links_and_rule_groups_read_as_empty() -> None:
    data = copy.deepcopy(SMALL_JSON)
    data["targets"][0]["links"] = None
    data["targets"][0]["rule_groups"] = None
    t = from_dict(data).targets[0]
    assert t.links == {}
    assert t.rule_groups == {}


def test_change_values_may_be_null() -> None:
    data = copy.deepcopy(SMALL_JSON)
    data["targets"][0]["operations"][0]["changes"] = [{"field": "email", "old": None, "new": None}]
    assert from_dict(data).operations[0].changes == (FieldChange("email", None, None),)


# --- wrong types are refused, naming the field --------------------------------------------

PREFIX = "not a scimsync plan file: "
T0 = ("targets", 0)
OP0 = (*T0, "operations", 0)


def _text(what: str, got: str) -> str:
    return f"{PREFIX}field '{what}' must be text, not {got}"


def _number(what: str, got: str) -> str:
    return f"{PREFIX}field '{what}' must be a whole number, not {got}"


def _a_list(what: str, got: str) -> str:
    return f"{PREFIX}field '{what}' must be a list, not {got}"


def _an_object(what: str, got: str) -> str:
    return f"{PREFIX}field '{what}' must be an object, not {got}"


WRONG_TYPES: list[tuple[tuple[str | int, ...], object, str]] = [
    # plan
    (("config_digest",), 5, _text("config_digest", "int")),
    (("created_at",), None, _text("created_at", "NoneType")),
    (("source",), 1, _text("source", "int")),
    (("source_users",), "40", _number("source_users", "str")),
    (("source_users",), True, _number("source_users", "bool")),
    (("allow_deactivations",), "7", _number("allow_deactivations", "str")),
    (("allow_deactivations",), True, _number("allow_deactivations", "bool")),
    (("allow_deactivations",), 1.5, _number("allow_deactivations", "float")),
    (("guards",), {}, _a_list("guards", "dict")),
    (("guards", 0), "x", _an_object("guards[]", "str")),
    (("guards", 0, "guard"), 1, _text("guard", "int")),
    (("guards", 0, "target"), 1, _text("guard target", "int")),
    (("guards", 0, "count"), "12", _number("guard count", "str")),
    (("guards", 0, "limit"), 10.0, _number("guard limit", "float")),
    (("guards", 0, "message"), None, _text("guard message", "NoneType")),
    (("targets",), {}, _a_list("targets", "dict")),
    (T0, "jira", _an_object("targets[]", "str")),
    # target
    ((*T0, "target"), 1, _text("target", "int")),
    ((*T0, "type"), None, _text("type", "NoneType")),
    ((*T0, "owned_count"), True, _number("owned_count", "bool")),
    ((*T0, "owned_count"), "38", _number("owned_count", "str")),
    ((*T0, "active_owned_count"), "35", _number("active_owned_count", "str")),
    ((*T0, "leavers"), 1.0, _number("leavers", "float")),
    ((*T0, "error"), 5, _text("error", "int")),
    ((*T0, "links"), ["x"], _an_object("links", "list")),
    ((*T0, "links"), {1: "JIRAUSER1"}, _text("links", "int")),
    ((*T0, "links"), {"00u1": 5}, _text("links", "int")),
    ((*T0, "unlinked"), "00u99", _a_list("unlinked", "str")),
    ((*T0, "unlinked"), [5], _text("unlinked", "int")),
    ((*T0, "rule_groups"), ["jira-a"], _an_object("rule_groups", "list")),
    ((*T0, "rule_groups"), {"tmpl": "jira-a"}, _a_list("rule_groups", "str")),
    ((*T0, "rule_groups"), {"tmpl": [1]}, _text("rule_groups", "int")),
    ((*T0, "rule_groups"), {1: ["jira-a"]}, _text("rule_groups", "int")),
    ((*T0, "operations"), {}, _a_list("operations", "dict")),
    ((*T0, "operations"), None, _a_list("operations", "NoneType")),
    (OP0, "update_user", _an_object("operations[]", "str")),
    ((*T0, "collisions"), {}, _a_list("collisions", "dict")),
    ((*T0, "collisions", 0), 1, _an_object("collisions[]", "int")),
    ((*T0, "collisions", 0, "field"), 1, _text("collision field", "int")),
    ((*T0, "collisions", 0, "value"), None, _text("collision value", "NoneType")),
    ((*T0, "collisions", 0, "source_users"), "ab", _a_list("source_users", "str")),
    ((*T0, "collisions", 0, "source_users"), ["a", 1], _text("collision source_users", "int")),
    ((*T0, "notices"), {}, _a_list("notices", "dict")),
    ((*T0, "notices", 0), "x", _an_object("notices[]", "str")),
    ((*T0, "notices", 0, "account"), 1, _text("notice account", "int")),
    ((*T0, "notices", 0, "kind"), None, _text("notice kind", "NoneType")),
    ((*T0, "notices", 0, "message"), 2, _text("notice message", "int")),
    # operation
    ((*OP0, "account"), 1, _text("account", "int")),
    ((*OP0, "account_id"), 10412, _text("account_id", "int")),
    ((*OP0, "group"), ["jira-devs"], _text("group", "list")),
    ((*OP0, "reason"), None, _text("reason", "NoneType")),
    ((*OP0, "expected"), [], _an_object("expected", "list")),
    ((*OP0, "source_id"), 1, _text("source_id", "int")),
    ((*OP0, "changes"), "display_name", _a_list("changes", "str")),
    ((*OP0, "changes", 0), "x", _an_object("changes[]", "str")),
    ((*OP0, "changes", 0, "field"), 1, _text("change field", "int")),
    ((*OP0, "changes", 0, "old"), 1, _text("change old", "int")),
    ((*OP0, "changes", 0, "new"), False, _text("change new", "bool")),
]


def _with(path: tuple[str | int, ...], value: object) -> dict[str, Any]:
    data = copy.deepcopy(SMALL_JSON)
    node: Any = data
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return data


@pytest.mark.parametrize(
    ("path", "value", "message"),
    WRONG_TYPES,
    ids=[f"{'.'.join(map(str, p))}={type(v).__name__}" for p, v, _ in WRONG_TYPES],
)
def test_wrong_type_is_refused_naming_the_field(
    path: tuple[str | int, ...], value: object, message: str
) -> None:
    with pytest.raises(PlanFileError) as caught:
        from_dict(_with(path, value))
    assert str(caught.value) == message


MISSING: list[tuple[tuple[str | int, ...], str]] = [
    (("config_digest",), "config_digest"),
    (("targets",), "targets"),
    (("guards", 0, "count"), "count"),
    ((*T0, "type"), "type"),
    ((*T0, "operations"), "operations"),
    ((*T0, "collisions", 0, "value"), "value"),
    ((*T0, "notices", 0, "message"), "message"),
    ((*OP0, "account"), "account"),
    ((*OP0, "changes", 0, "old"), "old"),
]


@pytest.mark.parametrize(("path", "name"), MISSING, ids=[".".join(map(str, p)) for p, _ in MISSING])
def test_missing_field_is_refused_naming_it(path: tuple[str | int, ...], name: str) -> None:
    data = _with(path, None)
    node: Any = data
    for step in path[:-1]:
        node = node[step]
    del node[path[-1]]
    with pytest.raises(PlanFileError) as caught:
        from_dict(data)
    assert str(caught.value) == f"{PREFIX}missing field '{name}'"


def test_other_format_version_is_refused() -> None:
    with pytest.raises(PlanFileError) as caught:
        from_dict({**SMALL_JSON, "format_version": 2})
    assert str(caught.value) == "plan file has format version 2; this scimsync reads version 1"


# --- summary, order, lookups --------------------------------------------------------------


def _op(kind: OpKind, account: str, target: str = "jira", group: str | None = None) -> Operation:
    return Operation(kind, target, account, "test", group=group)


def test_reactivations_count_as_updates() -> None:
    s = summarize([_op(OpKind.UPDATE_USER, "amara"), _op(OpKind.REACTIVATE_USER, "bruno")])
    assert (s.create, s.update, s.deactivate) == (0, 2, 0)


def test_deletions_count_as_deactivations() -> None:
    s = summarize([_op(OpKind.DEACTIVATE_USER, "olga"), _op(OpKind.DELETE_USER, "pavel")])
    assert (s.create, s.update, s.deactivate) == (0, 0, 2)


def test_accounts_count_once_per_target_ignoring_case() -> None:
    s = summarize(
        [
            _op(OpKind.REACTIVATE_USER, "Bruno"),
            _op(OpKind.UPDATE_USER, "bruno"),
            _op(OpKind.UPDATE_USER, "bruno", target="wiki"),
            _op(OpKind.CREATE_USER, "Amara"),
            _op(OpKind.CREATE_USER, "AMARA"),
            _op(OpKind.DEACTIVATE_USER, "olga"),
            _op(OpKind.DELETE_USER, "OLGA"),
            _op(OpKind.ADD_MEMBER, "amara", group="devs"),
            _op(OpKind.ADD_MEMBER, "amara", group="ops"),
            _op(OpKind.REMOVE_MEMBER, "olga", group="devs"),
            _op(OpKind.CREATE_GROUP, "devs", group="devs"),
        ]
    )
    # memberships and groups are counted per operation, accounts per (target, account)
    assert (s.create, s.update, s.deactivate, s.memberships, s.groups) == (1, 2, 1, 3, 1)
    assert s.line() == "Plan: 1 to create, 2 to update, 1 to deactivate, 3 membership changes."


def test_sort_key_is_phase_then_account_then_group_ignoring_case() -> None:
    assert _op(OpKind.ADD_MEMBER, "Amara", group="Jira-Devs").sort_key() == (4, "amara", "jira-devs")
    assert _op(OpKind.CREATE_USER, "Amara").sort_key() == (1, "amara", "")
    ops = [
        _op(OpKind.DEACTIVATE_USER, "aaron"),
        _op(OpKind.ADD_MEMBER, "bruno", group="a-team"),
        _op(OpKind.ADD_MEMBER, "Amara", group="zeta"),
        _op(OpKind.ADD_MEMBER, "amara", group="Beta"),
        _op(OpKind.ADD_MEMBER, "amara", group="alpha"),
        _op(OpKind.CREATE_USER, "zoe"),
    ]
    ordered = [(o.kind, o.account, o.group) for o in sort_operations(ops)]
    assert ordered == [
        (OpKind.CREATE_USER, "zoe", None),
        (OpKind.ADD_MEMBER, "amara", "alpha"),
        (OpKind.ADD_MEMBER, "amara", "Beta"),
        (OpKind.ADD_MEMBER, "Amara", "zeta"),
        (OpKind.ADD_MEMBER, "bruno", "a-team"),
        (OpKind.DEACTIVATE_USER, "aaron", None),
    ]


def test_target_lookup() -> None:
    assert FULL.target("wiki") is FULL.targets[1]
    with pytest.raises(KeyError) as caught:
        FULL.target("confluence")
    assert caught.value.args == ("confluence",)


def test_target_plan_count() -> None:
    jira = FULL.target("jira")
    assert jira.count(OpKind.CREATE_USER) == 1
    assert jira.count(OpKind.UPDATE_USER, OpKind.REACTIVATE_USER) == 2
    assert jira.count(OpKind.DEACTIVATE_USER, OpKind.DELETE_USER, OpKind.REMOVE_MEMBER) == 3
    assert jira.count() == 0
    assert FULL.target("wiki").count(*OpKind) == 0
