"""The Jira DC simulator over a loopback socket, checked against reference §1 with plain requests."""

from __future__ import annotations

from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any

import pytest
import requests

from scimsync.sim.faults import DROPPED, LoggedRequest
from scimsync.sim.jira import JiraSim
from scimsync.sim.server import SimServer

TOKEN = "sim-jira-token"
NOT_AUTHENTICATED = {
    "errorMessages": ["You are not authenticated. Authentication required to perform this operation."],
    "errors": {},
}
RATE_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Interval-Seconds",
    "X-RateLimit-FillRate",
    "retry-after",
)


class Jira:
    """A tiny REST client: ``/rest/api/2`` + path, PAT auth unless told otherwise."""

    def __init__(self, url: str, auth: Any = None, token: str | None = TOKEN) -> None:
        self.url = url
        self._others: list[Jira] = []
        self.session = requests.Session()
        if auth is not None:
            self.session.auth = auth
        elif token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        api = kwargs.pop("api", "2")
        return self.session.request(method, f"{self.url}/rest/api/{api}{path}", timeout=10, **kwargs)

    def as_(self, *, auth: Any = None, token: str | None = None) -> Jira:
        """Return a client with other credentials (closed with the server)."""
        other = Jira(self.url, auth, token)
        self._others.append(other)
        return other

    def close(self) -> None:
        """Close this session and those of the clients made from it."""
        for other in self._others:
            other.close()
        self.session.close()


@contextmanager
def serve(sim: JiraSim, prefix: str = "/jira") -> Iterator[Jira]:
    """Serve ``sim`` and yield a PAT client."""
    with SimServer(sim.app, prefix=prefix) as server:
        client = Jira(server.url)
        try:
            yield client
        finally:
            client.close()


@pytest.fixture
def sim() -> JiraSim:
    return JiraSim()


@pytest.fixture
def jira(sim: JiraSim) -> Iterator[Jira]:
    with serve(sim) as client:
        yield client


def new_user(name: str = "amara.k", **extra: Any) -> dict[str, Any]:
    return {"name": name, "emailAddress": f"{name}@example.test", "displayName": "Amara K", **extra}


# -- server, routing, auth ----------------------------------------------------


def test_prefix_alias_unknown_route_and_wrong_method(jira: Jira) -> None:
    assert jira.url.startswith("http://127.0.0.1:") and jira.url.endswith("/jira")
    outside = requests.get(jira.url.removesuffix("/jira") + "/rest/api/2/serverInfo", timeout=10)
    assert outside.status_code == 404
    assert jira("GET", "/myself", api="latest").json()["name"] == "admin"
    assert jira("GET", "/nothing").status_code == 404
    assert jira("GET", "/user/", params={"username": "admin"}).status_code == 404
    wrong = jira("PATCH", "/user", params={"username": "admin"})
    assert wrong.status_code == 405 and "PUT" in wrong.headers["Allow"]


def test_server_is_quiet_and_restartable(sim: JiraSim, capfd: pytest.CaptureFixture[str]) -> None:
    server = SimServer(sim.app)
    url = server.start()
    assert server.start() == url == server.url
    assert requests.get(f"{url}/rest/api/2/serverInfo", timeout=10).ok
    sim.faults.drop()
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{url}/rest/api/2/serverInfo", timeout=10)
    server.stop()
    server.stop()
    with pytest.raises(RuntimeError):
        _ = server.url
    assert capfd.readouterr().err == ""


@pytest.mark.parametrize(
    ("version", "build"), [("8.5.0", 8050000), ("9.12.2", 9120002), ("10.3.1", 10030001)]
)
def test_server_info_is_anonymous_per_version(version: str, build: int) -> None:
    with serve(JiraSim(version)) as jira:
        info = jira.as_(token=None)("GET", "/serverInfo").json()
    assert info["version"] == version and info["versionNumbers"] == [int(n) for n in version.split(".")]
    assert info["deploymentType"] == "Server" and info["buildNumber"] == build
    assert info["baseUrl"] == jira.url and info["serverTitle"] == "Jira"


def test_pat_basic_and_bad_credentials(sim: JiraSim, jira: Jira) -> None:
    assert jira("GET", "/myself").json()["key"] == "JIRAUSER10000"
    assert jira.as_(auth=("ADMIN", "admin"))("GET", "/myself").status_code == 200  # logins ignore case
    for client in (jira.as_(token=None), jira.as_(token="wrong"), jira.as_(auth=("admin", "nope"))):
        answer = client("GET", "/myself")
        assert (answer.status_code, answer.json()) == (401, NOT_AUTHENTICATED)
    assert jira.as_(auth=("admin", "nope"))("GET", "/serverInfo").status_code == 401


def test_pat_needs_8_14() -> None:
    with serve(JiraSim("8.13.0")) as jira:
        assert jira("GET", "/myself").status_code == 401  # the Bearer header is ignored
        assert jira.as_(auth=("admin", "admin"))("GET", "/myself").status_code == 200


def test_basic_auth_disabled_answers_403_with_its_own_body() -> None:
    with serve(JiraSim(basic_auth_enabled=False)) as jira:
        answer = jira.as_(auth=("admin", "admin"))("GET", "/myself")
        assert answer.status_code == 403
        assert answer.json() == {"message": "Basic Authentication has been disabled on this instance."}
        assert jira("GET", "/myself").status_code == 200
    with pytest.raises(ValueError, match=r"8\.16"):
        JiraSim("8.15.0", basic_auth_enabled=False)


def test_non_admin_is_refused_admin_endpoints(sim: JiraSim, jira: Jira) -> None:
    sim.add_account("viewer", "pw", "viewer-pat")
    viewer = jira.as_(token="viewer-pat")
    assert viewer("GET", "/myself").json()["name"] == "viewer"
    assert viewer("GET", "/user", params={"username": "admin"}).status_code == 200
    for method, path, kwargs in [
        ("POST", "/user", {"json": new_user()}),
        ("GET", "/user/list", {}),
        ("GET", "/group/member", {"params": {"groupname": "jira-software-users"}}),
        ("POST", "/group", {"json": {"name": "x"}}),
        ("POST", "/group/user", {"params": {"groupname": "jira-core-users"}, "json": {"name": "viewer"}}),
    ]:
        answer = viewer(method, path, **kwargs)
        assert answer.status_code == 403 and answer.json()["errorMessages"], (method, path)
    assert sim.user("amara.k") is None and "x" not in sim.group_names()


def test_deactivated_account_cannot_log_in(sim: JiraSim, jira: Jira) -> None:
    sim.add_account("bot", token="bot-pat", admin=True)
    sim.update_user("bot", active=False)
    assert jira.as_(token="bot-pat")("GET", "/myself").status_code == 401


# -- users ---------------------------------------------------------------------


def test_create_user_grants_default_access(sim: JiraSim, jira: Jira) -> None:
    answer = jira("POST", "/user", json=new_user(notification=False, password="S3cret!"))
    assert answer.status_code == 201
    bean = answer.json()
    assert (bean["key"], bean["name"], bean["active"]) == ("JIRAUSER10001", "amara.k", True)
    assert bean["self"] == f"{jira.url}/rest/api/2/user?username=amara.k"
    assert sim.members("jira-software-users") >= {"amara.k"}  # jira-software is selectedByDefault
    assert "amara.k" not in sim.members("jira-core-users")
    core = jira("POST", "/user", json=new_user("bruno", applicationKeys=["jira-core"], notification="true"))
    assert core.json()["key"] == "JIRAUSER10002"
    assert sim.members("jira-core-users") == {"bruno"} and "bruno" not in sim.members("jira-software-users")
    assert jira.as_(auth=("amara.k", "S3cret!"))("GET", "/myself").status_code == 200
    none = jira("POST", "/user", json=new_user("chen", applicationKeys=[]))
    assert none.status_code == 201 and sim.user("chen")["groups"]["size"] == 0  # type: ignore[index]


@pytest.mark.parametrize(
    ("body", "errors"),
    [
        (new_user("Amara.K"), {"username": "The username must be all lower case."}),
        (new_user("admin"), {"username": "A user with that username already exists."}),
        (
            new_user("a<b", emailAddress="ab@example.test"),
            {"username": "The username must not contain '<', '>' or '&'."},
        ),
        (
            new_user("x" * 256, emailAddress="x@example.test"),
            {"username": "The username must not exceed 255 characters in length."},
        ),
        ({"emailAddress": "a@b.test", "displayName": "A"}, {"username": "You must specify a username."}),
        (new_user(emailAddress="not-an-email"), {"email": "You must specify a valid email address."}),
        (
            {"name": "amara.k"},
            {"email": "You must specify an email address.", "displayName": "You must specify a full name."},
        ),
    ],
)
def test_create_user_validation(
    sim: JiraSim, jira: Jira, body: dict[str, Any], errors: dict[str, str]
) -> None:
    answer = jira("POST", "/user", json=body)
    assert (answer.status_code, answer.json()) == (400, {"errorMessages": [], "errors": errors})
    assert len(sim.directory.users) == 1


def test_create_user_refuses_bad_bodies(jira: Jira) -> None:
    assert jira("POST", "/user", json=new_user(accountId="x")).status_code == 400  # unknown field
    assert jira("POST", "/user", json=new_user(applicationKeys=["jira-nope"])).status_code == 400
    assert jira("POST", "/user", json=new_user(notification="maybe")).status_code == 400
    assert jira("POST", "/user", json=["amara"]).status_code == 400
    assert (
        jira("POST", "/user", data="{not json", headers={"Content-Type": "application/json"}).status_code
        == 400
    )
    assert jira("POST", "/user", data={"name": "amara"}).status_code == 415


def test_get_user_lookup_rules_and_expand(sim: JiraSim, jira: Jira) -> None:
    key = sim.add_user("Mixed.Case", "m@example.test", "Mixed Case", groups=("team-a",), read_only=True)
    sim.add_group("team-a", parent="engineering")
    plain = jira("GET", "/user", params={"username": "mixed.case"}).json()
    assert (plain["name"], plain["key"]) == ("Mixed.Case", key)
    assert plain["groups"] == {"size": 2, "items": []}  # items only with expand (§1.2)
    full = jira("GET", "/user", params={"key": key, "expand": "groups,applicationRoles"}).json()
    assert [g["name"] for g in full["groups"]["items"]] == ["engineering", "team-a"]  # inherited too
    assert full["applicationRoles"] == {"size": 0, "items": []}
    admin = jira("GET", "/user", params={"username": "admin", "expand": "applicationRoles"}).json()
    assert admin["applicationRoles"]["items"] == [{"key": "jira-software", "name": "Jira Software"}]
    missing = jira("GET", "/user", params={"username": "ghost"})
    assert (missing.status_code, missing.json()["errorMessages"]) == (
        404,
        ["The user named 'ghost' does not exist"],
    )
    assert jira("GET", "/user").status_code == 400
    assert jira("GET", "/user", params={"username": "admin", "key": "JIRAUSER10000"}).status_code == 400


def test_rename_keeps_the_key(sim: JiraSim, jira: Jira) -> None:
    key = sim.add_user("amara.k", "a@example.test", "Amara K")
    sim.add_user("bruno", "b@example.test", "Bruno R")
    renamed = jira("PUT", "/user", params={"username": "AMARA.K"}, json={"name": "amara.kowalski"})
    assert renamed.status_code == 200 and renamed.json()["key"] == key
    assert jira("GET", "/user", params={"username": "amara.k"}).status_code == 404
    assert jira("GET", "/user", params={"key": key}).json()["name"] == "amara.kowalski"
    clash = jira("PUT", "/user", params={"key": key}, json={"name": "bruno"})
    assert clash.json()["errors"] == {"username": "A user with that username already exists."}
    update = jira("PUT", "/user", params={"key": key}, json={"emailAddress": "new@example.test"}).json()
    assert (update["emailAddress"], update["displayName"]) == ("new@example.test", "Amara K")


def test_deactivate_and_reactivate(sim: JiraSim, jira: Jira) -> None:
    sim.add_user("amara.k", "a@example.test", "Amara K")
    off = jira("PUT", "/user", params={"username": "amara.k"}, json={"active": "false"})
    assert off.status_code == 200 and off.json()["active"] is False
    assert (
        jira("PUT", "/user", params={"username": "amara.k"}, json={"active": True}).json()["active"] is True
    )
    me = jira("PUT", "/user", params={"username": "admin"}, json={"active": False})
    assert (me.status_code, me.json()["errors"]) == (400, {"active": "You cannot deactivate yourself."})


def test_deactivate_before_8_3_is_refused() -> None:
    sim = JiraSim("8.2.0")
    sim.add_user("amara.k", "a@example.test", "Amara K")
    with serve(sim) as jira:
        answer = jira.as_(auth=("admin", "admin"))(
            "PUT", "/user", params={"username": "amara.k"}, json={"active": False}
        )
    assert answer.status_code == 400 and sim.user("amara.k")["active"] is True  # type: ignore[index]


def test_read_only_directory_users_cannot_change(sim: JiraSim, jira: Jira) -> None:
    sim.add_user("ldap.user", "l@example.test", "LDAP User", read_only=True)
    update = jira("PUT", "/user", params={"username": "ldap.user"}, json={"displayName": "X"})
    assert (update.status_code, update.json()["errorMessages"]) == (
        400,
        ["User 'ldap.user' belongs to a read-only directory and cannot be updated."],
    )
    delete = jira("DELETE", "/user", params={"username": "ldap.user"})
    assert delete.json()["errorMessages"] == [
        "User 'ldap.user' belongs to a read-only directory and cannot be deleted."
    ]
    # "Read only, with local groups": memberships of local groups still change (§1.12).
    assert jira("POST", "/group/user", params={"groupname": "jira-core-users"}, json={"name": "ldap.user"}).ok


def test_read_only_refusals_can_be_403() -> None:
    # §1.5 steps 3-5 surface as 400 over REST [U]; a strict Jira may answer 403 instead.
    sim = JiraSim(read_only_status=403)
    sim.add_user("ldap.user", "l@example.test", "LDAP User", read_only=True)
    with serve(sim) as jira:
        update = jira("PUT", "/user", params={"username": "ldap.user"}, json={"displayName": "X"})
        delete = jira("DELETE", "/user", params={"username": "ldap.user"})
    assert (update.status_code, update.json()["errorMessages"]) == (
        403,
        ["User 'ldap.user' belongs to a read-only directory and cannot be updated."],
    )
    assert delete.status_code == 403 and sim.user("ldap.user") is not None
    with pytest.raises(ValueError, match="400 or 403"):
        JiraSim(read_only_status=401)


def test_delete_user(sim: JiraSim, jira: Jira) -> None:
    sim.add_user("amara.k", "a@example.test", "Amara K", groups=("jira-software-users",))
    assert jira("DELETE", "/user", params={"username": "amara.k"}).status_code == 204
    assert sim.user("amara.k") is None and "amara.k" not in sim.members("jira-software-users")
    assert jira("DELETE", "/user", params={"username": "amara.k"}).status_code == 404
    assert jira("DELETE", "/user", params={"username": "admin"}).status_code == 400


def test_user_list_pages_by_cursor(sim: JiraSim, jira: Jira) -> None:
    for i in range(2100):
        sim.add_user(f"user{i:04}", f"u{i}@example.test", f"User {i}", active=i % 7 != 0)
    first = jira("GET", "/user/list", params={"maxResults": 5000}).json()
    assert (first["maxResults"], first["isLast"], len(first["values"])) == (2000, False, 2000)
    assert "groups" not in first["values"][0]
    assert (
        first["nextPage"] == f"{jira.url}/rest/api/2/user/list?cursor={first['nextCursor']}&maxResults=2000"
    )
    second = jira("GET", "/user/list", params={"cursor": first["nextCursor"]}).json()
    assert second["isLast"] is True and "nextCursor" not in second
    names = [u["name"] for u in first["values"] + second["values"]]
    assert len(names) == len(set(names)) == 2101  # inactive users too, never twice
    assert jira("GET", "/user/list", params={"cursor": "garbage"}).status_code == 400


def test_user_list_is_not_there_before_10_3() -> None:
    with serve(JiraSim("9.12.2")) as jira:
        assert jira("GET", "/user/list").status_code == 404


@pytest.mark.parametrize(("version", "cap"), [("9.12.2", 1000), ("10.3.1", 100)])
def test_user_search_truncates_before_start_at(version: str, cap: int) -> None:
    sim = JiraSim(version)
    for i in range(1200):
        sim.add_user(f"user{i:04}", f"u{i}@example.test", f"User {i}")
    with serve(sim) as jira:

        def search(**params: Any) -> list[dict[str, Any]]:
            answer = jira("GET", "/user/search", params={"username": ".", **params})
            assert isinstance(answer.json(), list)  # a bare array, no envelope
            return answer.json()  # type: ignore[no-any-return]

        assert len(search()) == 50
        assert len(search(startAt=cap - 10, maxResults=50)) == 10
        assert search(startAt=cap) == []
        everyone = ["admin", *(f"user{i:04}" for i in range(1200))]  # in creation order
        assert [u["name"] for u in search(maxResults=5000)] == everyone[:cap]  # maxResults <= 1000
        assert jira("GET", "/user/search").status_code == 400


def test_user_search_orders_by_creation_not_by_username(sim: JiraSim, jira: Jira) -> None:
    # §1.7 documents no order; username order would put a short name first in every
    # window and hide the users a connector misses when a window is cut.
    for name in ("zoe", "Mike", "abe"):
        sim.add_user(name, f"{name}@example.test", name.title())
    found = jira("GET", "/user/search", params={"username": "."}).json()
    assert [u["name"] for u in found] == ["admin", "zoe", "Mike", "abe"]


@pytest.mark.parametrize(("version", "count"), [("10.1.0", 150), ("9.12.2", 1100)])
def test_a_cut_window_can_hide_a_user_whose_username_equals_the_query(version: str, count: int) -> None:
    # The miss a connector must handle (§1.7, §7): "jo" is created last, so the cut window
    # of "jo" does not hold it, and no longer query finds it by username ("jo+" only by
    # its email, and '+' is in no fixed alphabet): only GET /user?username=jo does.
    sim = JiraSim(version)
    for i in range(count):
        sim.add_user(f"jo{i:04}", f"jo{i:04}@x.test", f"Jo {i}")
    sim.add_user("jo", "jo+jira@x.test", "Jo")
    with serve(sim) as jira:

        def names(text: str) -> list[str]:
            answer = jira("GET", "/user/search", params={"username": text, "maxResults": 1000})
            return [u["name"] for u in answer.json()]

        window = names("jo")
        assert len(window) == (100 if version.startswith("10.") else 1000) and "jo" not in window
        assert all("jo" not in names("jo" + c) for c in "abcdefghijklmnopqrstuvwxyz0123456789._-@")
        assert names("jo+") == ["jo"]
        assert jira("GET", "/user", params={"username": "jo"}).json()["emailAddress"] == "jo+jira@x.test"


def test_user_search_matching_and_activity_filters(sim: JiraSim, jira: Jira) -> None:
    sim.add_user("amara.k", "amara@corp.test", "Amara Kowalski")
    sim.add_user("old.timer", "ot@corp.test", "Kowalski Senior", active=False)

    def names(**params: Any) -> list[str]:
        return [u["name"] for u in jira("GET", "/user/search", params=params).json()]

    assert names(username="KOWAL") == ["amara.k"]  # a word of the display name, any case
    assert names(username="kowal", includeInactive="true") == ["amara.k", "old.timer"]
    assert names(username="kowal", includeActive="false", includeInactive="true") == ["old.timer"]
    assert names(username="ot@") == []  # the email needs includeInactive for an inactive user
    assert names(username="amara@corp") == ["amara.k"]
    assert names(username="owalski") == []  # prefix match only


# -- groups --------------------------------------------------------------------


def test_group_member_pages_nested_and_inactive(sim: JiraSim, jira: Jira) -> None:
    sim.add_group("Engineering")
    for i in range(60):
        sim.add_user(f"dev{i:02}", f"d{i}@example.test", f"Dev {i}", active=i >= 5, groups=("Backend",))
    sim.add_group("backend", parent="ENGINEERING")
    sim.add_user("lead", "lead@example.test", "Lead", groups=("Engineering",))

    def page(**params: Any) -> dict[str, Any]:
        answer = jira("GET", "/group/member", params={"groupname": "engineering", **params})
        return answer.json()  # type: ignore[no-any-return]

    first = page(maxResults=500)
    assert (first["maxResults"], first["startAt"], first["total"], first["isLast"]) == (50, 0, 56, False)
    assert "includeInactiveUsers=false&startAt=50&maxResults=50" in first["nextPage"]
    last = page(startAt=50)
    assert last["isLast"] is True and "nextPage" not in last and len(last["values"]) == 6
    assert page(includeInactiveUsers="true")["total"] == 61
    assert sim.members("engineering") == {"lead"} and len(sim.members("Engineering", nested=True)) == 61
    missing = jira("GET", "/group/member", params={"groupname": "nope"})
    assert (missing.status_code, missing.json()["errorMessages"]) == (
        404,
        ["Group with name 'nope' does not exist."],
    )


def test_create_and_delete_group(sim: JiraSim, jira: Jira) -> None:
    created = jira("POST", "/group", json={"name": "Team-Alpha"})
    assert created.status_code == 201
    assert created.json()["name"] == "Team-Alpha" and created.json()["users"]["size"] == 0
    dup = jira("POST", "/group", json={"name": "team-alpha"})
    assert (dup.status_code, dup.json()) == (
        400,
        {"errorMessages": [], "errors": {"groupName": "A group or user with this name already exists."}},
    )
    assert "Team-Alpha" in sim.group_names()
    assert jira("DELETE", "/group", params={"groupname": "TEAM-ALPHA"}).status_code == 200
    assert jira("DELETE", "/group", params={"groupname": "team-alpha"}).status_code == 404


def test_add_member_errors_use_jira_wording(sim: JiraSim, jira: Jira) -> None:
    sim.add_user("amara.k", "a@example.test", "Amara K")
    sim.add_group("child", members=("amara.k",), parent="parent")

    def add(group: str, name: str) -> requests.Response:
        return jira("POST", "/group/user", params={"groupname": group}, json={"name": name})

    first = add("PARENT", "amara.k")  # a nested member can still be added directly
    assert first.status_code == 201 and first.json()["name"] == "parent"
    assert add("parent", "amara.k").json()["errorMessages"] == [
        "Cannot add user 'amara.k', user is already a member of 'parent'"
    ]
    assert add("parent", "ghost").json()["errorMessages"] == ["Cannot add user. 'ghost' does not exist"]
    assert add("nope", "amara.k").status_code == 404
    assert (
        jira("POST", "/group/user", params={"groupname": "parent"}, json={"user": "amara.k"}).status_code
        == 400
    )


def test_remove_member(sim: JiraSim, jira: Jira) -> None:
    sim.add_user("amara.k", "a@example.test", "Amara K", groups=("team",))

    def remove(group: str, name: str) -> requests.Response:
        return jira("DELETE", "/group/user", params={"groupname": group, "username": name})

    assert remove("TEAM", "Amara.K").status_code == 200 and sim.members("team") == set()
    again = remove("team", "amara.k")
    assert (again.status_code, again.json()["errorMessages"]) == (
        400,
        ["Cannot remove user 'amara.k' from group 'team'. User is not a member of the group."],
    )
    assert remove("team", "ghost").status_code == 404
    assert remove("nope", "amara.k").status_code == 404


def test_group_picker_is_capped_by_the_autocomplete_limit(sim: JiraSim, jira: Jira) -> None:
    for i in range(30):
        sim.add_group(f"team-{i:02}")
    picked = jira("GET", "/groups/picker", params={"query": "TEAM", "maxResults": 100}).json()
    assert picked["header"] == "Showing 20 of 30 matching groups" and picked["total"] == 30
    assert picked["groups"][0] == {"name": "team-00", "html": "<b>team</b>-00", "labels": []}
    assert len(jira("GET", "/groups/picker", params={"query": "", "maxResults": 3}).json()["groups"]) == 3


def test_application_roles(jira: Jira) -> None:
    roles = {r["key"]: r for r in jira("GET", "/applicationrole").json()}
    software = roles["jira-software"]
    assert software["groups"] == ["jira-software-users", "jira-administrators"]
    assert (software["defaultGroups"], software["selectedByDefault"]) == (["jira-software-users"], True)
    assert roles["jira-core"]["selectedByDefault"] is False
    assert jira("GET", "/applicationrole/jira-core").json()["defaultGroups"] == ["jira-core-users"]
    assert jira("GET", "/applicationrole/jira-nope").status_code == 404


# -- rate limiting, faults, request log -------------------------------------------


def test_token_bucket_rate_limit() -> None:
    now = [100.0]
    with serve(JiraSim(rate_limit=(2, 1.0), clock=lambda: now[0])) as jira:
        first, second, third = (jira("GET", "/myself") for _ in range(3))
        assert [r.status_code for r in (first, second, third)] == [200, 200, 429]
        assert [first.headers[h] for h in RATE_HEADERS] == ["2", "1", "1", "1", "0"]
        assert (second.headers["X-RateLimit-Remaining"], second.headers["retry-after"]) == ("0", "1")
        assert third.headers["retry-after"] == "1"
        now[0] += 1.0
        assert jira("GET", "/myself").status_code == 200
        assert "X-RateLimit-Limit" not in jira.as_(token=None)("GET", "/serverInfo").headers


def test_injected_errors_do_not_reach_the_app(sim: JiraSim, jira: Jira) -> None:
    sim.faults.inject(503, count=2, method="POST", path="/rest/api/2/group")
    assert jira("GET", "/myself").status_code == 200  # another method: untouched
    for _ in range(2):
        answer = jira("POST", "/group", json={"name": "team"})
        assert answer.status_code == 503 and answer.json()["errorMessages"]
    assert "team" not in sim.group_names()
    assert jira("POST", "/group", json={"name": "team"}).status_code == 201
    sim.faults.inject(400, body={"errorMessages": ["custom"], "errors": {}})
    assert jira("GET", "/myself").json() == {"errorMessages": ["custom"], "errors": {}}


def test_rate_limit_fault_sends_the_five_headers(sim: JiraSim, jira: Jira) -> None:
    sim.faults.rate_limit(1, retry_after=7)
    limited = jira("GET", "/myself")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert limited.headers["X-RateLimit-Remaining"] == "0" and all(h in limited.headers for h in RATE_HEADERS)
    assert jira("GET", "/myself").status_code == 200


def test_dropped_connection_before_the_app(sim: JiraSim, jira: Jira) -> None:
    sim.faults.drop(method="POST")
    with pytest.raises(requests.ConnectionError):
        jira("POST", "/group", json={"name": "team"})
    assert "team" not in sim.group_names()
    assert jira("POST", "/group", json={"name": "team"}).status_code == 201  # the same session goes on


def test_dropped_connection_after_the_app_applied_the_write(sim: JiraSim, jira: Jira) -> None:
    sim.faults.drop(path="/rest/api/2/group", after_app=True)
    with pytest.raises(requests.ConnectionError):
        jira("POST", "/group", json={"name": "team"})
    assert "team" in sim.group_names()  # the change happened: a blind retry would get a 400
    assert jira("POST", "/group", json={"name": "team"}).status_code == 400


def test_request_log(sim: JiraSim, jira: Jira) -> None:
    jira("GET", "/user", params={"username": "admin"})
    jira("POST", "/group", json={"name": "team"})
    sim.faults.drop()
    with pytest.raises(requests.ConnectionError):
        jira("DELETE", "/group", params={"groupname": "team"})
    assert sim.log.entries == [
        LoggedRequest("GET", "/rest/api/2/user", {"username": "admin"}, 200, None),
        LoggedRequest("POST", "/rest/api/2/group", {}, 201, {"name": "team"}),
        LoggedRequest("DELETE", "/rest/api/2/group", {"groupname": "team"}, DROPPED, None),
    ]
    assert [e.method for e in sim.log.writes()] == ["POST", "DELETE"]
    assert sim.log.count("post", "/rest/api/2/group") == 1 and sim.log.count(path="/rest/api/2/user") == 1
    sim.log.clear()
    assert sim.log.entries == []


def test_seeding_and_inspection_api(sim: JiraSim) -> None:
    assert sim.user("JIRAUSER10000")["name"] == "admin"  # type: ignore[index]
    assert sim.group_names() >= {"jira-software-users", "jira-administrators", "jira-core-users"}
    assert sim.members("jira-administrators") == {"admin"}
    key = sim.add_user("amara.k", "a@example.test", "Amara K", groups=("new-group",))
    sim.update_user(key, name="amara.kowalski", displayName="Amara Kowalski", active=False)
    bean = sim.user("Amara.Kowalski")
    assert bean is not None and (bean["key"], bean["active"]) == (key, False)
    assert bean["groups"]["items"][0]["name"] == "new-group"
    with pytest.raises(ValueError, match="already exists"):
        sim.add_user("AMARA.KOWALSKI", "x@example.test", "X")
    with pytest.raises(KeyError):
        sim.members("nope")


def test_parallel_writes_are_consistent(sim: JiraSim, jira: Jira) -> None:
    names = [f"user{i:03}" for i in range(80)]
    for name in names:
        sim.add_user(name, f"{name}@example.test", name.title())

    def add(name: str) -> int:
        with requests.Session() as session:
            answer = session.post(
                f"{jira.url}/rest/api/2/group/user",
                params={"groupname": "jira-core-users"},
                json={"name": name},
                headers={"Authorization": f"Bearer {TOKEN}"},
                timeout=10,
            )
            return answer.status_code

    with ThreadPoolExecutor(max_workers=8) as pool:
        statuses = list(pool.map(add, names + names[:10]))
    assert statuses.count(201) == 80 and statuses.count(400) == 10
    assert sim.members("jira-core-users") == set(names)
    assert sim.log.count("POST", "/rest/api/2/group/user") == 90
