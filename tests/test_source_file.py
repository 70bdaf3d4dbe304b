"""The file source: CSV, JSON and YAML records, defaults, and one clear line per bad record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scimsync.config import FileSourceConfig, parse_config
from scimsync.errors import ConfigError, ConnectorError
from scimsync.models import Group, SourceDirectory, User
from scimsync.sources import SOURCE_TYPES, build_source, implemented_source_types
from scimsync.sources.file import FileSource

CSV = """\
id,username,email,first_name,last_name,display_name,active,groups,department
u1,amara.k,amara@acme.com,Amara,Koné,,true,atlassian-jira-users;Engineering,R&D
,bob,bob@acme.com,Bob,Stone,Bobby S,no,engineering ; ,Sales
u3,cid,cid@acme.com,,,,,,
"""

RECORDS: list[dict[str, Any]] = [
    {
        "id": "u1",
        "username": "amara.k",
        "email": "amara@acme.com",
        "first_name": "Amara",
        "last_name": "Koné",
        "active": True,
        "groups": ["atlassian-jira-users", "Engineering"],
        "department": "R&D",
    },
    {
        "username": "bob",
        "email": "bob@acme.com",
        "first_name": "Bob",
        "last_name": "Stone",
        "display_name": "Bobby S",
        "active": False,
        "groups": ["engineering"],
        "department": "Sales",
    },
    {"id": "u3", "username": "cid", "email": "cid@acme.com"},
]

EXPECTED_USERS = (
    User(
        id="u1",
        username="amara.k",
        email="amara@acme.com",
        first_name="Amara",
        last_name="Koné",
        display_name="Amara Koné",
        active=True,
        groups=("atlassian-jira-users", "Engineering"),
    ),
    User(
        id="bob",
        username="bob",
        email="bob@acme.com",
        first_name="Bob",
        last_name="Stone",
        display_name="Bobby S",
        active=False,
        groups=("Engineering",),  # one group, spelled as first seen
    ),
    User(id="u3", username="cid", email="cid@acme.com"),
)
EXPECTED_GROUPS = (
    Group(id="atlassian-jira-users", name="atlassian-jira-users", member_ids=("u1",)),
    Group(id="Engineering", name="Engineering", member_ids=("u1", "bob")),
)


def source(path: Path) -> FileSource:
    return FileSource("source", FileSourceConfig(type="file", path=path))


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def read(tmp_path: Path, name: str, content: str | bytes) -> SourceDirectory:
    return source(write(tmp_path, name, content)).read()


def yaml_dump(records: Any) -> str:
    return json.dumps(records)  # JSON is YAML: keeps the test free of a second serializer


@pytest.mark.parametrize(
    ("name", "content"),
    [
        ("users.csv", CSV),
        ("users.CSV", "\ufeff" + CSV),  # spreadsheet exports start with a byte order mark
        ("users.json", json.dumps(RECORDS)),
        ("users.json", json.dumps({"users": RECORDS})),
        ("users.yaml", yaml_dump(RECORDS)),
        ("users.yml", yaml_dump({"users": RECORDS})),
    ],
)
def test_all_formats_read_the_same_directory(tmp_path: Path, name: str, content: str) -> None:
    directory = read(tmp_path, name, content)
    assert directory.users == EXPECTED_USERS
    assert directory.groups == EXPECTED_GROUPS


def test_extra_fields_become_attributes(tmp_path: Path) -> None:
    csv_users = read(tmp_path, "u.csv", CSV).users
    assert [dict(u.attributes) for u in csv_users] == [
        {"department": "R&D"},
        {"department": "Sales"},
        {"department": ""},
    ]
    records = [{"username": "a", "email": "a@x", "manager": {"id": 7}, "tags": ["x"]}]
    (user,) = read(tmp_path, "u.json", json.dumps(records)).users
    assert user.attributes == {"manager": {"id": 7}, "tags": ["x"]}


def test_yaml_block_style(tmp_path: Path) -> None:
    text = """\
users:
  - username: ann
    email: ann@acme.com
    id: 1001
    active: no
    groups: [a, b]
  - username: ben
    email: ben@acme.com
    groups: "a; c"
"""
    directory = read(tmp_path, "u.yaml", text)
    assert [(u.id, u.active, u.groups) for u in directory.users] == [
        ("1001", False, ("a", "b")),
        ("ben", True, ("a", "c")),
    ]
    assert [(g.name, g.member_ids) for g in directory.groups] == [
        ("a", ("1001", "ben")),
        ("b", ("1001",)),
        ("c", ("ben",)),
    ]


@pytest.mark.parametrize(
    ("value", "active"),
    [
        ("true", True),
        ("TRUE", True),
        ("yes", True),
        ("1", True),
        ("", True),
        ("false", False),
        ("No", False),
        ("0", False),
    ],
)
def test_csv_active_words(tmp_path: Path, value: str, active: bool) -> None:
    (user,) = read(tmp_path, "u.csv", f"username,email,active\na,a@x,{value}\n").users
    assert user.active is active


def test_duplicate_group_names_in_one_record_count_once(tmp_path: Path) -> None:
    directory = read(tmp_path, "u.csv", "username,email,groups\na,a@x,eng;Eng;ENG\n")
    assert directory.users[0].groups == ("eng",)
    assert directory.groups == (Group(id="eng", name="eng", member_ids=("a",)),)


def test_empty_file_formats(tmp_path: Path) -> None:
    assert read(tmp_path, "u.csv", "username,email\n").users == ()
    assert read(tmp_path, "u.json", "[]").users == ()
    assert read(tmp_path, "u.yaml", "users: []\n").users == ()


def test_check_counts_users(tmp_path: Path) -> None:
    assert source(write(tmp_path, "u.csv", CSV)).check() == "file with 3 users"
    assert source(write(tmp_path, "one.json", json.dumps(RECORDS[:1]))).check() == "file with 1 user"


def test_read_reports_progress(tmp_path: Path) -> None:
    seen: list[tuple[str, int, int | None]] = []
    source(write(tmp_path, "u.csv", CSV)).read(
        progress=lambda what, done, total: seen.append((what, done, total))
    )
    assert seen == [("users", 3, 3)]


@pytest.mark.parametrize(
    ("name", "content", "where", "cause"),
    [
        ("u.csv", "username,first_name\na,b\n", "line 1", "missing column 'email'"),
        ("u.csv", "username,email\na,a@x\nb,\n", "line 3", "missing field 'email'"),
        ("u.csv", "username,email\na,a@x\n,b@x\n", "line 3", "missing field 'username'"),
        ("u.csv", "username,email\na,a@x,extra\n", "line 2", "more values than columns"),
        (
            "u.csv",
            "username,email,first_name,groups\na,a@x,A,g1\nzoe,zoe@acme.te\n",
            "line 3",
            "fewer values than columns (a truncated file?)",
        ),
        (
            "u.csv",
            "username,email,active\na,a@x,maybe\n",
            "line 2",
            "field 'active' must be true or false (or yes/no, 1/0)",
        ),
        ("u.csv", "id,username,email\nx,a,a@x\nx,b,b@x\n", "line 3", "duplicate id 'x' (also in line 2)"),
        ("u.csv", "username,email\na,a@x\na,other@x\n", "line 3", "duplicate id 'a' (also in line 2)"),
        ("u.csv", 'username,email\n"a,a@x\n', "line 2", "invalid CSV: unexpected end of data"),
        ("u.json", '[{"username": "a"}]', "record 1", "missing field 'email'"),
        (
            "u.json",
            '[{"username": "a", "email": "a@x"}, "b"]',
            "record 2",
            "must be a mapping of field names to values",
        ),
        ("u.json", '[{"username": ["a"], "email": "a@x"}]', "record 1", "field 'username' must be text"),
        (
            "u.json",
            '[{"username": "a", "email": "a@x", "groups": [1]}]',
            "record 1",
            "field 'groups' must be a list of group names, or names separated by ';'",
        ),
        (
            "u.json",
            '[{"username": "a", "email": "a@x", "active": "sometimes"}]',
            "record 1",
            "field 'active' must be true or false (or yes/no, 1/0)",
        ),
        (
            "u.json",
            '[{"id": 1, "username": "a", "email": "a@x"}, {"id": "1", "username": "b", "email": "b@x"}]',
            "record 2",
            "duplicate id '1' (also in record 1)",
        ),
        ("u.json", '{"people": []}', "", "expected a list of user records, or {users: [...]}"),
        ("u.json", '{"users": [], "groups": []}', "", "expected a list of user records, or {users: [...]}"),
        ("u.json", "", "line 1", "invalid JSON: Expecting value"),
        ("u.json", '[{"username": "a",\n "email": }]', "line 2", "invalid JSON: Expecting value"),
        ("u.yaml", "users:\n  - username: a\n   email: b\n", "line 3", "invalid YAML: "),
        ("u.yaml", "just text\n", "", "expected a list of user records, or {users: [...]}"),
        ("u.yml", "- username: a\n  email: a@x\n- username: b\n", "record 2", "missing field 'email'"),
        ("u.txt", "username,email\n", "", "unsupported file type '.txt' (use .csv, .json, .yaml or .yml)"),
    ],
)
def test_bad_content_is_one_clear_line(
    tmp_path: Path, name: str, content: str, where: str, cause: str
) -> None:
    path = write(tmp_path, name, content)
    with pytest.raises(ConnectorError) as caught:
        source(path).read()
    assert caught.value.system == "source"
    assert caught.value.obj == f"{path} {where}".rstrip()
    assert caught.value.cause.startswith(cause)
    assert "\n" not in str(caught.value)


def test_missing_and_undecodable_files(tmp_path: Path) -> None:
    with pytest.raises(ConnectorError, match=r": cannot read: No such file or directory$"):
        source(tmp_path / "absent.csv").read()
    with pytest.raises(ConnectorError, match=r": not UTF-8 text$"):
        read(tmp_path, "latin1.csv", "username,email\nj\xe9r\xf4me,j@x\n".encode("latin-1"))


# --- registry ---------------------------------------------------------------------


def config_for(source_keys: dict[str, Any], tmp_path: Path) -> Any:
    data = {
        "version": 1,
        "source": source_keys,
        "targets": {"jira": {"type": "jira", "url": "https://j", "token": "t"}},
    }
    return parse_config(data, base_dir=tmp_path, env={})


def test_build_source_builds_the_file_source(tmp_path: Path) -> None:
    write(tmp_path, "users.csv", CSV)
    built = build_source(config_for({"type": "file", "path": "users.csv"}, tmp_path))
    assert isinstance(built, FileSource)
    assert (built.name, built.type) == ("source", "file")
    assert len(built.read().users) == 3
    built.close()


def test_build_source_refuses_types_not_built_yet(tmp_path: Path) -> None:
    config = config_for({"type": "okta", "url": "https://acme.okta.com", "token": "t"}, tmp_path)
    with pytest.raises(ConfigError) as caught:
        build_source(config)
    assert caught.value.problems == ["source.type: 'okta' is not available in this version (available: file)"]


def test_registry() -> None:
    assert implemented_source_types() == frozenset({"file"})
    assert SOURCE_TYPES["file"] is FileSource
