"""The executor sends a group's membership changes in chunks where the target can (issue 7).

A fake target (below) records every call and refuses the members it is told to, the way a
SCIM service refuses a whole PATCH for one unknown user. The last test runs the CLI
against the Atlassian Cloud simulator and counts its PATCH /Groups requests.
"""

from __future__ import annotations

import csv
import threading
from collections.abc import Callable, Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from scimsync.cli import cli
from scimsync.engine.apply import ApplyOptions, OpResult, Status, apply_plan
from scimsync.engine.plan import Operation, OpKind, Plan, TargetPlan
from scimsync.errors import AuthError, ConnectorError
from scimsync.models import Account, Capabilities, TargetDirectory, key
from scimsync.sim.atlassian_cloud import AtlassianCloudSim
from scimsync.sim.server import SimServer
from scimsync.targets.atlassian_cloud import AtlassianCloudTarget
from scimsync.targets.base import BatchMembers, Progress, Target, no_progress

Call = tuple[str, str, tuple[str, ...]]  # (method, group, usernames)


class Directory:
    """A target without the batch capability: one call per membership, recorded."""

    name = "t"
    type = "fake"

    def __init__(self, accounts: Iterable[Account] = ()) -> None:
        self.accounts = {key(a.username): a for a in accounts}
        self.members: dict[str, set[str]] = {}
        self.calls: list[Call] = []
        self.refuse: set[str] = set()  # usernames every membership write of is refused
        self.error: Callable[[str], ConnectorError] = lambda obj: ConnectorError(
            "t", obj, "HTTP 404: no such user"
        )
        self.lock = threading.Lock()

    def _change(self, method: str, group: str, accounts: Sequence[Account], *, add: bool) -> None:
        names = tuple(a.username for a in accounts)
        with self.lock:
            self.calls.append((method, group, names))
        bad = [n for n in names if n in self.refuse]
        if bad:
            raise self.error(f"membership {bad[0]} in {group}")  # all or nothing, like a PATCH
        with self.lock:
            held = self.members.setdefault(key(group), set())
            if add:
                held.update(names)
            else:
                held.difference_update(names)

    def add_member(self, account: Account, group: str) -> None:
        self._change("add_member", group, [account], add=True)

    def remove_member(self, account: Account, group: str) -> None:
        self._change("remove_member", group, [account], add=False)

    def capabilities(self) -> Capabilities:
        return Capabilities(owner_marker="external_id")

    def get_account(self, username: str, *, account_id: str | None = None) -> Account | None:
        return self.accounts.get(key(username))

    def create_user(
        self, username: str, email: str, display_name: str, *, external_id: str | None = None
    ) -> Account:
        # Created without an owner marker: only `made` keeps it ours in a saved plan's re-check.
        if username in self.refuse:
            raise ConnectorError("t", f"user {username}", "HTTP 400: invalid email")
        account = Account(id=f"id-{username}", username=username, email=email, display_name=display_name)
        self.accounts[key(username)] = account
        return account

    def check(self) -> str:
        raise AssertionError("not used")

    def read(
        self,
        managed_groups: Iterable[str],
        *,
        progress: Progress = no_progress,
        wanted: Iterable[tuple[str, str]] | None = None,
    ) -> TargetDirectory:
        raise AssertionError("not used")

    def group_exists(self, name: str) -> bool:
        raise AssertionError("not used")

    def update_user(self, account: Account, fields: dict[str, str]) -> None:
        raise AssertionError("not used")

    def set_active(self, account: Account, active: bool) -> None:
        raise AssertionError("not used")

    def delete_user(self, account: Account) -> None:
        raise AssertionError("not used")

    def create_group(self, name: str) -> None:
        raise AssertionError("not used")

    def close(self) -> None:
        pass


class Batching(Directory):
    """A target with the batch capability (``BatchMembers``)."""

    def __init__(self, accounts: Iterable[Account] = (), *, size: int = 4) -> None:
        super().__init__(accounts)
        self.size = size
        self.after_batch: Callable[[], None] = lambda: None

    def member_batch_size(self, *, add: bool) -> int:
        return self.size

    def add_members(self, group: str, accounts: Sequence[Account]) -> None:
        try:
            self._change("add_members", group, accounts, add=True)
        finally:
            self.after_batch()

    def remove_members(self, group: str, accounts: Sequence[Account]) -> None:
        self._change("remove_members", group, accounts, add=False)


class Audit:
    """The audit log: one record per finished operation."""

    def __init__(self) -> None:
        self.records: list[tuple[str, str, str]] = []  # (account, group, result)
        self.lock = threading.Lock()

    def record(self, op: Operation, result: str, message: str = "") -> None:
        with self.lock:
            self.records.append((op.account, op.group or "", result))


def account(name: str, *groups: str, owned: bool = True) -> Account:
    return Account(
        id=f"id-{name}",
        username=name,
        email=f"{name}@acme.test",
        display_name=name.title(),
        groups=frozenset(groups),
        external_id=f"src-{name}" if owned else None,
    )


def member(kind: OpKind, name: str, group: str, *, known: bool = True) -> Operation:
    wanted = kind is OpKind.ADD_MEMBER
    return Operation(
        kind,
        "t",
        name,
        "rule",
        account_id=f"id-{name}" if known else None,
        group=group,
        expected={"member": not wanted},
    )


def adds(group: str, *names: str) -> list[Operation]:
    return [member(OpKind.ADD_MEMBER, n, group) for n in names]


def run(
    target: Target, ops: Sequence[Operation], audit: Audit | None = None, **options: Any
) -> tuple[OpResult, ...]:
    plan = Plan((TargetPlan("t", "fake", tuple(ops)),))
    result = apply_plan(plan, {"t": target}, ApplyOptions(recorder=audit, **options))
    return result.targets[0].results


def statuses(results: Iterable[OpResult]) -> dict[tuple[str, str], Status]:
    return {(r.op.account, r.op.group or ""): r.status for r in results}


NAMES = [f"p{n:02}" for n in range(1, 11)]


def test_the_target_declares_the_capability_and_a_plain_one_does_not() -> None:
    assert isinstance(Batching(), BatchMembers)
    assert not isinstance(Directory(), BatchMembers)


def test_ops_are_grouped_by_group_and_cut_into_chunks_of_the_targets_size() -> None:
    target = Batching(size=4)
    ops = [
        *adds("eng", *NAMES[:5]),
        *adds("ENG", *NAMES[5:9]),
        *adds("sales", *NAMES[:3]),
        *adds("ops", "p01"),
    ]
    ops += [member(OpKind.REMOVE_MEMBER, n, "old") for n in NAMES[:3]]
    audit = Audit()
    results = run(target, ops, audit)
    assert [r.op for r in results] == ops  # plan order, whatever the order of the requests
    assert {r.status for r in results} == {Status.DONE}
    batched = sorted((m, key(g), len(names)) for m, g, names in target.calls)
    # eng: 9 (names compare lower-cased, SPEC §4) in near-equal chunks of at most 4; a lone
    # operation goes alone; the removals, a later phase, in their own request.
    assert batched == [
        ("add_member", "ops", 1),
        ("add_members", "eng", 3),
        ("add_members", "eng", 3),
        ("add_members", "eng", 3),
        ("add_members", "sales", 3),
        ("remove_members", "old", 3),
    ]
    assert target.calls[-1][0] == "remove_members"  # SPEC §6: additions before removals
    assert target.members["eng"] == set(NAMES[:9]) and target.members["old"] == set()
    assert sorted(audit.records) == sorted((op.account, op.group or "", "done") for op in ops)


def test_a_lone_operation_goes_alone_and_two_go_together() -> None:
    target = Batching(size=50)
    run(target, adds("eng", "p01") + adds("ops", "p02", "p03"))
    assert sorted(target.calls) == [("add_member", "eng", ("p01",)), ("add_members", "ops", ("p02", "p03"))]


def test_a_target_without_the_capability_gets_one_call_per_operation() -> None:
    target = Directory()
    ops = adds("eng", *NAMES)
    results = run(target, ops)
    assert {r.status for r in results} == {Status.DONE}
    assert sorted(target.calls) == [("add_member", "eng", (n,)) for n in NAMES]


def test_a_refused_chunk_goes_again_one_by_one_and_fails_only_the_bad_member() -> None:
    target = Batching(size=5)
    target.refuse = {"p03"}
    audit = Audit()
    results = run(target, adds("eng", *NAMES), audit, concurrency=1)
    by_op = statuses(results)
    assert by_op.pop(("p03", "eng")) is Status.FAILED
    assert set(by_op.values()) == {Status.DONE}
    failed = next(r for r in results if r.status is Status.FAILED)
    assert failed.message == "t: membership p03 in eng: HTTP 404: no such user"  # the target's own error
    assert target.calls == [
        ("add_members", "eng", tuple(NAMES[:5])),
        *(("add_member", "eng", (n,)) for n in NAMES[:5]),
        ("add_members", "eng", tuple(NAMES[5:])),
    ]
    assert target.members["eng"] == set(NAMES) - {"p03"}
    assert sorted(audit.records) == sorted((n, "eng", "failed" if n == "p03" else "done") for n in NAMES)


def test_the_error_budget_counts_each_operation_and_stops_the_fallback() -> None:
    target = Batching(size=5)
    target.refuse = {"p02", "p04"}
    seen: list[tuple[int, int]] = []

    def exceeded(failed: int, attempted: int) -> bool:
        seen.append((failed, attempted))
        return failed >= 2

    audit = Audit()
    results = run(
        target, adds("eng", *NAMES), audit, concurrency=1, failures_exceeded=exceeded, budget_text="1"
    )
    # The refused chunk of five counts as nothing; its operations, one by one, as today.
    assert seen == [(0, 1), (1, 2), (1, 3), (2, 4)]
    assert [r.status for r in results] == [
        Status.DONE, Status.FAILED, Status.DONE, Status.FAILED, *[Status.SKIPPED] * 6,
    ]  # fmt: skip
    assert results[-1].message.startswith("stopped writing to t: 2 of 4 writes failed")
    assert [c[0] for c in target.calls].count("add_members") == 1  # the second chunk is never sent
    assert len(audit.records) == 4


def test_a_saved_plan_leaves_stale_and_done_operations_out_of_the_chunk() -> None:
    target = Batching(
        [
            account("amara"),
            account("bruno", owned=False),  # lost the owner marker since the plan
            account("chen", "eng"),  # already a member
            account("dalia", "old"),
            account("eve", "old"),
            account("fay", "old"),
        ],
        size=10,
    )
    target.members = {"eng": {"chen"}, "old": {"dalia", "eve", "fay"}}
    ops = adds("eng", "amara", "bruno", "chen", "dalia", "eve")
    ops += [member(OpKind.REMOVE_MEMBER, n, "old") for n in ("dalia", "eve", "fay")]
    results = run(target, ops, recheck=True)
    assert statuses(results) == {
        ("amara", "eng"): Status.DONE,
        ("bruno", "eng"): Status.STALE,
        ("chen", "eng"): Status.DONE,
        ("dalia", "eng"): Status.DONE,
        ("eve", "eng"): Status.DONE,
        ("dalia", "old"): Status.DONE,
        ("eve", "old"): Status.DONE,
        ("fay", "old"): Status.DONE,
    }
    assert next(r for r in results if r.op.account == "chen").message == "already in the wanted state"
    # The removals are re-checked against each account as this run left it: added to eng
    # by a chunk, still in old, so still to do.
    assert target.calls == [
        ("add_members", "eng", ("amara", "dalia", "eve")),
        ("remove_members", "old", ("dalia", "eve", "fay")),
    ]


def test_accounts_this_run_created_join_their_chunk_in_a_saved_plan() -> None:
    target = Batching(size=10)
    target.refuse = {"joe"}  # its create fails: its membership is not attempted
    names = ("gia", "hal", "ian", "joe")
    creates = [Operation(OpKind.CREATE_USER, "t", n, "new", source_id=f"src-{n}") for n in names]
    joins = [member(OpKind.ADD_MEMBER, n, "eng", known=False) for n in names]
    results = run(target, [*creates, *joins], recheck=True)
    assert [r.status for r in results] == [Status.DONE] * 3 + [Status.FAILED] + [Status.DONE] * 3 + [
        Status.SKIPPED
    ]
    assert results[-1].message == "the account was not created in this run"
    assert target.calls == [("add_members", "eng", ("gia", "hal", "ian"))]


def test_a_stop_mid_phase_sends_no_further_chunk() -> None:
    target = Batching(size=3)
    stop = threading.Event()
    target.after_batch = stop.set  # SIGTERM arrives while the first chunk is out
    audit = Audit()
    results = run(target, adds("eng", *NAMES[:9]), audit, concurrency=1, stop=stop)
    assert [r.status for r in results] == [Status.DONE] * 3 + [Status.SKIPPED] * 6
    assert {r.message for r in results[3:]} == {"interrupted before it started"}
    assert target.calls == [("add_members", "eng", tuple(NAMES[:3]))]
    assert len(audit.records) == 3


def test_a_401_on_a_chunk_fails_its_operations_and_stops_the_target() -> None:
    target = Batching(size=3)
    target.refuse = {"p01"}
    target.error = lambda obj: AuthError("t", obj, "HTTP 401 Unauthorized", status=401)
    apply = apply_plan(
        Plan((TargetPlan("t", "fake", tuple(adds("eng", *NAMES[:6]))),)),
        {"t": target},
        ApplyOptions(concurrency=1),
    )
    results = apply.targets[0].results
    assert [r.status for r in results] == [Status.FAILED] * 3 + [Status.SKIPPED] * 3
    assert apply.targets[0].stopped == "stopped writing to t: t: membership p01 in eng: HTTP 401 Unauthorized"
    assert target.calls == [("add_members", "eng", tuple(NAMES[:3]))]  # nothing sent after it


def test_a_403_on_a_chunk_concerns_one_account_and_goes_one_by_one() -> None:
    target = Batching(size=3)
    target.refuse = {"p02"}
    target.error = lambda obj: AuthError("t", obj, "HTTP 403 Forbidden", status=403)
    results = run(target, adds("eng", *NAMES[:3]))
    assert [r.status for r in results] == [Status.DONE, Status.FAILED, Status.DONE]


# --- end to end: the CLI against the Atlassian Cloud simulator -----------------------------------

PEOPLE = 60
KEY = "batch-e2e-cloud-key"


def _write_folder(folder: Path, url: str) -> None:
    with (folder / "people.csv").open("w", newline="", encoding="utf-8") as fh:
        writer = csv.DictWriter(
            fh, fieldnames=["id", "username", "email", "first_name", "last_name", "active", "groups"]
        )
        writer.writeheader()
        for n in range(PEOPLE):
            groups = "staff;eng" if n % 2 else "staff"
            writer.writerow(
                {
                    "id": f"emp-{n}",
                    "username": f"person{n:02}",
                    "email": f"person{n:02}@acme.test",
                    "first_name": "Person",
                    "last_name": f"{n:02}",
                    "active": "true",
                    "groups": groups,
                }
            )
    config = {
        "version": 1,
        "source": {"type": "file", "path": "people.csv"},
        "targets": {
            "cloud": {
                "type": "atlassian-cloud",
                "url": url,
                "token": KEY,
                "groups": [{"from": "*", "to": "cloud-{{ group.name }}"}],
            }
        },
        "audit_log": "audit.jsonl",
        "lock_file": "run.lock",
        "state_file": "state.json",
        "http": {"retries": 1, "timeout": 10},
    }
    (folder / "scimsync.yaml").write_text(yaml.safe_dump(config), encoding="utf-8")


def _provision(folder: Path) -> tuple[AtlassianCloudSim, int]:
    """Provision the 60 people into a fresh directory; return it and its PATCH /Groups count."""
    folder.mkdir()
    sim = AtlassianCloudSim(token=KEY)
    with SimServer(sim.app) as server:
        _write_folder(folder, server.url + sim.base_path)
        runner = CliRunner()
        applied = runner.invoke(
            cli, ["-c", str(folder / "scimsync.yaml"), "apply", "-y"], catch_exceptions=False
        )
        assert applied.exit_code == 0, applied.output
        patches = sum(1 for e in sim.log.entries if e.method == "PATCH" and "/Groups/" in e.path)
        sim.log.clear()
        planned = runner.invoke(cli, ["-c", str(folder / "scimsync.yaml"), "plan", "--detailed-exitcode"])
        assert planned.exit_code == 0, planned.output
        assert "Plan: 0 to create, 0 to update, 0 to deactivate, 0 membership changes." in planned.stdout
        assert sim.log.writes() == []
    return sim, patches


def test_a_first_provisioning_of_60_people_sends_a_handful_of_group_patches(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    batched, patches = _provision(tmp_path / "batched")
    assert batched.members("cloud-staff") == {f"person{n:02}" for n in range(PEOPLE)}
    assert batched.members("cloud-eng") == {f"person{n:02}" for n in range(1, PEOPLE, 2)}
    # The same run one member per request, as before batching: 60 + 30 PATCHes.
    monkeypatch.setattr(AtlassianCloudTarget, "member_batch_size", lambda self, *, add: 1)
    single, before = _provision(tmp_path / "single")
    assert single.members("cloud-staff") == batched.members("cloud-staff")
    assert single.members("cloud-eng") == batched.members("cloud-eng")
    assert before == PEOPLE + PEOPLE // 2
    # staff: 2 chunks of 30, the first sent with the group's creation (POST /Groups carries
    # members, reference §3.7); eng: its 1 chunk of 30 with its creation.
    assert patches == 1
