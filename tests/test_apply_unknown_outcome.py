"""A write whose outcome is unknown is read back, and repeated only when it did not land (SPEC §8).

The fake target below loses answers on purpose: ``act`` (the write takes effect, then the
answer is lost) or ``lose`` (the answer is lost before the write took effect), each with the
status the client would see (None: no answer at all; 502, 504; or a plain 500 or 400, whose
outcome is known). The oracle is the fake's own state and its count of write calls.
"""

from __future__ import annotations

import threading
from collections.abc import Sequence

import pytest
from test_apply_batching import Audit, Directory, account, run

from scimsync.engine.apply import Status
from scimsync.engine.plan import FieldChange as Change
from scimsync.engine.plan import Operation, OpKind
from scimsync.errors import AuthError, ConnectorError
from scimsync.models import Account, Capabilities, key

Fault = tuple[str, int | None]  # ("act" | "lose", status the client sees; None: no answer)


class Lossy(Directory):
    """A directory whose next writes lose their answers as scripted."""

    def __init__(self, accounts: Sequence[Account] = (), faults: Sequence[Fault] = ()) -> None:
        super().__init__(accounts)
        self.faults = list(faults)
        self.writes = 0
        self.reads = 0
        self.groups: set[str] = set()
        self.unreadable = False

    def capabilities(self) -> Capabilities:
        return Capabilities(owner_marker="group")  # Data Center: the owner marker is a group

    def _lossy(self, obj: str, effect: object) -> None:
        self.writes += 1
        fault = self.faults.pop(0) if self.faults else None
        if fault is None or fault[0] == "act":
            effect() if callable(effect) else None
        if fault is not None:
            kind = AuthError if fault[1] in (401, 403) else ConnectorError
            # No status: no answer after the request was sent (what the HTTP layer raises then).
            raise kind("t", obj, f"answer lost ({fault[1]})", status=fault[1], unknown=fault[1] is None)

    def create_user(
        self, username: str, email: str, display_name: str, *, external_id: str | None = None
    ) -> Account:
        made = Account(
            id=f"id-{username}",
            username=username,
            email=email,
            display_name=display_name,
            external_id=external_id,
        )

        def effect() -> None:
            self.accounts[key(username)] = made

        self._lossy(f"user {username}", effect)
        return made

    def create_group(self, name: str) -> None:
        self._lossy(f"group {name}", lambda: self.groups.add(name))

    def group_exists(self, name: str) -> bool:
        self.reads += 1
        return name in self.groups

    def get_account(self, username: str, *, account_id: str | None = None) -> Account | None:
        self.reads += 1
        if self.unreadable:
            raise ConnectorError("t", f"user {username}", "HTTP 502: read failed too", status=502)
        found = self.accounts.get(key(username))
        if found is None:
            return None
        return Account(
            id=found.id,
            username=found.username,
            email=found.email,
            display_name=found.display_name,
            active=found.active,
            groups=frozenset(self.members_of(found.username)),
            external_id=found.external_id,
        )

    def members_of(self, username: str) -> set[str]:
        return {g for g, names in self.members.items() if username in names}

    def add_member(self, account: Account, group: str) -> None:
        self._lossy(
            f"membership {account.username} in {group}",
            lambda: self.members.setdefault(key(group), set()).add(account.username),
        )

    def set_active(self, account: Account, active: bool) -> None:
        def effect() -> None:
            now = self.accounts[key(account.username)]
            self.accounts[key(account.username)] = Account(
                id=now.id,
                username=now.username,
                email=now.email,
                display_name=now.display_name,
                active=active,
                external_id=now.external_id,
            )

        self._lossy(f"user {account.username}", effect)


def create(name: str) -> Operation:
    return Operation(
        OpKind.CREATE_USER,
        "t",
        name,
        "new in source",
        source_id=f"src-{name}",
        changes=(
            Change("username", None, name),
            Change("email", None, f"{name}@acme.test"),
            Change("display_name", None, name.title()),
        ),
    )


def add(name: str, group: str) -> Operation:
    return Operation(
        OpKind.ADD_MEMBER, "t", name, "rule", account_id=f"id-{name}", group=group, expected={"member": False}
    )


def deactivate(name: str) -> Operation:
    return Operation(
        OpKind.DEACTIVATE_USER, "t", name, "gone", account_id=f"id-{name}", expected={"active": True}
    )


def only(results: Sequence[object]) -> object:
    assert len(results) == 1
    return results[0]


@pytest.mark.parametrize("status", [None, 502, 504])
def test_a_create_that_landed_is_adopted_not_sent_again(status: int | None) -> None:
    target = Lossy(faults=[("act", status)])
    result = only(run(target, [create("amara")]))
    assert result.status is Status.DONE, result.message
    assert target.writes == 1
    assert target.accounts["amara"].email == "amara@acme.test"


@pytest.mark.parametrize("status", [None, 502, 504])
def test_a_create_that_did_not_land_is_sent_again(status: int | None) -> None:
    target = Lossy(faults=[("lose", status)])
    result = only(run(target, [create("amara")]))
    assert result.status is Status.DONE, result.message
    assert target.writes == 2
    assert list(target.accounts) == ["amara"]


@pytest.mark.parametrize("status", [400, 500, 401])
def test_a_known_outcome_is_never_read_back_or_repeated(status: int) -> None:
    # 400: refused; 500: the server failed (not one of SPEC §8's unknown outcomes); 401: credentials.
    target = Lossy(faults=[("lose", status)])
    result = only(run(target, [create("amara")]))
    assert result.status is Status.FAILED
    assert (target.writes, target.reads) == (1, 0)
    assert f"answer lost ({status})" in result.message


def test_an_account_of_another_system_under_the_name_is_never_adopted() -> None:
    # The create's answer was lost, and the name now holds an account another system made.
    theirs = Account(
        id="x1", username="amara", email="amara@acme.test", display_name="Amara", external_id="hr-9"
    )
    target = Lossy([theirs], faults=[("lose", None)])
    result = only(run(target, [create("amara")]))
    assert result.status is Status.FAILED
    assert target.writes == 1
    assert target.accounts["amara"] is theirs


def test_an_account_with_another_email_under_the_name_is_not_the_one_this_run_created() -> None:
    stranger = Account(id="x2", username="amara", email="amara.other@acme.test", display_name="Amara")
    target = Lossy([stranger], faults=[("lose", 504)])
    result = only(run(target, [create("amara")]))
    assert result.status is Status.FAILED
    assert target.writes == 1
    assert target.accounts["amara"] is stranger


def test_repeats_are_bounded() -> None:
    target = Lossy(faults=[("lose", 502)] * 10)
    result = only(run(target, [create("amara")]))
    assert result.status is Status.FAILED
    assert target.writes == 3  # the write and two repeats, each after a read-back
    assert target.reads == 2
    assert "amara" not in target.accounts


def test_when_the_read_back_fails_too_the_write_fails_unrepeated() -> None:
    target = Lossy(faults=[("lose", None)])
    target.unreadable = True
    result = only(run(target, [create("amara")]))
    assert result.status is Status.FAILED
    assert target.writes == 1
    assert "answer lost (None)" in result.message


@pytest.mark.parametrize(("fault", "writes"), [("act", 1), ("lose", 2)])
def test_a_membership_is_read_back(fault: str, writes: int) -> None:
    target = Lossy([account("bruno", owned=True)], faults=[(fault, 502)])
    result = only(run(target, [add("bruno", "jira-users")]))
    assert result.status is Status.DONE, result.message
    assert target.writes == writes
    assert target.members_of("bruno") == {"jira-users"}


@pytest.mark.parametrize(("fault", "writes"), [("act", 1), ("lose", 2)])
def test_a_deactivation_is_read_back(fault: str, writes: int) -> None:
    target = Lossy([account("chen", owned=True)], faults=[(fault, None)])
    result = only(run(target, [deactivate("chen")]))
    assert result.status is Status.DONE, result.message
    assert target.writes == writes
    assert target.accounts["chen"].active is False


def test_a_deactivation_whose_account_was_replaced_meanwhile_is_not_repeated() -> None:
    # Read back by the stable id: another account under the name is not the one to deactivate.
    target = Lossy([account("chen", owned=True)], faults=[("lose", 504)])
    target.accounts["chen"] = Account(id="other", username="chen", email="c@x.test", display_name="C")
    result = only(run(target, [deactivate("chen")]))
    assert result.status is Status.FAILED
    assert target.writes == 1


@pytest.mark.parametrize(("fault", "writes"), [("act", 1), ("lose", 2)])
def test_a_group_creation_is_read_back(fault: str, writes: int) -> None:
    target = Lossy(faults=[(fault, 502)])
    op = Operation(OpKind.CREATE_GROUP, "t", "c-team", "rule", group="c-team")
    result = only(run(target, [op]))
    assert result.status is Status.DONE, result.message
    assert (target.writes, target.groups) == (writes, {"c-team"})


def test_a_connectors_own_verdict_without_a_status_is_not_read_back() -> None:
    # The connector read the result back itself and found the write did not land (e.g. a
    # Confluence 204 that changed nothing): a known outcome, failed once, never repeated.
    class Verdict(Lossy):
        def set_active(self, account: Account, active: bool) -> None:
            self.writes += 1
            raise ConnectorError("t", f"user {account.username}", "answered 204 but is still active")

    target = Verdict([account("chen", owned=True)])
    result = only(run(target, [deactivate("chen")]))
    assert result.status is Status.FAILED
    assert (target.writes, target.reads) == (1, 0)


def test_a_garbage_answer_is_an_unknown_outcome() -> None:
    from scimsync.errors import ResponseError

    class Garbage(Lossy):
        def create_user(
            self, username: str, email: str, display_name: str, *, external_id: str | None = None
        ) -> Account:
            self.writes += 1
            made = Account(f"id-{username}", username, email, display_name, external_id=external_id)
            self.accounts[key(username)] = made
            raise ResponseError("t", f"user {username}", "expected JSON, got text/html")

    target = Garbage()
    result = only(run(target, [create("amara")]))
    assert result.status is Status.DONE, result.message
    assert target.writes == 1


def test_where_the_owner_marker_is_the_external_id_only_ours_is_adopted() -> None:
    class Scim(Lossy):
        def capabilities(self) -> Capabilities:
            return Capabilities(owner_marker="external_id")

    plain = Account("x3", "amara", "amara@acme.test", "Amara")  # no externalId: not provably ours
    target = Scim([plain], faults=[("lose", 502)])
    assert only(run(target, [create("amara")])).status is Status.FAILED
    assert target.accounts["amara"] is plain
    ours = Scim(faults=[("act", 502)])
    assert only(run(ours, [create("amara")])).status is Status.DONE
    assert ours.accounts["amara"].external_id == "src-amara"


def test_a_field_the_target_does_not_show_cannot_prove_an_account_ours() -> None:
    # Confluence before 10.0 shows no emails: a stranger with the name and display name is
    # not adopted.
    class NoEmails(Lossy):
        def get_account(self, username: str, *, account_id: str | None = None) -> Account | None:
            found = super().get_account(username, account_id=account_id)
            return None if found is None else Account(found.id, found.username, None, found.display_name)

    target = NoEmails(faults=[("act", 504)])
    result = only(run(target, [create("amara")]))
    assert result.status is Status.FAILED
    assert target.writes == 1


# --- the owner group goes with the creation -------------------------------------------------


def owner_add(name: str, group: str = "scimsync-managed") -> Operation:
    return Operation(OpKind.ADD_MEMBER, "t", name, "owner marker", group=group, expected={"member": False})


class Stopping(Lossy):
    """A directory during whose first creation SIGTERM arrives (the run's stop flag is set)."""

    def __init__(self, stop: threading.Event, accounts: Sequence[Account] = ()) -> None:
        super().__init__(accounts)
        self.stop = stop

    def create_user(
        self, username: str, email: str, display_name: str, *, external_id: str | None = None
    ) -> Account:
        made = super().create_user(username, email, display_name, external_id=external_id)
        self.stop.set()  # while the creation is in flight
        return made


def test_a_run_stopped_after_the_creations_leaves_every_new_account_owned() -> None:
    stop = threading.Event()

    target = Stopping(stop)
    ops = [create("amara"), owner_add("amara"), owner_add("amara", "jira-users")]
    results = run(target, ops, stop=stop)
    by = {(r.op.kind, r.op.group): r for r in results}
    assert len(results) == 3
    assert by[(OpKind.CREATE_USER, None)].status is Status.DONE
    assert by[(OpKind.ADD_MEMBER, "scimsync-managed")].status is Status.DONE
    assert by[(OpKind.ADD_MEMBER, "jira-users")].status is Status.SKIPPED  # no later phase started
    assert target.members_of("amara") == {"scimsync-managed"}
    assert target.writes == 2


def test_the_owner_group_is_added_once_even_when_nothing_stops() -> None:
    target = Lossy()
    audit = Audit()
    results = run(target, [create("amara"), owner_add("amara"), owner_add("amara", "jira-users")], audit)
    assert {r.status for r in results} == {Status.DONE}
    assert target.members_of("amara") == {"scimsync-managed", "jira-users"}
    assert target.writes == 3  # the owner group is not sent again in the memberships phase
    assert sorted(audit.records) == sorted(
        [("amara", "", "done"), ("amara", "scimsync-managed", "done"), ("amara", "jira-users", "done")]
    )


def test_an_owner_group_that_fails_with_the_creation_gets_its_own_turn() -> None:
    class FirstMarkFails(Lossy):
        failed = False

        def add_member(self, account: Account, group: str) -> None:
            if not self.failed:
                self.failed = True
                self.writes += 1
                raise ConnectorError("t", f"membership {account.username} in {group}", "HTTP 500", status=500)
            super().add_member(account, group)

    target = FirstMarkFails()
    results = run(target, [create("amara"), owner_add("amara")])
    assert [r.status for r in results] == [Status.DONE, Status.DONE]
    assert target.members_of("amara") == {"scimsync-managed"}
    assert target.writes == 3  # the create, the failed mark, the mark in its own phase


def test_an_owner_group_of_an_existing_account_is_not_moved() -> None:
    # Only accounts created in this run: an existing account's owner marker stays in its phase.
    stop = threading.Event()

    target = Stopping(stop, [account("bruno", owned=False)])
    results = run(target, [create("amara"), add("bruno", "scimsync-managed")], stop=stop)
    by = {r.op.account: r.status for r in results}
    assert by == {"amara": Status.DONE, "bruno": Status.SKIPPED}
    assert target.members_of("bruno") == set()
