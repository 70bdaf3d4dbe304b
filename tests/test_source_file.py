"""The file source: CSV, JSON and YAML records, defaults, and one clear line per bad record."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from scimsync.config import FileSourceConfig, parse_config
from scimsync.errors import ConfigError, ConnectorError
from scimsync.models import Group, SourceDirectory, User
from scimsync.sources import SOURCE_TYPES, build_source, file_formats, implemented_source_types
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


def source(path: Path, **keys: Any) -> FileSource:
    return FileSource("source", FileSourceConfig(type="file", path=path, **keys))


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    path.write_bytes(content.encode() if isinstance(content, str) else content)
    return path


def read(tmp_path: Path, name: str, content: str | bytes, **keys: Any) -> SourceDirectory:
    return source(write(tmp_path, name, content), **keys).read()


def read_error(tmp_path: Path, name: str, content: str | bytes, **keys: Any) -> ConnectorError:
    """Read a file that must fail; return the error after checking it is one line about the file."""
    path = write(tmp_path, name, content)
    with pytest.raises(ConnectorError) as caught:
        source(path, **keys).read()
    assert caught.value.system == "source"
    assert caught.value.obj.startswith(str(path))
    assert "\n" not in str(caught.value)
    return caught.value


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
        (
            "u.csv",
            "first_name,last_name\na,b\n",
            "line 1",
            "no username or email column (looked for 'username' and 'email'; "
            "the file has: first_name, last_name)",
        ),
        (
            "u.csv",
            "username,email,first_name\na,a@x,A\n,,B\n",
            "line 3",
            "needs a username or an email ('username' and 'email' are empty)",
        ),
        ("u.csv", "username,email,email\na,a@x,b@x\n", "line 1", "column 'email' appears more than once"),
        ("u.csv", "", "line 1", "no header line (the file is empty)"),
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
        ("u.json", '[{"first_name": "a"}]', "line 1", "needs a username or an email"),
        (
            "u.json",
            '[{"username": "a", "email": "a@x"}, "b"]',
            "record 2",
            "must be a mapping of field names to values",
        ),
        ("u.json", '[{"username": ["a"], "email": "a@x"}]', "line 1", "field 'username' must be text"),
        (
            "u.json",
            '[{"username": "a", "email": "a@x", "groups": [1]}]',
            "line 1",
            "field 'groups' must be a list of group names, or names separated by ';'",
        ),
        (
            "u.json",
            '[{"username": "a", "email": "a@x", "active": "sometimes"}]',
            "line 1",
            "field 'active' must be true or false (or yes/no, 1/0)",
        ),
        (
            "u.json",
            '[{"id": "1", "username": "a", "email": "a@x"},\n {"id": "1", "username": "b", "email": "b@x"}]',
            "line 2",
            "duplicate id '1' (also in line 1)",
        ),
        ("u.json", '{"people": []}', "", "expected a list of user records, or {users: [...]}"),
        ("u.json", '{"users": [], "groups": []}', "", "expected a list of user records, or {users: [...]}"),
        ("u.json", "", "line 1", "invalid JSON: Expecting value"),
        ("u.json", '[{"username": "a",\n "email": }]', "line 2", "invalid JSON: Expecting value"),
        ("u.yaml", "users:\n  - username: a\n   email: b\n", "line 3", "invalid YAML: "),
        ("u.yaml", "just text\n", "", "expected a list of user records, or {users: [...]}"),
        ("u.yml", "- username: a\n  email: a@x\n- first_name: b\n", "line 3", "needs a username or an email"),
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
    with pytest.raises(ConnectorError, match=r"latin1.csv line 2: not UTF-8 text \(set source.encoding"):
        read(tmp_path, "latin1.csv", "username,email\nj\xe9r\xf4me,j@x\n".encode("latin-1"))


# --- every value is text ------------------------------------------------------------


def test_yaml_scalars_stay_text(tmp_path: Path) -> None:
    # yaml.safe_load made 012345 the integer 5349, and a stranger's account `5349` was adopted.
    text = """\
- username: 012345
  id: 0x1F
  email: 1e3@acme.example
  first_name: Yes
  last_name: 2024-01-31
  display_name: 1_000
  active: no
  groups: [001, on, null]
- username: ~
  email: "null@acme.example"
  active: true
"""
    first, second = read(tmp_path, "u.yaml", text).users
    assert (first.username, first.id, first.email) == ("012345", "0x1F", "1e3@acme.example")
    assert (first.first_name, first.last_name, first.display_name) == ("Yes", "2024-01-31", "1_000")
    assert first.active is False
    assert first.groups == ("001", "on", "null")
    assert (second.username, second.id, second.active) == ("~", "~", True)


@pytest.mark.parametrize(
    ("value", "active"),
    [
        *[("true", True), ("True", True), ("yes", True), ("1", True), ('""', True)],
        *[("false", False), ("FALSE", False), ("no", False), ("0", False)],
    ],
)
def test_yaml_active_words(tmp_path: Path, value: str, active: bool) -> None:
    (user,) = read(tmp_path, "u.yaml", f"- username: a\n  active: {value}\n").users
    assert user.active is active


def test_yaml_keeps_lists_and_mappings_as_attributes(tmp_path: Path) -> None:
    text = "- username: a\n  manager: {id: 007, name: Bond}\n  tags: [x, 2]\n"
    (user,) = read(tmp_path, "u.yml", text).users
    assert user.attributes == {"manager": {"id": "007", "name": "Bond"}, "tags": ["x", "2"]}


@pytest.mark.parametrize("field", ["id", "username", "email"])
@pytest.mark.parametrize(("value", "shown"), [("12345", "12345"), ("true", "true"), ("1.5", "1.5")])
def test_json_identity_fields_must_be_strings(tmp_path: Path, field: str, value: str, shown: str) -> None:
    second = {"username": "b", "email": "b@x", field: json.loads(value)}
    records = '[{"username": "a", "email": "a@x"},\n' + json.dumps(second) + "]"
    error = read_error(tmp_path, "u.json", records)
    assert error.obj.endswith(" line 2")
    assert error.cause == f"field '{field}' must be a string, not {shown} (put it in quotes)"


def test_json_numbers_in_other_fields_become_text(tmp_path: Path) -> None:
    record = {"username": "a", "first_name": 7, "last_name": 1.5, "display_name": True, "active": 0}
    (user,) = read(tmp_path, "u.json", json.dumps([record])).users
    assert (user.first_name, user.last_name, user.display_name, user.active) == ("7", "1.5", "true", False)


# --- repeated columns and keys ----------------------------------------------------


@pytest.mark.parametrize(
    ("name", "content", "where", "cause"),
    [
        ("u.csv", "username,email,Email,email\na,b,c,d\n", "line 1", "column 'email' appears more than once"),
        ("u.csv", "username, Dept ,Dept\na,b,c\n", "line 1", "column 'Dept' appears more than once"),
        (
            "u.json",
            '[{"username": "a", "email": "a@x"},\n {"username": "b",\n  "email": "b@x", "email": "c@x"}]',
            "line 2",
            "key 'email' appears more than once in one object",
        ),
        (
            "u.json",
            '[{"username": "a", "manager": {"id": 1, "id": 2}}]',
            "line 1",
            "key 'id' appears more than once in one object",
        ),
        (
            "u.json",
            '{"users": [], "users": [{"username": "a"}]}',
            "line 1",
            "key 'users' appears more than once in one object",
        ),
        (
            "u.yaml",
            "- username: a\n  email: a@x\n- username: b\n  email: b@x\n  email: c@x\n",
            "line 5",
            "key 'email' appears more than once",
        ),
        ("u.yaml", "users: []\nusers:\n  - username: a\n", "line 2", "key 'users' appears more than once"),
    ],
)
def test_repeated_columns_and_keys_are_refused(
    tmp_path: Path, name: str, content: str, where: str, cause: str
) -> None:
    error = read_error(tmp_path, name, content)
    assert error.obj == f"{tmp_path / name} {where}"
    assert error.cause == cause


def test_unnamed_csv_columns_are_ignored(tmp_path: Path) -> None:
    # A trailing delimiter on every line of an export makes a column without a name.
    (user,) = read(tmp_path, "u.csv", "username,email,,\na,a@x,,\n").users
    assert (user.username, dict(user.attributes)) == ("a", {})


# --- YAML aliases ----------------------------------------------------------------

BILLION_LAUGHS = """\
lol1: &lol1 [lol, lol, lol, lol, lol, lol, lol, lol, lol]
lol2: &lol2 [*lol1, *lol1, *lol1, *lol1, *lol1, *lol1, *lol1, *lol1, *lol1]
lol3: &lol3 [*lol2, *lol2, *lol2, *lol2, *lol2, *lol2, *lol2, *lol2, *lol2]
lol4: &lol4 [*lol3, *lol3, *lol3, *lol3, *lol3, *lol3, *lol3, *lol3, *lol3]
lol5: &lol5 [*lol4, *lol4, *lol4, *lol4, *lol4, *lol4, *lol4, *lol4, *lol4]
lol6: &lol6 [*lol5, *lol5, *lol5, *lol5, *lol5, *lol5, *lol5, *lol5, *lol5]
lol7: &lol7 [*lol6, *lol6, *lol6, *lol6, *lol6, *lol6, *lol6, *lol6, *lol6]
lol8: &lol8 [*lol7, *lol7, *lol7, *lol7, *lol7, *lol7, *lol7, *lol7, *lol7]
lol9: &lol9 [*lol8, *lol8, *lol8, *lol8, *lol8, *lol8, *lol8, *lol8, *lol8]
users:
  - username: a
    groups: *lol9
"""


@pytest.mark.parametrize(
    ("content", "line"),
    [
        (BILLION_LAUGHS, 1),
        ("- &me {username: a, manager: *me}\n", 1),  # recursive
        ("- username: a\n  groups: &g [x]\n- username: b\n  groups: *g\n", 2),
        ("- &base {username: a}\n- <<: *base\n  username: b\n", 1),  # merge keys need an anchor too
    ],
)
def test_yaml_aliases_are_refused(tmp_path: Path, content: str, line: int) -> None:
    error = read_error(tmp_path, "u.yaml", content)
    assert error.obj.endswith(f"u.yaml line {line}")  # the line of the anchor
    assert error.cause == "YAML aliases are not allowed in a source file"


def test_an_anchor_alone_is_harmless_and_an_unknown_alias_invalid(tmp_path: Path) -> None:
    (user,) = read(tmp_path, "u.yaml", "- &a {username: a}\n").users
    assert user.username == "a"
    error = read_error(tmp_path, "u.yaml", "- username: a\n  groups: *nowhere\n")
    assert error.cause.startswith("invalid YAML: found undefined alias")


@pytest.mark.parametrize(
    ("name", "content", "cause"),
    [
        ("u.json", "[" * 5000 + "]" * 5000, "invalid JSON: nested too deeply"),
        ("u.yaml", "[" * 5000 + "]" * 5000, "invalid YAML: "),
        ("u.yaml", "".join(" " * i + "- \n" for i in range(0, 4000, 2)), "invalid YAML: "),
    ],
)
def test_deep_nesting_is_one_clear_line(tmp_path: Path, name: str, content: str, cause: str) -> None:
    assert read_error(tmp_path, name, content).cause.startswith(cause)


def test_without_libyaml_the_python_parser_reads_the_same(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(file_formats, "_TextLoader", file_formats._PyTextLoader)
    (user,) = read(tmp_path, "u.yaml", "- username: 012345\n  active: no\n").users
    assert (user.username, user.active) == ("012345", False)
    cases = [
        (BILLION_LAUGHS, "YAML aliases are not allowed in a source file"),
        ("- username: a\n  username: b\n", "key 'username' appears more than once"),
        ("[" * 5000 + "]" * 5000, "invalid YAML: nested too deeply"),
    ]
    for content, cause in cases:
        assert read_error(tmp_path, "u.yaml", content).cause == cause


# --- username, email and id defaults ------------------------------------------------


def test_email_is_optional_and_fills_the_username(tmp_path: Path) -> None:
    text = "id,username,email,active\n,leaver,,no\n,nomail,,yes\n,,only@acme.example,\nu4,,four@x,\n"
    users = read(tmp_path, "u.csv", text).users
    assert [(u.id, u.username, u.email, u.active) for u in users] == [
        ("leaver", "leaver", "", False),
        ("nomail", "nomail", "", True),
        ("only@acme.example", "only@acme.example", "only@acme.example", True),
        ("u4", "four@x", "four@x", True),
    ]


def test_a_leaver_with_only_an_id_is_read_and_an_active_person_is_not(tmp_path: Path) -> None:
    (user,) = read(tmp_path, "u.csv", "id,username,email,active\nE7,,,false\n").users
    assert (user.id, user.username, user.email, user.active) == ("E7", "", "", False)
    with pytest.raises(ConnectorError, match="needs a username or an email"):
        read(tmp_path, "v.csv", "id,username,email,active\nE8,,,true\n")


def test_a_file_with_only_an_email_column(tmp_path: Path) -> None:
    (user,) = read(tmp_path, "u.csv", "email\na@x\n").users
    assert (user.id, user.username, user.email) == ("a@x", "a@x", "a@x")
    (user,) = read(tmp_path, "u.json", '[{"email": "b@x"}]').users
    assert (user.id, user.username, user.email) == ("b@x", "b@x", "b@x")


# --- HR exports: columns, status words, group columns, delimiter, encoding -----------------


def test_columns_rename_fields_and_the_rest_are_attributes(tmp_path: Path) -> None:
    text = "Login,Mail,Given,email,Team\n jdoe ,jdoe@acme.example,Jane,old@acme.example,Blue\n"
    columns = {"username": "Login", "email": "Mail", "first_name": "Given"}
    (user,) = read(tmp_path, "u.csv", text, columns=columns).users
    assert (user.id, user.username, user.email, user.first_name) == (
        "jdoe",
        "jdoe",
        "jdoe@acme.example",
        "Jane",
    )
    # `email` is not the email column any more: it is an attribute like any other column.
    assert user.attributes == {"email": "old@acme.example", "Team": "Blue"}


@pytest.mark.parametrize("name", ["u.json", "u.yaml"])
def test_columns_rename_json_and_yaml_keys(tmp_path: Path, name: str) -> None:
    records = [{"Login": "jdoe", "Mail": "j@x", "State": "Gone", "Dept": "Ops", "Teams": ["a", "b"]}]
    keys = {
        "columns": {"username": "Login", "email": "Mail", "active": "State", "groups": "Teams"},
        "active_values": ["Here"],
        "inactive_values": ["Gone"],
        "group_columns": ["Dept"],
    }
    (user,) = read(tmp_path, name, json.dumps(records), **keys).users
    assert (user.username, user.email, user.active, user.groups) == ("jdoe", "j@x", False, ("a", "b", "Ops"))
    assert user.attributes == {"Dept": "Ops"}


def test_active_and_inactive_values(tmp_path: Path) -> None:
    text = "username,active\na, Active \nb,on leave\nc,TERMINATED\nd,Contractor\n"
    keys = {"active_values": ["Active", "On Leave", "contractor"], "inactive_values": ["Terminated"]}
    users = read(tmp_path, "u.csv", text, **keys).users
    assert [u.active for u in users] == [True, True, False, True]


@pytest.mark.parametrize(
    ("keys", "row", "cause"),
    [
        (
            {"active_values": ["Active"], "inactive_values": ["Terminated"]},
            "b,true",
            "field 'active' has the value 'true', which is in neither active_values nor inactive_values "
            "(known values: Active, Terminated)",
        ),
        (
            {"active_values": ["Active"]},
            "b,",
            "field 'active' has the value '', which is in neither active_values nor inactive_values "
            "(known values: Active)",
        ),
    ],
)
def test_a_status_in_neither_list_is_an_error(
    tmp_path: Path, keys: dict[str, Any], row: str, cause: str
) -> None:
    error = read_error(tmp_path, "u.csv", f"username,active\na,active\n{row}\n", **keys)
    assert error.obj.endswith("u.csv line 3")
    assert error.cause == cause


def test_an_empty_status_can_be_listed(tmp_path: Path) -> None:
    users = read(
        tmp_path, "u.csv", "username,active\na,\nb,x\n", active_values=[""], inactive_values=["x"]
    ).users
    assert [u.active for u in users] == [True, False]


def test_group_columns_and_separator(tmp_path: Path) -> None:
    text = "username,groups,Department,Cost Center\na,g1|g2,Engineering,CC-1 | CC-2\nb,,,\n"
    keys = {"group_columns": ["Department", "Cost Center"], "group_separator": "|"}
    directory = read(tmp_path, "u.csv", text, **keys)
    assert [u.groups for u in directory.users] == [("g1", "g2", "Engineering", "CC-1", "CC-2"), ()]
    assert [g.name for g in directory.groups] == ["g1", "g2", "Engineering", "CC-1", "CC-2"]
    # A group column is still an attribute, so templates can use it.
    assert directory.users[0].attributes == {"Department": "Engineering", "Cost Center": "CC-1 | CC-2"}


@pytest.mark.parametrize(
    ("name", "content", "keys", "where", "cause"),
    [
        (
            "u.csv",
            "username,Work Email\na,a@x\n",
            {"columns": {"email": "Work Emial"}},
            "line 1",
            "no column 'Work Emial' (did you mean 'Work Email'? the file has: username, Work Email)",
        ),
        (
            "u.csv",
            "username,email\na,a@x\n",
            {"group_columns": ["Department"]},
            "line 1",
            "no column 'Department' (the file has: username, email)",
        ),
        (
            "u.csv",
            "username,Status\na,Active\n",
            {"active_values": ["Active"]},
            "line 1",
            "no column 'active' (the file has: username, Status)",
        ),
        (
            "u.csv",
            "Employee ID,Name\n1,a\n",
            {"columns": {"id": "Employee ID"}},
            "line 1",
            "no username or email column (looked for 'username' and 'email'; "
            "the file has: Employee ID, Name)",
        ),
        (
            "u.json",
            '[{"username": "a", "Department": "x"}, {"username": "b", "Manager": "y"}]',
            {"group_columns": ["Departmant"]},
            "",
            "no column 'Departmant' (did you mean 'Department'? the file has: username, Department, Manager)",
        ),
    ],
)
def test_a_missing_configured_column_names_the_closest(
    tmp_path: Path, name: str, content: str, keys: dict[str, Any], where: str, cause: str
) -> None:
    error = read_error(tmp_path, name, content, **keys)
    assert error.obj == f"{tmp_path / name} {where}".rstrip()
    assert error.cause == cause


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_the_delimiter_is_detected_from_the_header(tmp_path: Path, delimiter: str) -> None:
    # The values hold the other delimiters: only the header line decides.
    header = delimiter.join(["username", "email", "groups"])
    row = delimiter.join(["a", "a@x", '"x,y;z|w"'])
    (user,) = read(tmp_path, "u.csv", f"{header}\n{row}\n", group_separator="/").users
    assert (user.username, user.email, user.groups) == ("a", "a@x", ("x,y;z|w",))


def test_a_quoted_header_name_does_not_fool_the_detection(tmp_path: Path) -> None:
    (user,) = read(tmp_path, "u.csv", 'username;"Name, full"\na;A, B\n').users
    assert user.attributes == {"Name, full": "A, B"}


def test_a_configured_delimiter_wins(tmp_path: Path) -> None:
    # Detected, `|` would split the header into three columns and find no username.
    (user,) = read(tmp_path, "u.csv", "a|b|c,username\nx|y|z,jdoe\n", delimiter=",").users
    assert (user.username, dict(user.attributes)) == ("jdoe", {"a|b|c": "x|y|z"})


@pytest.mark.parametrize(
    ("encoding", "data"),
    [
        ("utf-8", "\ufeffusername,last_name\r\njdoe,Müller\r\n".encode()),
        ("UTF8", "username,last_name\njdoe,Müller\n".encode()),
        ("cp1252", "username,last_name\njdoe,Müller\n".encode("cp1252")),
        ("latin-1", "username,last_name\njdoe,Müller\n".encode("latin-1")),
        ("utf-16", "username,last_name\njdoe,Müller\n".encode("utf-16")),
    ],
)
def test_encodings(tmp_path: Path, encoding: str, data: bytes) -> None:
    (user,) = read(tmp_path, "u.csv", data, encoding=encoding).users
    assert (user.username, user.last_name) == ("jdoe", "Müller")


def test_a_wrong_encoding_names_the_line(tmp_path: Path) -> None:
    data = "username,last_name\njdoe,Doe\nmm,Müller\n".encode("cp1252")
    error = read_error(tmp_path, "u.csv", data)
    assert error.obj.endswith("u.csv line 3")
    assert error.cause == "not UTF-8 text (set source.encoding to the file's encoding, e.g. cp1252)"


# --- the file source's keys in the config -------------------------------------------


def test_file_source_keys_default_to_the_plain_format(tmp_path: Path) -> None:
    config = config_for({"type": "file", "path": "users.csv"}, tmp_path).source
    assert isinstance(config, FileSourceConfig)
    assert (config.columns, config.active_values, config.inactive_values, config.group_columns) == (
        {},
        [],
        [],
        [],
    )
    assert (config.group_separator, config.delimiter, config.encoding) == (";", None, "utf-8")


@pytest.mark.parametrize(
    ("keys", "problem"),
    [
        ({"columns": {"emial": "Mail"}}, "source.columns.emial: not a user field (did you mean 'email'?)"),
        (
            {"columns": {"Employee ID": "id"}},
            "source.columns.Employee ID: not a user field (the user field comes first: id: Employee ID)",
        ),
        (
            {"columns": {"department": "Dept"}},
            "source.columns.department: not a user field (the fields are id, username, email, first_name, "
            "last_name, display_name, active, groups)",
        ),
        ({"columns": {"id": ""}}, "source.columns.id: must not be empty"),
        ({"group_column": ["Dept"]}, "source.group_column: unknown key (did you mean 'group_columns'?)"),
        (
            {"encoding": "utf-9"},
            "source.encoding: not a text encoding Python knows (e.g. utf-8, cp1252, latin-1, utf-16)",
        ),
        (
            {"encoding": "rot13"},
            "source.encoding: not a text encoding Python knows (e.g. utf-8, cp1252, latin-1, utf-16)",
        ),
        (
            {"delimiter": ",,"},
            "source.delimiter: must be one character such as ',', ';', '|' or \"\\t\" (a tab)",
        ),
        (
            {"delimiter": '"'},
            "source.delimiter: must be one character such as ',', ';', '|' or \"\\t\" (a tab)",
        ),
        ({"group_separator": ""}, "source.group_separator: must not be empty"),
        (
            {"active_values": ["Active", "On Leave"], "inactive_values": [" on leave "]},
            "source.inactive_values: 'on leave' is also in active_values",
        ),
        (
            {"active_values": [True]},
            "source.active_values: must be a list of strings; put yes, no, on, off, true and false in quotes",
        ),
        ({"active_values": "Active"}, "source.active_values: must be a list"),
    ],
)
def test_file_source_keys_are_validated(tmp_path: Path, keys: dict[str, Any], problem: str) -> None:
    with pytest.raises(ConfigError) as caught:
        config_for({"type": "file", "path": "u.csv", **keys}, tmp_path)
    assert caught.value.problems == [problem]


# --- acceptance: an HR system's export, read with configuration only ----------------

FIXTURES = Path(__file__).parent / "fixtures"
HR_KEYS: dict[str, Any] = {
    "type": "file",
    "path": "hr_export.csv",
    "columns": {
        "id": "Employee ID",
        "first_name": "First Name",
        "last_name": "Last Name",
        "email": "Work Email",
        "active": "Status",
    },
    "active_values": ["Active", "On Leave"],
    "inactive_values": ["Terminated"],
    "group_columns": ["Department"],
}


def hr_source(base_dir: Path) -> FileSource:
    data = {
        "version": 1,
        "source": HR_KEYS,
        "targets": {"jira": {"type": "jira", "url": "https://jira.example.test", "token": "t"}},
    }
    config = parse_config(data, base_dir=base_dir, env={})
    assert isinstance(config.source, FileSourceConfig)
    return FileSource("source", config.source)


def test_an_hr_export_reads_with_configuration_only() -> None:
    header = (FIXTURES / "hr_export.csv").read_text(encoding="utf-8").splitlines()[0]
    assert header == "Employee ID,First Name,Last Name,Work Email,Status,Department,Manager"
    directory = hr_source(FIXTURES).read()
    rows = [(u.id, u.email, u.display_name, u.active, u.groups) for u in directory.users]
    assert rows == [
        ("000123", "amara.kone@acme.example", "Amara Koné", True, ("Engineering",)),
        ("000124", "bob.stone@acme.example", "Bob Stone", True, ("Sales",)),  # On Leave
        ("000125", "chen.wei@acme.example", "Chen Wei", False, ("Engineering",)),
        ("000126", "dana.okafor@acme.example", "Dana Okafor", True, ("Finance",)),  # "active"
        ("000127", "eli.brennan@acme.example", "Eli Brennan", True, ()),  # no Department
        ("000128", "fatima.haddad@acme.example", "Fatima Haddad", False, ("Sales",)),
        ("000129", "jose.garcia@acme.example", "José García López", True, ("Research & Development",)),
        ("000130", "hana.sato@acme.example", "Hana Sato", True, ("Engineering",)),  # "ON LEAVE"
        ("000131", "ivan.petrov@acme.example", "Ivan Petrov, Jr.", True, ("Research & Development",)),
    ]
    assert all(u.username == u.email for u in directory.users)  # no username column: the email
    assert directory.users[0].attributes == {"Department": "Engineering", "Manager": "Grace Hopper"}
    assert [(g.name, g.member_ids) for g in directory.groups] == [
        ("Engineering", ("000123", "000125", "000130")),
        ("Sales", ("000124", "000128")),
        ("Finance", ("000126",)),
        ("Research & Development", ("000129", "000131")),
    ]


def test_an_unknown_hr_status_names_the_line_and_the_value(tmp_path: Path) -> None:
    text = (FIXTURES / "hr_export.csv").read_text(encoding="utf-8")
    retired = text.replace("fatima.haddad@acme.example,Terminated", "fatima.haddad@acme.example,Retired")
    write(tmp_path, "hr_export.csv", retired)
    with pytest.raises(ConnectorError) as caught:
        hr_source(tmp_path).read()
    assert caught.value.obj == f"{tmp_path / 'hr_export.csv'} line 7"
    assert caught.value.cause == (
        "field 'Status' has the value 'Retired', which is in neither active_values nor inactive_values "
        "(known values: Active, On Leave, Terminated)"
    )


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
    # A type a newer config may name (every type the config knows is built in this version).
    crowd = config.model_copy(update={"source": config.source.model_copy(update={"type": "crowd"})})
    with pytest.raises(ConfigError) as caught:
        build_source(crowd)
    assert caught.value.problems == [
        "source.type: 'crowd' is not available in this version "
        "(available: entra, file, google, keycloak, ldap, okta, onelogin, scim)"
    ]


def test_registry() -> None:
    every = {"okta", "entra", "google", "onelogin", "keycloak", "scim", "ldap", "file"}
    assert implemented_source_types() == frozenset(every)  # SPEC §3: every source type
    assert SOURCE_TYPES["file"] is FileSource
