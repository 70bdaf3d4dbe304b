"""The Confluence DC simulator over a loopback socket, checked against reference §2 with plain requests."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any
from xml.etree import ElementTree

import pytest
import requests

from scimsync.sim.confluence import ConfluenceSim
from scimsync.sim.faults import DROPPED, LoggedRequest
from scimsync.sim.server import SimServer

ADMIN = ("admin", "admin")
TOKEN = "sim-confluence-token"
RATE_HEADERS = (
    "X-RateLimit-Limit",
    "X-RateLimit-Remaining",
    "X-RateLimit-Interval-Seconds",
    "X-RateLimit-FillRate",
    "retry-after",
)


def error(status: int, reason: str, message: str) -> dict[str, Any]:
    """Return the §2.8 body of a non-validation error."""
    data = {
        "authorized": False,
        "valid": True,
        "allowedInReadOnlyMode": True,
        "errors": [],
        "successful": False,
    }
    return {"statusCode": status, "data": data, "message": message, "reason": reason}


NOT_AUTHENTICATED = error(401, "Unauthorized", "Authentication required: no valid credentials were given.")


class Conf:
    """A tiny REST client: ``/rest/api`` + path, basic auth as the administrator unless told otherwise."""

    def __init__(self, url: str, auth: Any = ADMIN, token: str | None = None) -> None:
        self.url = url
        self._others: list[Conf] = []
        self.session = requests.Session()
        if token is not None:
            self.session.headers["Authorization"] = f"Bearer {token}"
        elif auth is not None:
            self.session.auth = auth

    def __call__(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        return self.session.request(method, f"{self.url}/rest/api{path}", timeout=10, **kwargs)

    def as_(self, *, auth: Any = None, token: str | None = None) -> Conf:
        """Return a client with other credentials (closed with this one)."""
        other = Conf(self.url, auth, token)
        self._others.append(other)
        return other

    def walk(self, path: str, **params: Any) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """Follow ``_links.next`` (relative to ``_links.base``) to the end; return items and pages."""
        pages = [self("GET", path, params=params).json()]
        while "next" in pages[-1]["_links"]:
            links = pages[-1]["_links"]
            pages.append(self.session.get(links["base"] + links["next"], timeout=10).json())
            assert len(pages) < 100
        return [item for p in pages for item in p["results"]], pages

    def close(self) -> None:
        """Close this session and those of the clients made from it."""
        for other in self._others:
            other.close()
        self.session.close()


@contextmanager
def serve(sim: ConfluenceSim, prefix: str = "/confluence") -> Iterator[Conf]:
    """Serve ``sim`` under a context path and yield an administrator's client."""
    with SimServer(sim.app, prefix=prefix) as server:
        client = Conf(server.url)
        try:
            yield client
        finally:
            client.close()


@pytest.fixture
def sim() -> ConfluenceSim:
    return ConfluenceSim()


@pytest.fixture
def conf(sim: ConfluenceSim) -> Iterator[Conf]:
    with serve(sim) as client:
        yield client


def new_user(name: str = "amara.k", **extra: Any) -> dict[str, Any]:
    body = {"userName": name, "fullName": "Amara K", "email": f"{name}@example.test", "password": "S3cret!"}
    return {**body, **extra}


# -- versions, discovery, routing ---------------------------------------------------


@pytest.mark.parametrize("version", ["7.19.2", "8.2.0", "8.5.6", "9.2.1", "9.4.0", "10.0.1", "7.0", "8.4"])
def test_supported_versions(version: str) -> None:
    assert ConfluenceSim(version).version == version


@pytest.mark.parametrize("version", ["6.15.10", "11.0.0", "5.9", "nine", "9", "9.2.1-beta"])
def test_other_versions_are_refused(version: str) -> None:
    with pytest.raises(ValueError, match="Confluence"):
        ConfluenceSim(version)


@pytest.mark.parametrize(("version", "build"), [("7.19.2", 7190002), ("10.0.1", 10000001), ("8.4", 8040000)])
def test_applinks_manifest_in_xml_and_json(version: str, build: int) -> None:
    with serve(ConfluenceSim(version)) as conf:
        url = f"{conf.url}/rest/applinks/1.0/manifest"
        xml = requests.get(url, timeout=10)  # anonymous, XML by default (§2.1a)
        asked = requests.get(url, headers={"Accept": "application/json"}, timeout=10)
    assert xml.status_code == 200 and xml.headers["Content-Type"].startswith("application/xml")
    root = ElementTree.fromstring(xml.content)
    assert root.tag == "manifest"
    assert (root.findtext("typeId"), root.findtext("buildNumber")) == ("confluence", str(build))
    assert root.findtext("version") == ".".join([*version.split("."), "0"][:3])
    data = asked.json()
    assert asked.headers["Content-Type"].startswith("application/json")
    assert (data["typeId"], data["version"], data["buildNumber"]) == (
        "confluence",
        root.findtext("version"),
        build,
    )
    assert data["name"] == "Confluence" and data["id"] == root.findtext("id") and data["id"]
    assert data["url"] == conf.url


def test_context_path_unknown_route_and_wrong_method(conf: Conf) -> None:
    assert conf.url.endswith("/confluence")
    outside = requests.get(conf.url.removesuffix("/confluence") + "/rest/api/user/current", timeout=10)
    assert outside.status_code == 404
    assert conf("GET", "/user/current").json()["username"] == "admin"
    unknown = conf("GET", "/nothing")
    assert (unknown.status_code, unknown.json()) == (
        404,
        error(404, "Not Found", f"null for uri: {conf.url}/rest/api/nothing"),
    )
    ghost = conf("GET", "/user", params={"username": "ghost"})  # told apart by its body (§2.1a)
    assert (ghost.status_code, ghost.json()) == (
        404,
        error(404, "Not Found", "No user found with username: ghost"),
    )
    wrong = conf("PATCH", "/group")
    assert (wrong.status_code, wrong.json()["statusCode"], wrong.headers["Allow"]) == (405, 405, "GET, HEAD")


# Each versioned route (§2.2), the version that introduced it, and a request for it.
GATED = [
    ("PUT", "/admin/user/amara.k/disable", (8, 2), None),
    ("PUT", "/admin/user/amara.k/enable", (8, 2), None),
    ("POST", "/admin/group", (8, 2), {"name": "new-team"}),
    ("PUT", "/user/amara.k/group/team", (8, 2), None),
    ("DELETE", "/user/amara.k/group/team", (8, 2), None),
    ("DELETE", "/admin/group/team", (8, 2), None),
    ("POST", "/admin/user", (8, 4), new_user("bruno")),
    ("POST", "/admin/user/amara.k/password", (8, 4), {"password": "n3w"}),
    ("GET", "/user/list", (8, 4), None),
    ("GET", "/admin/users/list/active", (9, 3), None),
    ("PUT", "/admin/user/amara.k", (10, 0), {"email": "a@example.test", "fullName": "A"}),
    ("DELETE", "/admin/user/amara.k", (8, 2), None),
]


@pytest.mark.parametrize("version", ["7.19.2", "8.2.0", "8.5.6", "9.2.1", "9.4.0", "10.0.1"])
def test_routes_answer_from_the_version_that_introduced_them(version: str) -> None:
    sim = ConfluenceSim(version)
    sim.add_user("amara.k", "a@example.test", "Amara K", groups=("team",))
    numbers = tuple(int(n) for n in version.split("."))
    with serve(sim) as conf:
        for method, path, since, body in GATED:
            answer = conf(method, path, json=body)
            missing = answer.status_code == 404 and answer.json()["message"].startswith("null for uri")
            assert missing == (numbers < since), (version, method, path, answer.status_code)
            if numbers >= since:
                assert answer.status_code < 300, (version, method, path, answer.text)


# -- authentication and permissions ---------------------------------------------------


def test_basic_pat_and_bad_credentials(sim: ConfluenceSim, conf: Conf) -> None:
    assert conf.as_(token=TOKEN)("GET", "/user/current").json()["username"] == "admin"
    assert conf.as_(auth=("ADMIN", "admin"))("GET", "/user/current").status_code == 200  # names ignore case
    for client in (
        conf.as_(),
        conf.as_(token="wrong"),
        conf.as_(auth=("admin", "nope")),
        conf.as_(auth=("ghost", "admin")),
    ):
        answer = client("GET", "/user/current")
        assert (answer.status_code, answer.json()) == (401, NOT_AUTHENTICATED)
    garbled = conf.as_()("GET", "/user/current", headers={"Authorization": "Basic !!!"})
    assert garbled.status_code == 401
    assert conf.as_(auth=("admin", "nope"))("GET", "/group").status_code == 401


@pytest.mark.parametrize(("version", "pat"), [("7.8.3", False), ("7.9.0", True), ("7.19.2", True)])
def test_pat_only_from_7_9(version: str, pat: bool) -> None:
    with serve(ConfluenceSim(version)) as conf:
        bearer = conf.as_(token=TOKEN)("GET", "/user/current")
        assert bearer.status_code == (200 if pat else 401)  # before 7.9 the Bearer header means nothing
        assert conf("GET", "/user/current").status_code == 200


def test_non_admin_reads_but_gets_403_on_admin_endpoints(sim: ConfluenceSim, conf: Conf) -> None:
    sim.add_user("amara.k", "a@example.test", "Amara K", groups=("team",))
    sim.add_account("viewer", "pw")
    viewer = conf.as_(auth=("viewer", "pw"))
    for path, params in [
        ("/user/current", {}),
        ("/user", {"username": "admin"}),
        ("/user/memberof", {"username": "admin"}),
        ("/user/list", {}),
        ("/group", {}),
        ("/group/team", {}),
        ("/group/team/member", {}),
    ]:
        assert viewer("GET", path, params=params).status_code == 200, path
    for method, path, body in [
        ("POST", "/admin/user", new_user("bruno")),
        ("PUT", "/admin/user/amara.k/disable", None),
        ("DELETE", "/admin/user/amara.k", None),
        ("POST", "/admin/group", {"name": "x"}),
        ("DELETE", "/admin/group/team", None),
        ("PUT", "/user/viewer/group/confluence-administrators", None),
        ("DELETE", "/user/amara.k/group/team", None),
    ]:
        answer = viewer(method, path, json=body)
        assert (answer.status_code, answer.json()["reason"]) == (403, "Forbidden"), (method, path)
    state = sim.user("amara.k")
    assert state is not None and state["active"] and state["groups"] == ["team"]
    assert sim.user("bruno") is None and sim.group_names() == {
        "confluence-users",
        "confluence-administrators",
        "team",
    }
    assert "viewer" not in sim.members("confluence-administrators")


def test_disabled_account_cannot_log_in(sim: ConfluenceSim, conf: Conf) -> None:
    sim.add_account("bot", "pw", "bot-pat", admin=True)
    assert conf.as_(token="bot-pat")("GET", "/user/current").status_code == 200
    sim.update_user("bot", active=False)
    assert conf.as_(token="bot-pat")("GET", "/user/current").status_code == 401
    assert conf.as_(auth=("bot", "pw"))("GET", "/user/current").status_code == 401


# -- reading users ---------------------------------------------------------------------


def test_get_user_by_username_or_key_with_status(sim: ConfluenceSim, conf: Conf) -> None:
    key = sim.add_user("Mixed.Case", "m@example.test", "Mixed Case", active=False)
    plain = conf("GET", "/user", params={"username": "mixed.case"}).json()
    assert (plain["username"], plain["userKey"], plain["displayName"]) == ("Mixed.Case", key, "Mixed Case")
    assert plain["type"] == "known" and "status" not in plain and "email" not in plain  # no email before 10.0
    by_key = conf("GET", "/user", params={"key": key, "expand": "status"}).json()
    assert by_key["status"] == "Deactivated" and by_key["username"] == "Mixed.Case"
    me = conf("GET", "/user/current", params={"expand": "status"}).json()
    assert me["status"] == "Active" and len(me["userKey"]) == 32
    missing = conf("GET", "/user", params={"key": "nope"})
    assert (missing.status_code, missing.json()["message"]) == (404, "No user found with key: nope")
    assert conf("GET", "/user").status_code == 400
    assert conf("GET", "/user", params={"username": "admin", "key": key}).status_code == 400


@pytest.mark.parametrize("version", ["9.4.0", "10.0.1"])
def test_emails_only_from_10_0_and_only_for_administrators(version: str) -> None:
    sim = ConfluenceSim(version)
    sim.add_user("amara.k", "amara@example.test", "Amara K", groups=("team",))
    sim.add_account("viewer", "pw")
    with serve(sim) as conf:
        viewer = conf.as_(auth=("viewer", "pw"))
        seen = [
            conf("GET", "/user", params={"username": "amara.k"}).json(),
            conf("GET", "/group/team/member").json()["results"][0],
            conf("GET", "/user/list").json()["results"][1],
        ]
        hidden = [viewer("GET", "/user", params={"username": "amara.k"}).json()]
        hidden.append(viewer("GET", "/group/team/member").json()["results"][0])
    expected = "amara@example.test" if version.startswith("10.") else None
    assert [bean.get("email") for bean in seen] == [expected] * 3
    assert [bean.get("email") for bean in hidden] == [None, None]


def test_member_of_pages_the_groups_of_a_user(sim: ConfluenceSim, conf: Conf) -> None:
    names = [f"team-{i:03}" for i in range(205)]
    sim.add_user("amara.k", "a@example.test", "Amara K", groups=names)
    groups, pages = conf.walk("/user/memberof", username="AMARA.K", limit=500)
    assert [p["limit"] for p in pages] == [200, 200] and [p["size"] for p in pages] == [200, 5]
    assert [g["name"] for g in groups] == names and groups[0]["type"] == "group"
    assert conf("GET", "/user/memberof", params={"username": "ghost"}).status_code == 404


def test_user_list_pages_every_user_including_disabled(sim: ConfluenceSim, conf: Conf) -> None:
    for i in range(449):
        sim.add_user(f"user{i:03}", f"u{i}@example.test", f"User {i}", active=i % 5 != 0)
    first = conf("GET", "/user/list").json()
    assert (first["start"], first["limit"], first["size"]) == (0, 100, 100)  # the default limit (§2.6)
    assert first["_links"]["next"] == "/rest/api/user/list?limit=100&start=100"
    assert first["_links"]["context"] == "/confluence" and first["_links"]["base"] == conf.url
    users, pages = conf.walk("/user/list", limit=1000, expand="status")
    assert [(p["start"], p["limit"], p["size"]) for p in pages] == [
        (0, 200, 200),
        (200, 200, 200),
        (400, 200, 50),
    ]
    assert "expand=status" in pages[0]["_links"]["next"] and "next" not in pages[-1]["_links"]
    names = [u["username"] for u in users]
    assert names == ["admin", *(f"user{i:03}" for i in range(449))]  # creation order, none twice
    assert sum(u["status"] == "Deactivated" for u in users) == 90
    exact = conf("GET", "/user/list", params={"start": 350, "limit": 100}).json()
    assert exact["size"] == 100 and "next" not in exact["_links"]  # nothing after: no next link
    beyond = conf("GET", "/user/list", params={"start": 5000}).json()
    assert (beyond["results"], beyond["size"]) == ([], 0)


@pytest.mark.parametrize(
    "params", [{"start": -1}, {"limit": 0}, {"limit": -5}, {"limit": "ten"}, {"start": "x"}]
)
def test_bad_paging_arguments_are_400(conf: Conf, params: dict[str, Any]) -> None:
    for path in ("/user/list", "/group", "/group/confluence-users/member"):
        answer = conf("GET", path, params=params)
        assert (answer.status_code, answer.json()["statusCode"]) == (400, 400), path


def test_active_users_list_holds_licensed_active_users_only() -> None:
    sim = ConfluenceSim("9.4.0")
    sim.add_account("viewer", "pw")
    sim.add_user("amara.k", "a@example.test", "Amara K", groups=("confluence-users",))
    sim.add_user("gone", "g@example.test", "Gone", active=False, groups=("confluence-users",))
    sim.add_user("outsider", "o@example.test", "Outsider", groups=("team",))  # no "can use" group
    for i in range(250):
        sim.add_user(f"user{i:03}", f"u{i}@example.test", f"User {i}", groups=("confluence-users",))
    with serve(sim) as conf:
        users, pages = conf.walk("/admin/users/list/active", limit=300)
        assert conf.as_(auth=("viewer", "pw"))("GET", "/admin/users/list/active").status_code == 403
    assert [p["limit"] for p in pages] == [200, 200]
    names = {u["username"] for u in users}
    assert len(users) == len(names) == 253 and {"admin", "amara.k", "viewer"} <= names
    assert not names & {"gone", "outsider"}


# -- creating users ----------------------------------------------------------------------


def test_create_user(sim: ConfluenceSim, conf: Conf) -> None:
    answer = conf("POST", "/admin/user", json=new_user(notifyViaEmail=False))
    assert answer.status_code == 201 and set(answer.json()) == {"userKey"}
    key = answer.json()["userKey"]
    assert sim.user(key) == {
        "username": "amara.k",
        "userKey": key,
        "email": "amara.k@example.test",
        "display_name": "Amara K",
        "active": True,
        "groups": ["confluence-users"],  # the default user group
        "read_only": False,
    }
    assert conf.as_(auth=("amara.k", "S3cret!"))("GET", "/user/current").json()["userKey"] == key
    invited = new_user("bruno", notifyViaEmail=True)
    del invited["password"]
    assert conf("POST", "/admin/user", json=invited).status_code == 201
    assert conf.as_(auth=("bruno", ""))("GET", "/user/current").status_code == 401  # no password yet


def without(body: dict[str, Any], name: str) -> dict[str, Any]:
    return {k: v for k, v in body.items() if k != name}


@pytest.mark.parametrize(
    ("body", "problem"),
    [
        (new_user("Amara.K"), "userName must not contain upper-case letters."),
        (new_user("amara k"), "userName must not contain whitespace."),
        (new_user("amara\tk"), "userName must not contain whitespace."),
        *((new_user(f"a{c}b"), "userName must not contain any of \\ , + < > ' \".") for c in "\\,+<>'\""),
        (new_user("anonymous"), "userName must not be 'anonymous'."),
        (new_user(""), "userName must not be blank."),
        (new_user("   "), "userName must not be blank."),
        (without(new_user(), "userName"), "userName must not be blank."),
        (new_user("x" * 256), "userName must not exceed 255 characters."),
        (new_user(fullName=" "), "fullName must not be blank."),
        (without(new_user(), "fullName"), "fullName must not be blank."),
        (new_user(fullName="<b>Amara</b>"), "fullName must not contain '<' or '>'."),
        (new_user(fullName="Anonymous"), "fullName must not be 'anonymous'."),
        (new_user(email=""), "email must not be blank."),
        (new_user(email="not-an-email"), "email must be a valid email address."),
        (new_user(email="a@b"), "email must be a valid email address."),
        (without(new_user(), "password"), "password is required when notifyViaEmail is false."),
        (new_user(password="  ", notifyViaEmail=False), "password is required when notifyViaEmail is false."),
        (new_user(notifyViaEmail=True), "password must not be given when notifyViaEmail is true."),
    ],
)
def test_create_user_validation(sim: ConfluenceSim, conf: Conf, body: dict[str, Any], problem: str) -> None:
    answer = conf("POST", "/admin/user", json=body)
    assert answer.status_code == 400
    data = answer.json()
    assert (data["statusCode"], data["reason"], data["data"]["valid"]) == (400, "Bad Request", False)
    assert {"message": {"translation": problem, "args": []}} in data["data"]["errors"]
    assert problem in data["message"]
    assert set(sim.directory.users) == {sim.user("admin")["userKey"]}  # type: ignore[index]


def test_create_user_reports_every_problem_at_once(conf: Conf) -> None:
    answer = conf("POST", "/admin/user", json={"userName": "Bad Name", "fullName": "", "email": "x"})
    translations = [e["message"]["translation"] for e in answer.json()["data"]["errors"]]
    assert translations == [
        "userName must not contain upper-case letters.",
        "userName must not contain whitespace.",
        "fullName must not be blank.",
        "email must be a valid email address.",
        "password is required when notifyViaEmail is false.",
    ]


def test_create_user_refuses_bad_bodies(sim: ConfluenceSim, conf: Conf) -> None:
    for body in (
        new_user(displayName="x"),  # an unknown field
        new_user(notifyViaEmail="false"),  # not a JSON boolean
        new_user(userName=5),
        ["amara.k"],
    ):
        assert conf("POST", "/admin/user", json=body).status_code == 400, body
    malformed = conf("POST", "/admin/user", data="{nope", headers={"Content-Type": "application/json"})
    assert malformed.status_code == 400
    assert conf("POST", "/admin/user", data={"userName": "amara.k"}).status_code == 415
    assert sim.user("amara.k") is None


def test_create_user_409_for_a_taken_name_in_any_case(sim: ConfluenceSim, conf: Conf) -> None:
    sim.add_user("Mixed.Case", "m@example.test", "Mixed Case")
    for name in ("admin", "mixed.case"):
        answer = conf("POST", "/admin/user", json=new_user(name))
        assert (answer.status_code, answer.json()["reason"]) == (409, "Conflict"), name
    assert sim.user("mixed.case")["email"] == "m@example.test"  # type: ignore[index]


def test_create_user_402_when_the_licence_is_full() -> None:
    sim = ConfluenceSim(seats=2)
    with serve(sim) as conf:
        assert conf("POST", "/admin/user", json=new_user("amara.k")).status_code == 201
        full = conf("POST", "/admin/user", json=new_user("bruno"))
        assert (full.status_code, full.json()["reason"]) == (402, "Payment Required")
        assert sim.user("bruno") is None
        assert conf("POST", "/admin/user", json=new_user("amara.k")).status_code == 409  # 409 before 402
        assert conf("PUT", "/admin/user/amara.k/disable").status_code == 204  # frees its seat
        assert conf("POST", "/admin/user", json=new_user("bruno")).status_code == 201


# -- changing users ----------------------------------------------------------------------


def test_disable_and_enable_are_idempotent(sim: ConfluenceSim, conf: Conf) -> None:
    sim.add_user("amara.k", "a@example.test", "Amara K")

    def status() -> str:
        return str(conf("GET", "/user", params={"username": "amara.k", "expand": "status"}).json()["status"])

    for _ in range(2):
        answer = conf("PUT", "/admin/user/AMARA.K/disable")
        assert (answer.status_code, answer.content) == (204, b"") and status() == "Deactivated"
    for _ in range(2):
        assert conf("PUT", "/admin/user/amara.k/enable").status_code == 204 and status() == "Active"
    missing = conf("PUT", "/admin/user/ghost/disable")
    assert (missing.status_code, missing.json()) == (
        404,
        error(404, "Not Found", "No user found with username: ghost"),
    )
    me = conf("PUT", "/admin/user/admin/disable")
    assert me.status_code == 400 and sim.user("admin")["active"] is True  # type: ignore[index]


def test_update_user_email_and_full_name_from_10_0() -> None:
    sim = ConfluenceSim("10.0.1")
    sim.add_user("amara.k", "a@example.test", "Amara K")
    with serve(sim) as conf:

        def put(body: Any) -> requests.Response:
            return conf("PUT", "/admin/user/amara.k", json=body)

        assert put({"email": "new@example.test", "fullName": "Amara Kowalski"}).status_code == 204
        state = sim.user("amara.k")
        assert state is not None and (state["email"], state["display_name"]) == (
            "new@example.test",
            "Amara Kowalski",
        )
        for body in (
            {"email": "x@example.test"},  # both fields, always
            {"fullName": "X"},
            {"email": "x@example.test", "fullName": "X", "userName": "x"},
            {"email": "bad", "fullName": "X"},
            {"email": "x@example.test", "fullName": "<X>"},
            {"email": "x@example.test", "fullName": " "},
        ):
            assert put(body).status_code == 400, body
        assert (
            conf("PUT", "/admin/user/ghost", json={"email": "g@example.test", "fullName": "G"}).status_code
            == 404
        )
    assert sim.user("amara.k")["email"] == "new@example.test"  # type: ignore[index]


def test_set_password(sim: ConfluenceSim, conf: Conf) -> None:
    sim.add_user("amara.k", "a@example.test", "Amara K")
    assert conf("POST", "/admin/user/amara.k/password", json={"password": "n3w"}).status_code == 204
    assert conf.as_(auth=("amara.k", "n3w"))("GET", "/user/current").status_code == 200
    assert conf("POST", "/admin/user/amara.k/password", json={"password": " "}).status_code == 400
    assert conf("POST", "/admin/user/ghost/password", json={"password": "x"}).status_code == 404


def test_read_only_directory_users_refuse_every_write() -> None:
    sim = ConfluenceSim("10.0.1")
    sim.add_user("ldap.user", "l@example.test", "LDAP User", groups=("team",), read_only=True)
    sim.add_group("other")
    before = sim.user("ldap.user")
    with serve(sim) as conf:
        for method, path, body, action in [
            ("PUT", "/admin/user/ldap.user/disable", None, "disabled"),
            ("PUT", "/admin/user/ldap.user/enable", None, "enabled"),
            ("PUT", "/admin/user/ldap.user", {"email": "x@example.test", "fullName": "X"}, "updated"),
            ("POST", "/admin/user/ldap.user/password", {"password": "x"}, "given a new password"),
            ("DELETE", "/admin/user/ldap.user", None, "deleted"),
            ("PUT", "/user/ldap.user/group/other", None, "added to group 'other'"),
            ("PUT", "/user/ldap.user/group/team", None, "added to group 'team'"),  # even a no-op
            ("DELETE", "/user/ldap.user/group/team", None, "removed from group 'team'"),
        ]:
            answer = conf(method, path, json=body)
            message = f"User 'ldap.user' belongs to a read-only directory and cannot be {action}."
            assert (answer.status_code, answer.json()) == (403, error(403, "Forbidden", message)), path
        assert conf("GET", "/user", params={"username": "ldap.user"}).status_code == 200
    assert sim.user("ldap.user") == before and sim.tasks.tasks == {}


# -- deleting users: the long task ---------------------------------------------------------


def test_delete_runs_as_a_long_task() -> None:
    now = [50.0]
    sim = ConfluenceSim(clock=lambda: now[0], delete_task_steps=2)
    sim.add_user("amara.k", "a@example.test", "Amara K", groups=("team", "confluence-users"))
    with serve(sim) as conf:
        submitted = conf("DELETE", "/admin/user/amara.k")
        assert submitted.status_code == 202
        task_id = submitted.json()["id"]
        assert submitted.json() == {
            "id": task_id,
            "links": {"status": f"/confluence/rest/api/longtask/{task_id}"},
        }
        status_url = conf.url.removesuffix("/confluence") + submitted.json()["links"]["status"]
        assert sim.user("amara.k") is not None  # not yet: the task has not run
        now[0] += 1.5
        first = conf.session.get(status_url, timeout=10).json()
        assert (first["finished"], first["successful"], first["percentageComplete"]) == (False, False, 50)
        assert first["elapsedTime"] == 1500 and first["messages"] == [] and first["id"] == task_id
        assert first["name"]["args"] == [] and first["name"]["key"]
        assert sim.user("amara.k") is not None
        now[0] += 1.0
        done = conf.session.get(status_url, timeout=10).json()
        assert (done["finished"], done["successful"], done["percentageComplete"]) == (True, True, 100)
        assert done["elapsedTime"] == 2500 and done["messages"][0]["translation"]
        assert sim.user("amara.k") is None and "amara.k" not in sim.members("team")
        now[0] += 9.0
        assert conf("GET", f"/longtask/{task_id}").json() == done  # a finished task stays as it ended
        assert conf("DELETE", "/admin/user/amara.k").status_code == 404
        assert conf("GET", "/user", params={"username": "amara.k"}).status_code == 404


def test_a_failing_delete_task_keeps_the_user() -> None:
    sim = ConfluenceSim(delete_task_steps=1, delete_task_fails=True)
    sim.add_user("amara.k", "a@example.test", "Amara K")
    with serve(sim) as conf:
        task_id = conf("DELETE", "/admin/user/amara.k").json()["id"]
        status = conf("GET", f"/longtask/{task_id}").json()
    assert (status["finished"], status["successful"], status["percentageComplete"]) == (True, False, 100)
    assert "amara.k" in status["messages"][0]["translation"]
    assert sim.user("amara.k") is not None


def test_a_delete_task_that_never_finishes() -> None:
    sim = ConfluenceSim(delete_task_steps=-1)
    sim.add_user("amara.k", "a@example.test", "Amara K")
    with serve(sim) as conf:
        task_id = conf("DELETE", "/admin/user/amara.k").json()["id"]
        statuses = [conf("GET", f"/longtask/{task_id}").json() for _ in range(6)]
    assert all(not s["finished"] and not s["successful"] and s["percentageComplete"] < 100 for s in statuses)
    assert sim.user("amara.k") is not None


def test_a_delete_task_with_no_steps_is_done_on_submission() -> None:
    sim = ConfluenceSim(delete_task_steps=0)
    sim.add_user("amara.k", "a@example.test", "Amara K")
    with serve(sim) as conf:
        task_id = conf("DELETE", "/admin/user/amara.k").json()["id"]
        assert sim.user("amara.k") is None
        assert conf("GET", f"/longtask/{task_id}").json()["successful"] is True
    with pytest.raises(ValueError, match="delete_task_steps"):
        ConfluenceSim(delete_task_steps=-2)


def test_delete_refusals_and_unknown_tasks(sim: ConfluenceSim, conf: Conf) -> None:
    missing = conf("DELETE", "/admin/user/ghost")
    assert (missing.status_code, missing.json()["message"]) == (404, "No user found with username: ghost")
    me = conf("DELETE", "/admin/user/admin")
    assert me.status_code == 400 and sim.tasks.tasks == {}
    unknown = conf("GET", "/longtask/nope")
    assert (unknown.status_code, unknown.json()["statusCode"]) == (404, 404)


# -- groups ----------------------------------------------------------------------------------


def test_group_list_pages_and_single_group(sim: ConfluenceSim, conf: Conf) -> None:
    for i in range(448):
        sim.add_group(f"Team-{i:03}")
    groups, pages = conf.walk("/group", limit=250)
    assert [(p["start"], p["limit"], p["size"]) for p in pages] == [
        (0, 200, 200),
        (200, 200, 200),
        (400, 200, 50),
    ]
    names = [g["name"] for g in groups]
    assert names == sorted(names) and len(names) == 450 and "team-000" in names  # stored lower-case
    one = conf("GET", "/group/TEAM-007").json()
    assert one == {
        "type": "group",
        "name": "team-007",
        "_links": {"self": f"{conf.url}/rest/api/group/team-007"},
    }
    missing = conf("GET", "/group/nope")
    assert (missing.status_code, missing.json()) == (
        404,
        error(404, "Not Found", "No group found with name: nope"),
    )


def test_group_members_page_with_status(sim: ConfluenceSim, conf: Conf) -> None:
    for i in range(230):
        sim.add_user(f"dev{i:03}", f"d{i}@example.test", f"Dev {i}", active=i >= 30, groups=("Engineering",))
    members, pages = conf.walk("/group/engineering/member", limit=201, expand="status")
    assert [(p["limit"], p["size"]) for p in pages] == [(200, 200), (200, 30)]
    assert [m["username"] for m in members] == [f"dev{i:03}" for i in range(230)]  # disabled ones too
    assert [m["status"] for m in members].count("Deactivated") == 30
    assert conf("GET", "/group/nope/member").status_code == 404
    sim.add_group("Night Shift", members=("dev000", "dev001"))
    shift, shift_pages = conf.walk("/group/night shift/member", limit=1)
    assert shift_pages[0]["_links"]["next"] == "/rest/api/group/night%20shift/member?limit=1&start=1"
    assert [m["username"] for m in shift] == ["dev000", "dev001"]


def test_create_group_is_lower_case_and_strict(sim: ConfluenceSim, conf: Conf) -> None:
    created = conf("POST", "/admin/group", json={"name": "Team-Alpha"})
    assert created.status_code == 201 and created.json()["name"] == "team-alpha"
    assert "team-alpha" in sim.group_names()
    duplicate = conf("POST", "/admin/group", json={"name": "TEAM-ALPHA"})
    assert (duplicate.status_code, duplicate.json()["reason"]) == (409, "Conflict")
    extra = conf("POST", "/admin/group", json={"name": "team-beta", "type": "group"})  # §2.7: only `name`
    assert extra.status_code == 400 and "team-beta" not in sim.group_names()
    assert conf("POST", "/admin/group", json={"name": "x" * 255}).status_code == 201


@pytest.mark.parametrize(
    ("name", "problem"),
    [
        ("", "Group name must not be blank."),
        ("   ", "Group name must not be blank."),
        (None, "Group name must not be blank."),
        ("<script>", "Group name must not contain '<', '>', '/', '\\' or control characters."),
        ("a>b", "Group name must not contain '<', '>', '/', '\\' or control characters."),
        ("team/alpha", "Group name must not contain '<', '>', '/', '\\' or control characters."),
        ("team\\alpha", "Group name must not contain '<', '>', '/', '\\' or control characters."),
        ("team\nalpha", "Group name must not contain '<', '>', '/', '\\' or control characters."),
        ("x" * 256, "Group name must not exceed 255 characters."),
    ],
)
def test_create_group_refuses_bad_names(
    sim: ConfluenceSim, conf: Conf, name: str | None, problem: str
) -> None:
    groups = sim.group_names()
    answer = conf("POST", "/admin/group", json={"name": name})
    assert answer.status_code == 400
    assert answer.json()["message"] == problem and answer.json()["data"]["valid"] is False
    assert sim.group_names() == groups


def test_delete_group(sim: ConfluenceSim, conf: Conf) -> None:
    sim.add_user("amara.k", "a@example.test", "Amara K", groups=("team",))
    answer = conf("DELETE", "/admin/group/TEAM")
    assert (answer.status_code, answer.content) == (204, b"")
    assert "team" not in sim.group_names() and sim.user("amara.k")["groups"] == []  # type: ignore[index]
    assert conf("DELETE", "/admin/group/team").status_code == 404


def test_membership_changes_are_idempotent(sim: ConfluenceSim, conf: Conf) -> None:
    sim.add_user("Amara.K", "a@example.test", "Amara K")
    sim.add_group("team")
    for _ in range(2):
        answer = conf("PUT", "/user/amara.k/group/TEAM")
        assert (answer.status_code, answer.content) == (204, b"") and sim.members("team") == {"Amara.K"}
    for _ in range(2):
        assert conf("DELETE", "/user/AMARA.K/group/team").status_code == 204 and sim.members("team") == set()
    for method in ("PUT", "DELETE"):
        ghost = conf(method, "/user/ghost/group/team")
        assert (ghost.status_code, ghost.json()["message"]) == (404, "No user found with username: ghost")
        nope = conf(method, "/user/amara.k/group/nope")
        assert (nope.status_code, nope.json()["message"]) == (404, "No group found with name: nope")
    assert sim.group_names() == {"confluence-users", "confluence-administrators", "team"}


# -- rate limiting, faults, request log ---------------------------------------------------------


def test_token_bucket_rate_limit() -> None:
    now = [100.0]
    with serve(ConfluenceSim(rate_limit=(2, 1.0), clock=lambda: now[0])) as conf:
        first, second, third = (conf("GET", "/user/current") for _ in range(3))
        assert [r.status_code for r in (first, second, third)] == [200, 200, 429]
        assert [first.headers[h] for h in RATE_HEADERS] == ["2", "1", "1", "1", "0"]
        assert (second.headers["X-RateLimit-Remaining"], second.headers["retry-after"]) == ("0", "1")
        assert third.json() == error(429, "Too Many Requests", "Rate limit exceeded.")
        assert third.headers["retry-after"] == "1"
        now[0] += 1.0
        assert conf("GET", "/user/current").status_code == 200
        manifest = requests.get(f"{conf.url}/rest/applinks/1.0/manifest", timeout=10)
        assert manifest.ok and "X-RateLimit-Limit" not in manifest.headers  # anonymous: not limited
    with pytest.raises(ValueError, match=r"7\.13"):
        ConfluenceSim("7.12.0", rate_limit=(2, 1.0))


def test_injected_faults_use_the_confluence_error_shape(sim: ConfluenceSim, conf: Conf) -> None:
    sim.faults.inject(503, count=2, method="POST", path="/rest/api/admin/group")
    assert conf("GET", "/group").status_code == 200  # another method: untouched
    for _ in range(2):
        answer = conf("POST", "/admin/group", json={"name": "team"})
        assert (answer.status_code, answer.json()) == (
            503,
            error(503, "Service Unavailable", "Injected fault: HTTP 503"),
        )
    assert "team" not in sim.group_names()
    assert conf("POST", "/admin/group", json={"name": "team"}).status_code == 201
    sim.faults.rate_limit(1, retry_after=7)
    limited = conf("GET", "/group")
    assert limited.status_code == 429 and limited.headers["retry-after"] == "7"
    assert all(h in limited.headers for h in RATE_HEADERS)
    assert limited.json() == error(429, "Too Many Requests", "Rate limit exceeded.")


def test_dropped_connections(sim: ConfluenceSim, conf: Conf) -> None:
    sim.faults.drop(method="POST")
    with pytest.raises(requests.ConnectionError):
        conf("POST", "/admin/group", json={"name": "team"})
    assert "team" not in sim.group_names()
    sim.faults.drop(path="/rest/api/admin/group", after_app=True)
    with pytest.raises(requests.ConnectionError):
        conf("POST", "/admin/group", json={"name": "team"})
    assert "team" in sim.group_names()  # applied: a blind retry gets a 409
    assert conf("POST", "/admin/group", json={"name": "team"}).status_code == 409


def test_request_log(sim: ConfluenceSim, conf: Conf) -> None:
    conf("GET", "/user", params={"username": "admin"})
    conf("PUT", "/user/admin/group/confluence-users")
    sim.faults.drop()
    with pytest.raises(requests.ConnectionError):
        conf("DELETE", "/admin/group/confluence-users")
    assert sim.log.entries == [
        LoggedRequest("GET", "/rest/api/user", {"username": "admin"}, 200, None),
        LoggedRequest("PUT", "/rest/api/user/admin/group/confluence-users", {}, 204, None),
        LoggedRequest("DELETE", "/rest/api/admin/group/confluence-users", {}, DROPPED, None),
    ]
    assert [e.method for e in sim.log.writes()] == ["PUT", "DELETE"]


# -- seeding and inspection --------------------------------------------------------------------


def test_seeding_and_inspection_api(sim: ConfluenceSim) -> None:
    assert sim.group_names() == {"confluence-users", "confluence-administrators"}
    assert sim.members("confluence-administrators") == sim.members("Confluence-Users") == {"admin"}
    key = sim.add_user("Amara.K", "a@example.test", "Amara K", groups=("New-Group",), read_only=True)
    sim.add_group("NEW-GROUP", members=("admin",))  # extends the existing group
    assert sim.members("new-group") == {"Amara.K", "admin"} and "new-group" in sim.group_names()
    sim.update_user(key, email="b@example.test", display_name="Amara Kowalski", active=False)
    assert sim.user("amara.k") == {
        "username": "Amara.K",
        "userKey": key,
        "email": "b@example.test",
        "display_name": "Amara Kowalski",
        "active": False,
        "groups": ["new-group"],
        "read_only": True,
    }
    assert sim.user("ghost") is None
    with pytest.raises(ValueError, match="already exists"):
        sim.add_user("AMARA.K", "x@example.test", "X")
    with pytest.raises(TypeError):
        sim.update_user("amara.k", name="x")
    with pytest.raises(KeyError):
        sim.update_user("ghost", active=False)
    with pytest.raises(KeyError):
        sim.members("nope")
    with pytest.raises(KeyError):
        sim.add_group("team", members=("ghost",))
