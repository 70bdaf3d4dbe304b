"""Plans that read well at any size: --summary, --op/--account filters, one row per account,
markdown under a PR comment's limit, and `plan --out -`."""

from __future__ import annotations

import io
import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest
from e2e_support import STAFF, World, make_world, person
from rich.console import Console

from scimsync import api
from scimsync.engine.plan import (
    Collision,
    FieldChange,
    GuardViolation,
    Notice,
    Operation,
    OpKind,
    Plan,
    TargetPlan,
    sort_operations,
)
from scimsync.planview import PlanFilter, kind_of
from scimsync.render import Consoles, plan_json, plan_markdown, render_plan

TOKEN = "views-token-3c8d"
TEAMS = ("alpha", "beta", "gamma", "delta")


def op(kind: OpKind, account: str, target: str = "jira", **kw: object) -> Operation:
    return Operation(kind=kind, target=target, account=account, reason=kw.pop("reason", "why"), **kw)  # type: ignore[arg-type]


def first_provisioning(target: str, people: int) -> TargetPlan:
    """A first run: 4 team groups + the owner group to create; each person created in 3 groups."""
    groups = [f"{target}-team-{t}" for t in TEAMS]
    ops = [op(OpKind.CREATE_GROUP, g, target, group=g) for g in [*groups, "scimsync-managed"]]
    for i in range(people):
        name = f"person{i:04d}"
        changes = (
            FieldChange("username", None, name),
            FieldChange("email", None, f"{name}@acme.test"),
            FieldChange("display_name", None, f"Person Number {i}"),
        )
        ops.append(op(OpKind.CREATE_USER, name, target, changes=changes, reason="new in source"))
        for g in ("users", groups[i % len(groups)], "scimsync-managed"):
            ops.append(op(OpKind.ADD_MEMBER, name, target, group=g, reason="rule 1 (from: team-*)"))
    return TargetPlan(target, "jira", operations=sort_operations(ops))


def big_plan(people: int = 2000) -> Plan:
    """Two targets provisioned from scratch, one that could not be read, a guard, a collision."""
    jira = first_provisioning("jira", people)
    wiki = first_provisioning("wiki", people)
    wiki = TargetPlan(
        wiki.target,
        "confluence",
        operations=wiki.operations,
        collisions=(Collision("wiki", "email", "dup@acme.test", ("dana", "dan")),),
        notices=tuple(
            Notice("wiki", f"person{i:04d}", "cannot_update", "cannot update email") for i in range(7)
        ),
    )
    broken = TargetPlan("cloud", "atlassian_cloud", error="cloud: GET /Users: 401 Unauthorized\nbody: {...}")
    guard = GuardViolation(
        "privileged_group", "jira", 3, 0, "privileged_group: rule 'x' would add 'a' to admins"
    )
    return Plan(targets=(jira, wiki, broken), config_digest="d", guards=(guard,))


def capture(plan: Plan, fmt: str = "table", **kw: object) -> str:
    buf = io.StringIO()
    console = Console(file=buf, width=200, color_system=None, highlight=False)
    render_plan(plan, Consoles(out=console, err=console), fmt, **kw)  # type: ignore[arg-type]
    return buf.getvalue()


# --- --summary -----------------------------------------------------------------------------


def test_summary_of_a_2000_person_first_provisioning_fits_one_screen() -> None:
    text = capture(big_plan(), summary=True)
    lines = text.splitlines()
    assert len(lines) <= 40, text
    # Per operation kind (rows) and target (columns), with a total over the targets planned.
    assert re.search(r"create_group\s*│\s*5\s*│\s*5\s*│\s*10\s*│", text), text
    assert re.search(r"create_user\s*│\s*2000\s*│\s*2000\s*│\s*4000\s*│", text), text
    assert re.search(r"add_member\s*│\s*6000\s*│\s*6000\s*│\s*12000\s*│", text), text
    assert re.search(r"collisions\s*│\s*0\s*│\s*1\s*│\s*1\s*│", text), text
    assert re.search(r"notices\s*│\s*0\s*│\s*7\s*│\s*7\s*│", text), text
    assert "remove_member" not in text, "kinds that occur nowhere take no line"
    assert "privileged_group: rule 'x' would add 'a' to admins" in text
    assert "cloud (atlassian_cloud): not planned: cloud: GET /Users: 401 Unauthorized" in text
    assert "body: {...}" not in text, "a failed target gets one line"
    assert "person0001" not in text, "no rows per account"
    assert "Plan: 4000 to create, 0 to update, 0 to deactivate, 12000 membership changes." in lines
    assert "Groups: 10 to create." in lines


def test_summary_as_json() -> None:
    buf = capture(big_plan(), "json", summary=True)
    data = json.loads(buf)
    assert data["summary"]["create"] == 4000
    assert [g["guard"] for g in data["guards"]] == ["privileged_group"]
    jira, wiki, cloud = data["targets"]
    assert jira["operations"] == {"create_group": 5, "create_user": 2000, "add_member": 6000}
    assert (wiki["collisions"], wiki["notices"]) == (1, 7)
    assert cloud["error"].startswith("cloud: GET /Users: 401") and cloud["operations"] == {}
    assert "filter" not in data


# --- filters -------------------------------------------------------------------------------


def small_plan() -> Plan:
    ops = [
        op(OpKind.CREATE_GROUP, "jira-devs", group="jira-devs", reason="needed by rule 1"),
        op(OpKind.CREATE_GROUP, "amara", group="amara", reason="needed by rule 2"),  # a group named like her
        op(
            OpKind.CREATE_USER,
            "amara",
            changes=(FieldChange("username", None, "amara"), FieldChange("email", None, "a@x.test")),
            reason="new in source",
        ),
        op(OpKind.ADD_MEMBER, "amara", group="jira-devs", reason="rule 1"),
        op(OpKind.ADD_MEMBER, "amara", group="jira-users", reason="default_groups"),
        op(
            OpKind.UPDATE_USER,
            "Bruno",
            changes=(FieldChange("display_name", "B", "Bruno R"),),
            reason="changed",
        ),
        op(OpKind.ADD_MEMBER, "bruno", group="jira-ops", reason="rule 3"),
        op(OpKind.REMOVE_MEMBER, "bruno", group="jira-devs", reason="not given by any rule"),
        op(OpKind.REMOVE_MEMBER, "chen", group="jira-devs", reason="not given by any rule"),
        op(OpKind.DEACTIVATE_USER, "olga", reason="not in source"),
        op(OpKind.REMOVE_MEMBER, "olga", group="jira-devs", reason="not in source"),
    ]
    return Plan(
        targets=(
            TargetPlan(
                "jira",
                "jira",
                operations=sort_operations(ops),
                collisions=(Collision("jira", "email", "x@y.test", ("ann", "anna")),),
                notices=(Notice("jira", "carl", "protected", "protected user: never changed"),),
            ),
        ),
        config_digest="d",
    )


@pytest.mark.parametrize(
    ("kinds", "accounts", "expected"),
    [
        (["add"], [], [("add_member", "amara"), ("add_member", "amara"), ("add_member", "bruno")]),
        (["ADD_MEMBER"], ["b*"], [("add_member", "bruno")]),
        (["remove", "deactivate"], ["OLGA"], [("remove_member", "olga"), ("deactivate_user", "olga")]),
        ([], ["bru?o"], [("update_user", "Bruno"), ("add_member", "bruno"), ("remove_member", "bruno")]),
        (["create"], [], [("create_user", "amara")]),
        (["create_group"], ["jira-*"], [("create_group", "jira-devs")]),
        (["update", "reactivate"], ["x*", "c*"], []),
    ],
)
def test_filter_keeps_only_the_kinds_and_accounts_asked(
    kinds: list[str], accounts: list[str], expected: list[tuple[str, str]]
) -> None:
    shown = PlanFilter.of(kinds, accounts).apply(small_plan())
    assert sorted((o.kind.value, o.account) for o in shown.operations) == sorted(expected)


def test_an_unknown_kind_is_refused() -> None:
    assert kind_of(" Reactivate ") is OpKind.REACTIVATE_USER
    with pytest.raises(ValueError):
        kind_of("launch")


def test_account_filter_narrows_collisions_and_notices_too() -> None:
    tp = PlanFilter.of([], ["ann*"]).apply(small_plan()).targets[0]
    assert [c.value for c in tp.collisions] == ["x@y.test"] and tp.notices == ()
    tp = PlanFilter.of([], ["carl"]).apply(small_plan()).targets[0]
    assert tp.collisions == () and [n.account for n in tp.notices] == ["carl"]


def test_filtered_table_keeps_the_closing_line_and_says_what_is_hidden() -> None:
    whole = capture(small_plan())
    filtered = capture(small_plan(), only=PlanFilter.of(["remove"], []))
    closing = "Plan: 1 to create, 1 to update, 1 to deactivate, 6 membership changes."
    assert closing in whole.splitlines() and closing in filtered.splitlines()
    assert filtered.splitlines()[-1] == "Filter --op remove_member: 3 of 11 operations shown, 8 hidden."
    assert "amara" not in filtered and "Filter" not in whole


def test_filtered_json_lists_what_is_shown_marked_as_filtered() -> None:
    data = json.loads(plan_json(small_plan(), only=PlanFilter.of(["deactivate"], [])))
    assert data["filter"] == {
        "op": ["deactivate_user"],
        "account": [],
        "operations_shown": 1,
        "operations_hidden": 10,
    }
    ops = [o for t in data["targets"] for o in t["operations"]]
    assert [(o["op"], o["account"]) for o in ops] == [("deactivate_user", "olga")]
    assert data["summary"]["create"] == 1, "the summary is the whole plan's, as the closing line"
    assert "filter" not in json.loads(plan_json(small_plan()))


# --- one row per account ---------------------------------------------------------------------


def table_rows(text: str) -> list[list[str]]:
    """Return the cells of each row of a rich table (the width keeps every row on one line)."""
    return [[c.strip() for c in line.split("│")[1:-1]] for line in text.splitlines() if line.startswith("│")]


def test_table_has_one_row_per_account_and_one_per_group_to_create() -> None:
    rows = table_rows(capture(small_plan()))
    assert [(r[0], r[1]) for r in rows] == [
        ("+ create group", "amara"),
        ("+ create group", "jira-devs"),
        ("+ create", "amara"),
        ("~ update", "Bruno"),
        ("- groups", "chen"),
        ("- deactivate", "olga"),
    ]
    detail = {r[1]: r[2] for r in rows if not r[0].endswith("create group")}
    assert detail["amara"] == "email=a@x.test (new in source); add to jira-devs, jira-users"
    assert detail["Bruno"] == (
        "display_name: 'B' -> 'Bruno R' (changed); add to jira-ops (rule 3); "
        "remove from jira-devs (not given by any rule)"
    )
    assert detail["olga"] == "not in source; remove from jira-devs"


def test_table_of_2000_people_has_a_row_per_person_not_per_membership() -> None:
    plan = Plan(targets=(first_provisioning("jira", 2000),), config_digest="d")
    rows = table_rows(capture(plan))
    assert len(rows) == 2000 + 5
    assert rows[5] == [
        "+ create",
        "person0000",
        "email=person0000@acme.test, display_name=Person Number 0 (new in source); "
        "add to jira-team-alpha, scimsync-managed, users",
    ]


# --- markdown --------------------------------------------------------------------------------


def test_markdown_of_2000_people_stays_under_a_pr_comment_and_says_how_to_see_the_rest() -> None:
    text = plan_markdown(big_plan())
    assert len(text) < 60_000
    assert text.startswith("## scimsync plan\n\n| operation | jira (jira) | wiki (confluence) | total |\n")
    assert "| create_user | 2000 | 2000 | 4000 |" in text
    assert text.index("Plan: 4000 to create") < text.index("<details>"), "the summary comes first"
    assert "> **Blocked by a safety guard:** privileged\\_group: rule 'x' would add 'a' to admins" in text
    assert "**Not planned:** cloud (atlassian\\_cloud): cloud: GET /Users: 401 Unauthorized" in text
    # 5 groups to create + 2000 people x (create + 3 memberships)
    assert "<details><summary>jira (jira): 8005 changes</summary>" in text
    assert "<details><summary>wiki (confluence): 8005 changes, 1 collision, 7 notices</summary>" in text
    cuts = re.findall(
        r"_(\d+) of (\d+) rows left out to stay under 60000 characters; see them with "
        r"`scimsync show PLANFILE --account GLOB` or `--format json`._",
        text,
    )
    # Rows: 5 group creations + 2000 people on each; wiki adds its collision and 7 notices.
    assert [int(total) for _, total in cuts] == [2005, 2013], "both targets are cut"
    sections = text.split("<details>")[1:]
    for section, (left_out, total) in zip(sections, cuts, strict=True):
        shown = [
            line for line in section.splitlines() if line.startswith("| ") and "| operation |" not in line
        ]
        assert len(shown) + int(left_out) == int(total)
        assert len(shown) > 100, "each target keeps a share"
    wiki = sections[1].splitlines()
    assert wiki[4].startswith("| collision | dup&#64;acme.test |"), "collisions come first"


def test_markdown_of_a_small_plan_is_whole() -> None:
    text = plan_markdown(small_plan())
    assert "left out" not in text
    assert "| collision | x&#64;y.test |" in text
    assert "| create_user, add_member |" not in text
    assert (
        "| create_user | amara | email=a&#64;x.test (new in source); add to jira-devs, jira-users |" in text
    )
    assert "| add_member, remove_member | bruno |" not in text, "Bruno's update names his row"
    assert "| update_user | Bruno |" in text
    assert "| remove_member | chen | remove from jira-devs (not given by any rule) |" in text
    assert "| notice | carl | protected user: never changed |" in text


def test_markdown_escapes_names_and_details() -> None:
    evil = "eve|<img src=x onerror=alert(1)>`x`*y*"
    ops = [
        op(
            OpKind.CREATE_USER,
            evil,
            changes=(FieldChange("display_name", None, "A | B <script>alert(2)</script> @octocat"),),
            reason="new",
        )
    ]
    plan = Plan(targets=(TargetPlan("j<b>", "jira", operations=tuple(ops)),), config_digest="d")
    text = plan_markdown(plan)
    assert "<img" not in text and "<script" not in text and "<b>" not in text and "@octocat" not in text
    row = next(line for line in text.splitlines() if line.startswith("| create_user | eve"))
    cells = re.split(r"(?<!\\)\|", row)
    assert len(cells) == 5, row  # | op | account | detail |: no cell break inside a name
    assert "\\`x\\`" in cells[2] and "\\*y\\*" in cells[2]


# --- the CLI ---------------------------------------------------------------------------------


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("E2E_JIRA_TOKEN", TOKEN)
    yield from make_world(tmp_path, TOKEN, version="10.3.1")


def saved_ops(path: Path) -> list[tuple[str, str, str | None]]:
    return [(o.kind.value, o.account, o.group) for o in api.read_plan(path).operations]


def test_filters_never_change_the_saved_plan_nor_the_exit_code(world: World) -> None:
    whole, filtered = world.folder / "whole.json", world.folder / "filtered.json"
    assert world.run("plan", "--out", str(whole)).exit_code == 0
    result = world.run(
        "plan", "--out", str(filtered), "--op", "delete", "--account", "nobody", "--detailed-exitcode"
    )
    assert result.exit_code == 2, "every operation is hidden, and the plan still has changes"
    assert saved_ops(filtered) == saved_ops(whole)
    assert "jira (jira): 22 changes, none shown by the filter" in result.stdout.splitlines()
    # STAFF: 3 groups to create, 5 people, 14 memberships (independently: tests/test_e2e_jira.py).
    assert len(saved_ops(whole)) == 3 + 5 + 14
    assert (
        result.stdout.splitlines()[-1]
        == "Filter --op delete_user --account nobody: 0 of 22 operations shown, 22 hidden."
    )


def test_show_filters_a_saved_plan(world: World) -> None:
    saved = world.folder / "plan.json"
    world.run("plan", "--out", str(saved))
    shown = world.run("show", str(saved), "--account", "AMARA", "--op", "create", "--op", "add")
    assert shown.exit_code == 0, shown.output
    rows = table_rows(shown.stdout)
    assert [(r[0], r[1]) for r in rows] == [("+ create", "amara")]
    assert "add to jira-software-users, jira-team-alpha, scimsync-managed" in rows[0][2]
    data = json.loads(world.run("show", str(saved), "--op", "create_group", "--format", "json").stdout)
    assert data["filter"]["operations_shown"] == 3 and data["filter"]["operations_hidden"] == 19
    summary = world.run("show", str(saved), "--summary").stdout
    assert re.search(r"add_member\s*│\s*14\s*│", summary), summary


def test_a_bad_op_kind_is_a_usage_error(world: World) -> None:
    result = world.run("plan", "--op", "launch")
    assert result.exit_code == 1
    assert "'launch' is not one of" in result.stderr


def test_out_dash_writes_exactly_the_plan_json_to_stdout(world: World) -> None:
    saved = world.folder / "plan.json"
    world.run("plan", "--out", str(saved))
    result = world.run("plan", "--out", "-")
    assert result.exit_code == 0, result.output
    data = json.loads(result.stdout)  # nothing but the JSON
    assert data["targets"][0]["operations"] == json.loads(saved.read_text())["targets"][0]["operations"]
    assert "Plan: 5 to create, 0 to update, 0 to deactivate, 14 membership changes." in result.stderr
    assert not (world.folder / "-").exists()
    quiet = world.run("plan", "-q", "--out", "-", "--op", "create")
    assert json.loads(quiet.stdout)["summary"]["membership_changes"] == 14, "the whole plan, unfiltered"
    assert "filter" not in json.loads(quiet.stdout) and quiet.stderr == ""


def test_first_provisioning_of_2000_people_end_to_end(world: World) -> None:
    people = [person(f"p{i:04d}", "First", f"Last{i}", f"team-{TEAMS[i % 4]}") for i in range(2000)]
    world.write([*STAFF, *people])
    summary = world.run("plan", "--summary")
    assert summary.exit_code == 0, summary.output
    assert len(summary.stdout.splitlines()) <= 40, summary.stdout
    assert re.search(r"create_user\s*│\s*2005\s*│", summary.stdout), summary.stdout
    markdown = world.run("plan", "--format", "markdown").stdout
    assert len(markdown) < 60_000 and markdown.startswith("## scimsync plan\n\n| operation |")
    assert "rows left out to stay under 60000 characters" in markdown
    assert "Plan: 2005 to create, 0 to update, 0 to deactivate, " in markdown


def test_a_filtered_json_view_is_never_applied_as_a_plan(world: World) -> None:
    view = world.folder / "view.json"
    shown = world.run("plan", "--format", "json", "--op", "add_member")
    assert shown.exit_code == 0, shown.output
    view.write_text(shown.stdout)
    result = world.run("apply", str(view))
    assert result.exit_code == 1
    assert "is a filtered view of a plan (--op/--account), not a whole plan" in result.stderr
    assert world.sim.log.writes() == []
