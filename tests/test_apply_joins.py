"""Memberships a creation gives by itself (JoinsOnCreate), and the order apply keeps (Flow).

Jira (reference §1.3, §1.9): a create granting an application role puts the new user into
the role's default groups, so when the plan wants exactly those groups the membership needs
no write of its own. The plan keeps showing it; a server that did not add it is caught by
the next plan.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
from e2e_support import World, make_world, person

import scimsync.sim.confluence_admin as sim_admin
import scimsync.sim.jira_users as sim_users
from scimsync.engine.apply import GIVEN, ApplyOptions, OpResult, Status, apply_plan
from scimsync.engine.flow import Flow
from scimsync.engine.plan import FieldChange, Operation, OpKind, Plan, TargetPlan
from scimsync.errors import ConnectorError
from scimsync.http import BasicAuth, BearerAuth, HttpClient, HttpSettings
from scimsync.models import Account
from scimsync.secrets import Secret
from scimsync.sim.atlassian_cloud import AtlassianCloudSim
from scimsync.sim.confluence import ConfluenceSim
from scimsync.sim.server import SimServer
from scimsync.targets.atlassian_cloud import AtlassianCloudTarget
from scimsync.targets.atlassian_cloud import parse_error as cloud_error
from scimsync.targets.confluence import ConfluenceTarget
from scimsync.targets.jira import JiraTarget, parse_error

TOKEN = "joins-token"


@pytest.fixture
def world(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[World]:
    monkeypatch.setenv("E2E_JIRA_TOKEN", TOKEN)
    yield from make_world(tmp_path, TOKEN, version="10.3.1")


def body(entry: Any) -> dict[str, Any]:
    found = entry.body
    return dict(json.loads(found) if isinstance(found, str | bytes) else found or {})


def posts(world: World, path: str) -> list[dict[str, Any]]:
    return [body(e) for e in world.sim.log.writes() if e.method == "POST" and e.path == path]


def test_the_role_grant_gives_the_default_group_with_the_creation(world: World) -> None:
    world.write([person("amara", "Amara", "K", "team-alpha"), person("emeka", "Emeka", "O")])
    plan = world.run("plan")
    # The plan still shows the membership the creation gives.
    assert "jira-software-users" in plan.stdout
    result = world.run("apply", "-y")
    assert result.exit_code == 0, result.output
    created = posts(world, "/rest/api/2/user")
    assert [c["applicationKeys"] for c in created] == [["jira-software"], ["jira-software"]]
    added = {
        (e.query.get("groupname"), body(e)["name"])
        for e in world.sim.log.writes()
        if e.method == "POST" and e.path == "/rest/api/2/group/user"
    }
    # No membership write for jira-software-users: the owner group and the team only.
    assert added == {
        ("scimsync-managed", "amara"),
        ("scimsync-managed", "emeka"),
        ("jira-team-alpha", "amara"),
    }
    assert {"amara", "emeka"} <= world.sim.members("jira-software-users")
    assert world.sim.members("jira-core-users") == set()  # no other role's groups
    audit = [json.loads(line) for line in (world.folder / "audit.jsonl").read_text().splitlines()]
    given = [(a["account"], a["group"]) for a in audit if a["message"] == GIVEN]
    assert sorted(given) == [("amara", "jira-software-users"), ("emeka", "jira-software-users")]
    assert all(a["result"] == "done" for a in audit)
    world.sim.log.clear()
    assert world.run("plan", "--detailed-exitcode").exit_code == 0


def test_no_role_is_granted_whose_default_groups_the_plan_does_not_show(world: World) -> None:
    # Without jira-software-users among the planned groups, the create grants nothing.
    world.write([person("amara", "Amara", "K", "team-alpha")])
    config = world.config.read_text().replace("default_groups: [jira-software-users]", "default_groups: []")
    world.config.write_text(config)
    assert world.run("apply", "-y").exit_code == 0
    assert [c["applicationKeys"] for c in posts(world, "/rest/api/2/user")] == [[]]
    assert "amara" not in world.sim.members("jira-software-users")


def test_a_server_that_did_not_add_the_default_group_gets_the_membership_written_in_the_same_run(
    world: World, monkeypatch: pytest.MonkeyPatch
) -> None:
    world.write([person("amara", "Amara", "K")])
    # A Jira that accepts the grant but puts the user in no group: its answer counts 0 groups.
    monkeypatch.setattr(sim_users, "_default_groups", lambda ctx, keys: [])
    assert world.run("apply", "-y").exit_code == 0
    assert "amara" in world.sim.members("jira-software-users")
    audit = [json.loads(line) for line in (world.folder / "audit.jsonl").read_text().splitlines()]
    claimed = [a for a in audit if a["message"] == GIVEN]
    assert claimed == [], "nothing is claimed that the answer does not count"
    assert world.run("plan", "--detailed-exitcode").exit_code == 0


@pytest.mark.parametrize(
    "groups", [None, {"items": []}, {"size": True}, {"size": 2, "items": []}, {"size": "1"}], ids=repr
)
def test_jira_claims_no_group_when_the_answer_does_not_count_exactly_those(groups: Any) -> None:
    bean = dict(BEAN) if groups is None else {**BEAN, "groups": groups}
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(f"{API}/applicationrole", json=ROLES)
        rsps.post(f"{API}/user", status=201, json=bean)
        made = jira().create_user_in("amara", "a@acme.test", "A", groups=["jira-software-users"])
        assert json.loads(rsps.calls[-1].request.body or b"{}")["applicationKeys"] == ["jira-software"]
        assert made.groups == frozenset()


ROLES = [
    {"key": "jira-software", "defaultGroups": ["jira-software-users"], "groups": ["jira-software-users"]},
    {"key": "jira-core", "defaultGroups": ["jira-core-users", "jira-extra"], "groups": ["jira-core-users"]},
    {"key": "jira-servicedesk", "defaultGroups": ["sd-users"], "defined": False},
]
API = "https://acme.test/rest/api/2"
BEAN = {"key": "JIRAUSER1", "name": "amara", "emailAddress": "a@acme.test", "displayName": "A"}


def jira() -> JiraTarget:
    client = HttpClient(
        "jira",
        "https://acme.test",
        auth=BearerAuth(Secret("pat-0123456789")),
        settings=HttpSettings(retries=0),
        error_parser=parse_error,
    )
    return JiraTarget("jira", client)


@pytest.mark.parametrize(
    ("groups", "keys", "given"),
    [
        (["JIRA-Software-Users", "team"], ["jira-software"], {"JIRA-Software-Users"}),
        (["team"], [], set()),
        # jira-core's default groups are not all planned: granting it would add jira-extra.
        (["jira-core-users", "jira-software-users"], ["jira-software"], {"jira-software-users"}),
        (["sd-users"], [], set()),  # a role without a licence is never granted
    ],
)
def test_jira_grants_only_roles_whose_default_groups_are_all_planned(
    groups: list[str], keys: list[str], given: set[str]
) -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(f"{API}/applicationrole", json=ROLES)
        # §1.2: the bean counts the new user's groups, items or not.
        rsps.post(f"{API}/user", status=201, json={**BEAN, "groups": {"size": len(given), "items": []}})
        target = jira()
        made = target.create_user_in("amara", "a@acme.test", "A", groups=groups)
        target.create_user_in("amara", "a@acme.test", "A", groups=groups)
        sent = [json.loads(c.request.body or b"{}") for c in rsps.calls if c.request.method == "POST"]
        assert [s["applicationKeys"] for s in sent] == [keys, keys]
        assert made.groups == frozenset(given)
        assert [c.request.method for c in rsps.calls].count("GET") == 1  # the roles are read once


def test_jira_with_unreadable_roles_grants_nothing() -> None:
    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        rsps.get(f"{API}/applicationrole", status=403, json={"errorMessages": ["no"], "errors": {}})
        rsps.post(f"{API}/user", status=201, json=BEAN)
        made = jira().create_user_in("amara", "a@acme.test", "A", groups=["jira-software-users"])
        assert json.loads(rsps.calls[-1].request.body or b"{}")["applicationKeys"] == []
        assert made.groups == frozenset()


# --- Flow: the §6 order for each account and group, nothing waits for the others ----------


def op(kind: OpKind, name: str, group: str | None = None) -> Operation:
    return Operation(kind, "t", name, "test", group=group)


def test_an_accounts_operations_go_in_section_6_order_and_wait_for_their_group() -> None:
    ops = [
        op(OpKind.DEACTIVATE_USER, "old"),
        op(OpKind.ADD_MEMBER, "amara", "team"),
        op(OpKind.REMOVE_MEMBER, "old", "team"),
        op(OpKind.CREATE_USER, "amara"),
        op(OpKind.CREATE_GROUP, "team", "team"),
        op(OpKind.ADD_MEMBER, "bruno", "other"),
    ]
    lock = threading.Lock()
    started: dict[int, float] = {}
    ended: dict[int, float] = {}

    def step(o: Operation) -> OpResult:
        i = ops.index(o)
        with lock:
            started[i] = time.monotonic()
        time.sleep(0.02)
        with lock:
            ended[i] = time.monotonic()
        return OpResult(o, Status.DONE)

    results = Flow(ops, 8).run(lambda unit: [step(o) for o in unit])
    # Results in §6 order, plan order within a kind.
    assert [r.op for r in results] == [ops[4], ops[3], ops[1], ops[5], ops[2], ops[0]]
    assert started[1] >= ended[3] and started[1] >= ended[4]  # after its creation and its group's
    assert started[0] >= ended[2]  # the removal before the deactivation
    # bruno's membership waits for nobody: it starts with the first operations.
    assert started[5] < ended[3]


@pytest.mark.parametrize("kind", [OpKind.CREATE_USER, OpKind.REACTIVATE_USER])
def test_a_membership_waits_for_its_groups_creation_however_long_it_takes(kind: OpKind) -> None:
    # The account is ready at once; its group's creation is slow. The addition must not
    # start before the group exists, however the workers are scheduled.
    ops = [op(OpKind.CREATE_GROUP, "team", "team"), op(kind, "amara"), op(OpKind.ADD_MEMBER, "amara", "team")]
    member_started = threading.Event()
    seen: list[str] = []

    def step(o: Operation) -> OpResult:
        if o.kind is OpKind.CREATE_GROUP:
            # Waits for what must not happen: an addition starting while the group is made.
            seen.append("addition began first" if member_started.wait(timeout=0.5) else "group made")
        elif o.kind is OpKind.ADD_MEMBER:
            member_started.set()
            seen.append("addition")
        return OpResult(o, Status.DONE)

    Flow(ops, 4).run(lambda unit: [step(o) for o in unit])
    assert seen == ["group made", "addition"]


def test_group_creations_do_not_wait_for_one_another() -> None:
    ops = [op(OpKind.CREATE_GROUP, g, g) for g in ("a", "b")]
    both = threading.Barrier(2, timeout=5)

    def step(o: Operation) -> OpResult:
        both.wait()  # each creation waits for the other to have begun
        return OpResult(o, Status.DONE)

    assert [r.status for r in Flow(ops, 2).run(lambda unit: [step(o) for o in unit])] == [Status.DONE] * 2


def test_a_failing_step_is_raised_after_the_running_ones_end() -> None:
    ops = [op(OpKind.CREATE_USER, f"u{i}") for i in range(5)]

    def step(o: Operation) -> OpResult:
        if o.account == "u2":
            raise RuntimeError("bug")
        return OpResult(o, Status.DONE)

    with pytest.raises(RuntimeError, match="bug"):
        Flow(ops, 2).run(lambda unit: [step(o) for o in unit])


class Granting:
    """A target whose create gives some groups, and claims one it was not asked for."""

    name, type = "t", "fake"

    def __init__(self) -> None:
        self.adds: list[str] = []

    def create_user_in(
        self,
        username: str,
        email: str,
        display_name: str,
        *,
        external_id: str | None = None,
        groups: Any = (),
    ) -> Account:
        self.asked = sorted(groups)
        return Account(f"k-{username}", username, email, display_name, groups=frozenset({"dflt", "stranger"}))

    def add_member(self, account: Account, group: str) -> None:
        self.adds.append(group)

    def capabilities(self) -> Any:
        raise AssertionError("not needed")


def test_apply_records_the_given_memberships_done_and_writes_the_rest() -> None:
    create = Operation(OpKind.CREATE_USER, "t", "amara", "joiner", source_id="s1")
    adds = [
        Operation(OpKind.ADD_MEMBER, "t", "amara", "rule", group=g, expected={"member": False})
        for g in ("DFLT", "team")
    ]
    target = Granting()
    plan = Plan(targets=(TargetPlan(target="t", type="fake", operations=(create, *adds)),))
    result = apply_plan(plan, {"t": target}, ApplyOptions())  # type: ignore[dict-item]
    by = {(r.op.kind, r.op.group): r for r in result.targets[0].results}
    assert target.asked == ["DFLT", "team"]
    assert by[(OpKind.ADD_MEMBER, "DFLT")].message == GIVEN  # names compare lower-cased
    assert target.adds == ["team"]  # 'stranger' was never planned: not claimed, nothing else sent
    assert all(r.status is Status.DONE for r in result.targets[0].results)


# --- Confluence: the default user group comes with the creation (§2.4 [U]) ----------------


@pytest.fixture
def wiki() -> Iterator[tuple[ConfluenceSim, ConfluenceTarget]]:
    sim = ConfluenceSim("9.4.0", password="joins-wiki-pw")
    sim.add_group("scimsync-managed")
    with SimServer(sim.app) as server:
        client = HttpClient("confluence", server.url, auth=BasicAuth("admin", Secret("joins-wiki-pw")))
        yield sim, ConfluenceTarget("confluence", client)


def wiki_writes(sim: ConfluenceSim) -> list[str]:
    return [f"{e.method} {e.path}" for e in sim.log.entries if e.path != "/rest/applinks/1.0/manifest"]


def test_confluence_reads_before_writing_the_default_group_a_creation_may_have_given(
    wiki: tuple[ConfluenceSim, ConfluenceTarget],
) -> None:
    sim, target = wiki
    made = target.create_user_in("ben", "ben@acme.test", "Ben", groups=["Confluence-Users", "team"])
    assert made.groups == frozenset(), "nothing is claimed before a read shows it"
    target.add_member(made, "Confluence-Users")
    assert wiki_writes(sim) == [
        "POST /rest/api/admin/user",
        "GET /rest/api/user/memberof",  # shows confluence-users: nothing to send
    ]
    assert sim.members("confluence-users") >= {"ben"}
    sim.log.clear()
    target.add_member(made, "confluence-users")  # asked again: the usual write and read-back
    assert wiki_writes(sim) == [
        "PUT /rest/api/user/ben/group/confluence-users",
        "GET /rest/api/user/memberof",
    ]
    plain = target.create_user_in("cleo", "cleo@acme.test", "Cleo", groups=["team"])
    assert plain.groups == frozenset()


def test_confluence_adds_the_default_group_when_the_creation_did_not(
    wiki: tuple[ConfluenceSim, ConfluenceTarget], monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, target = wiki
    monkeypatch.setattr(sim_admin, "DEFAULT_GROUP", "no-such-group")  # a server that adds no one
    made = target.create_user_in("ben", "ben@acme.test", "Ben", groups=["confluence-users"])
    assert "ben" not in sim.members("confluence-users")
    target.add_member(made, "confluence-users")
    assert wiki_writes(sim) == [
        "POST /rest/api/admin/user",
        "GET /rest/api/user/memberof",
        "PUT /rest/api/user/ben/group/confluence-users",
        "GET /rest/api/user/memberof",
    ]
    assert {"ben"} <= sim.members("confluence-users")


def test_confluence_adds_an_accounts_groups_together_with_one_read_back(
    wiki: tuple[ConfluenceSim, ConfluenceTarget],
) -> None:
    sim, target = wiki
    for group in ("team-a", "team-b"):
        sim.add_group(group)
    fields = {"username": "ben", "email": "ben@acme.test", "display_name": "Ben"}
    changes = tuple(FieldChange(f, None, v) for f, v in fields.items())
    create = Operation(OpKind.CREATE_USER, "confluence", "ben", "joiner", changes=changes, source_id="s-ben")
    adds = [
        Operation(OpKind.ADD_MEMBER, "confluence", "ben", "rule", group=g, expected={"member": False})
        for g in ("confluence-users", "scimsync-managed", "team-a", "team-b", "gone")
    ]
    plan = Plan(targets=(TargetPlan(target="confluence", type="confluence", operations=(create, *adds)),))
    result = apply_plan(plan, {"confluence": target}, ApplyOptions())
    by = {r.op.group: r for r in result.targets[0].results}
    assert by["confluence-users"].status is Status.DONE and by["confluence-users"].message != GIVEN
    assert by["scimsync-managed"].message == "with the account's creation"
    assert [by[g].status for g in ("team-a", "team-b")] == [Status.DONE, Status.DONE]
    assert by["gone"].status is Status.FAILED  # a missing group fails its own operation only
    assert "group gone does not exist" in by["gone"].message
    assert wiki_writes(sim) == [
        "POST /rest/api/admin/user",
        "PUT /rest/api/user/ben/group/scimsync-managed",
        "GET /rest/api/user/memberof",
        "PUT /rest/api/user/ben/group/team-a",
        "PUT /rest/api/user/ben/group/team-b",
        "PUT /rest/api/user/ben/group/gone",
        "GET /rest/api/user/memberof",  # one read decides the three
        "GET /rest/api/group/gone",
    ]
    assert sim.members("team-a") == sim.members("team-b") == {"ben"}


def test_an_accounts_additions_together_are_skipped_when_its_creation_failed(
    wiki: tuple[ConfluenceSim, ConfluenceTarget], monkeypatch: pytest.MonkeyPatch
) -> None:
    sim, target = wiki
    for group in ("team-a", "team-b"):
        sim.add_group(group)

    def refused(*args: object) -> Account:
        raise ConnectorError("confluence", "user ben", "HTTP 400: refused")

    monkeypatch.setattr(target, "_create", refused)
    changes = (FieldChange("username", None, "ben"),)
    create = Operation(OpKind.CREATE_USER, "confluence", "ben", "joiner", changes=changes, source_id="s-ben")
    adds = [
        Operation(OpKind.ADD_MEMBER, "confluence", "ben", "rule", group=g, expected={"member": False})
        for g in ("team-a", "team-b")
    ]
    plan = Plan(targets=(TargetPlan(target="confluence", type="confluence", operations=(create, *adds)),))
    results = apply_plan(plan, {"confluence": target}, ApplyOptions()).targets[0].results
    assert [(r.op.group, r.status, r.message) for r in results[1:]] == [
        (g, Status.SKIPPED, "the account was not created in this run") for g in ("team-a", "team-b")
    ]
    assert [e for e in sim.log.entries if e.method == "PUT"] == []


def test_flow_runs_an_accounts_additions_as_one_unit_after_its_creation() -> None:
    ops = [
        op(OpKind.ADD_MEMBER, "amara", "a"),
        op(OpKind.CREATE_USER, "amara"),
        op(OpKind.ADD_MEMBER, "amara", "b"),
        op(OpKind.REMOVE_MEMBER, "amara", "c"),
        op(OpKind.ADD_MEMBER, "bruno", "a"),
    ]
    units: list[list[str]] = []

    def step(unit: list[Operation]) -> list[OpResult]:
        units.append([f"{o.kind.value} {o.account} {o.group or ''}".strip() for o in unit])
        return [OpResult(o, Status.DONE) for o in unit]

    Flow(ops, 1, together=True).run(step)
    assert units == [
        ["create_user amara"],
        ["add_member amara a", "add_member amara b"],
        ["add_member bruno a"],
        ["remove_member amara c"],
    ]


# --- SCIM: a new group is created with its first members (reference §3.7) ------------------


@pytest.fixture
def directory() -> Iterator[tuple[AtlassianCloudSim, AtlassianCloudTarget]]:
    sim = AtlassianCloudSim(token="joins-cloud-key")
    with SimServer(sim.app) as server:
        client = HttpClient(
            "cloud",
            server.url + sim.base_path,
            auth=BearerAuth(Secret("joins-cloud-key")),
            settings=HttpSettings(retries=0),
            error_parser=cloud_error,
        )
        yield sim, AtlassianCloudTarget("cloud", client)


def joiners(target: str, group: str, *names: str) -> Plan:
    ops: list[Operation] = [Operation(OpKind.CREATE_GROUP, target, group, "new group", group=group)]
    for name in names:
        fields = {"username": name, "email": f"{name}@acme.test", "display_name": name.title()}
        changes = tuple(FieldChange(f, None, v) for f, v in fields.items())
        ops.append(
            Operation(OpKind.CREATE_USER, target, name, "joiner", changes=changes, source_id=f"s-{name}")
        )
        ops.append(
            Operation(OpKind.ADD_MEMBER, target, name, "rule", group=group, expected={"member": False})
        )
    return Plan(targets=(TargetPlan(target=target, type="atlassian-cloud", operations=tuple(ops)),))


def scim_writes(sim: AtlassianCloudSim) -> list[str]:
    return [
        f"{e.method} {e.path.rsplit('/', 1)[-1] if e.method == 'PATCH' else e.path}" for e in sim.log.writes()
    ]


def test_a_new_scim_group_is_created_with_its_members_in_one_request(
    directory: tuple[AtlassianCloudSim, AtlassianCloudTarget],
) -> None:
    sim, target = directory
    result = apply_plan(joiners("cloud", "team", "amara", "bruno"), {"cloud": target}, ApplyOptions())
    assert all(r.status is Status.DONE for r in result.targets[0].results)
    writes = [w.rsplit("/", 1)[-1] for w in scim_writes(sim)]
    assert writes == ["Users", "Users", "Groups"]  # no PATCH: the POST carried both members
    assert sim.members("team") == {"amara", "bruno"}


def test_a_refused_create_with_members_falls_back_to_create_then_add(
    directory: tuple[AtlassianCloudSim, AtlassianCloudTarget],
) -> None:
    sim, target = directory
    sim.faults.inject(400, count=1, method="POST", path=sim.base_path + "/Groups")
    result = apply_plan(joiners("cloud", "team", "amara", "bruno"), {"cloud": target}, ApplyOptions())
    assert all(r.status is Status.DONE for r in result.targets[0].results)
    methods = [w.split()[0] + " " + w.rsplit("/", 1)[-1] for w in scim_writes(sim)]
    assert methods[-3:-1] == ["POST Groups", "POST Groups"] and methods[-1].startswith("PATCH")
    assert sim.members("team") == {"amara", "bruno"}
    assert len([g for g in sim.group_names() if g == "team"]) == 1
