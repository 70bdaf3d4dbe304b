"""The plan value: ordering, summary line, and a lossless JSON round trip."""

from __future__ import annotations

import json

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


def op(kind: OpKind, account: str, **kw: object) -> Operation:
    return Operation(kind=kind, target="jira", account=account, reason="test", **kw)  # type: ignore[arg-type]


SAMPLE = Plan(
    targets=(
        TargetPlan(
            target="jira",
            type="jira",
            operations=sort_operations(
                [
                    op(OpKind.DEACTIVATE_USER, "olga", account_id="K3", expected={"active": True}),
                    op(OpKind.ADD_MEMBER, "amara", group="jira-devs", expected={"member": False}),
                    op(
                        OpKind.CREATE_USER,
                        "amara",
                        changes=(
                            FieldChange("username", None, "amara"),
                            FieldChange("email", None, "a@x.test"),
                        ),
                        expected={"exists": False},
                        source_id="00u1",
                    ),
                    op(OpKind.CREATE_GROUP, "jira-devs", group="jira-devs", expected={"exists": False}),
                    op(
                        OpKind.UPDATE_USER,
                        "bruno",
                        account_id="K2",
                        changes=(FieldChange("display_name", "B", "Bruno R"),),
                        expected={"display_name": "B"},
                    ),
                    op(OpKind.REACTIVATE_USER, "bruno", account_id="K2", expected={"active": False}),
                    op(
                        OpKind.REMOVE_MEMBER,
                        "olga",
                        account_id="K3",
                        group="jira-devs",
                        expected={"member": True},
                    ),
                ]
            ),
            collisions=(Collision("jira", "email", "x@y.test", ("a", "b")),),
            notices=(Notice("jira", "carl", "cannot_update", "cannot update display_name"),),
            owned_count=12,
        ),
        TargetPlan(target="wiki", type="jira", error="wiki: GET /rest/api/2/serverInfo: connection refused"),
    ),
    config_digest="abc",
    created_at="2026-11-28T14:00:00+00:00",
    source="file",
    source_users=40,
    guards=(GuardViolation("max_deactivations", "jira", 12, 10, "too many"),),
)


def test_operations_follow_spec_order() -> None:
    kinds = [o.kind for o in SAMPLE.target("jira").operations]
    assert kinds == [
        OpKind.CREATE_GROUP,
        OpKind.CREATE_USER,
        OpKind.REACTIVATE_USER,
        OpKind.UPDATE_USER,
        OpKind.ADD_MEMBER,
        OpKind.REMOVE_MEMBER,
        OpKind.DEACTIVATE_USER,
    ]


def test_summary_counts_accounts_not_operations() -> None:
    summary = summarize(SAMPLE.operations)
    # bruno is reactivated AND updated: one account to update.
    assert (summary.create, summary.update, summary.deactivate, summary.memberships, summary.groups) == (
        1,
        1,
        1,
        2,
        1,
    )
    assert summary.line() == "Plan: 1 to create, 1 to update, 1 to deactivate, 2 membership changes."


def test_json_round_trip_is_lossless() -> None:
    data = json.loads(json.dumps(to_dict(SAMPLE)))
    again = from_dict(data)
    assert again == SAMPLE
    assert [o.expected for o in again.operations] == [o.expected for o in SAMPLE.operations]
    assert data["summary"] == {
        "create": 1,
        "update": 1,
        "deactivate": 1,
        "membership_changes": 2,
        "groups_to_create": 1,
    }


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"format_version": 99, "targets": [], "config_digest": "x"}, "format version 99"),
        ({"format_version": FORMAT_VERSION}, "not a scimsync plan file"),
        (
            {
                "format_version": FORMAT_VERSION,
                "config_digest": "x",
                "targets": [
                    {"target": "j", "type": "jira", "operations": [{"op": "launch_missiles", "account": "a"}]}
                ],
            },
            "not a scimsync plan file",
        ),
    ],
    ids=["version", "missing-field", "unknown-op"],
)
def test_bad_plan_files_are_refused(data: dict[str, object], message: str) -> None:
    with pytest.raises(PlanFileError, match=message):
        from_dict(data)
