"""Config validation beyond the schema: privileged owner group, strict booleans, match ids and
the state file, template field names, `$NAME` warnings, wrong choices, hostile YAML."""

from __future__ import annotations

import copy
import time
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from scimsync.cli import cli
from scimsync.config import Config, config_digest, load_config, parse_config
from scimsync.errors import ConfigError
from scimsync.mapping import user_context
from scimsync.models import User
from scimsync.templates import RULE_NAMES, USER_NAMES, template_problem

BASE = Path("/srv/scimsync")
ROOT = Path(__file__).resolve().parent.parent


def minimal(**overrides: Any) -> dict[str, Any]:
    """Return the smallest valid config data, with top-level keys replaced."""
    data: dict[str, Any] = {
        "version": 1,
        "source": {"type": "file", "path": "users.csv"},
        "targets": {"jira": {"type": "jira", "url": "https://jira.example.com", "token": "${JIRA_PAT}"}},
    }
    data.update(overrides)
    return data


def with_target(**keys: Any) -> dict[str, Any]:
    data = minimal()
    data["targets"]["jira"].update(keys)
    return data


def parse(data: Any, env: dict[str, str] | None = None) -> Config:
    return parse_config(copy.deepcopy(data), base_dir=BASE, env={"JIRA_PAT": "pat-value", **(env or {})})


def problems(data: Any, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(data, env)
    return caught.value.problems


def write(tmp_path: Path, text: str) -> Path:
    file = tmp_path / "scimsync.yaml"
    file.write_text(text, encoding="utf-8")
    return file


def load_problem(tmp_path: Path, text: str) -> str:
    with pytest.raises(ConfigError) as caught:
        load_config(write(tmp_path, text), env={"JIRA_PAT": "p"})
    (problem,) = caught.value.problems
    return problem


HEAD = "version: 1\nsource: {type: file, path: users.csv}\n"
TARGET = "targets:\n  jira:\n    type: jira\n    url: https://j\n    token: t\n"


# --- 1. the owner group is never privileged (SPEC §5) -------------------------------


@pytest.mark.parametrize("owner", ["jira-administrators", "JIRA-Administrators", "Site-Admins"])
def test_privileged_owner_group_is_refused(owner: str) -> None:
    assert problems(minimal(policy={"owner_group": owner})) == [
        f"policy.owner_group: '{owner}' is a privileged group; the owner marker must never grant privileges"
    ]


def test_owner_group_is_checked_against_the_configured_privileged_groups() -> None:
    assert problems(minimal(policy={"owner_group": "Root", "privileged_groups": ["root"]})) == [
        "policy.owner_group: 'Root' is a privileged group; the owner marker must never grant privileges"
    ]
    config = parse(minimal(policy={"owner_group": "jira-administrators", "privileged_groups": ["root"]}))
    assert config.policy.owner_group == "jira-administrators"


def test_privileged_owner_group_from_the_environment_is_refused() -> None:
    data = minimal(policy={"owner_group": "${OWNER}"})
    assert problems(data, env={"OWNER": "system-administrators"}) == [
        "policy.owner_group: 'system-administrators' is a privileged group; "
        "the owner marker must never grant privileges"
    ]


# --- 2. booleans are booleans -------------------------------------------------------


@pytest.mark.parametrize("value", ["yes", "true", "True", "1", 1, 0, "on", None, 1.0])
def test_rule_privileged_takes_only_a_boolean(value: Any) -> None:
    data = with_target(groups=[{"from": "a", "to": "b", "privileged": value}])
    assert problems(data) == ["targets.jira.groups[0].privileged: must be true or false"]


@pytest.mark.parametrize("value", ["true", "false", "no", 0, 1])
def test_create_groups_takes_only_a_boolean(value: Any) -> None:
    assert problems(minimal(policy={"create_groups": value})) == [
        "policy.create_groups: must be true or false"
    ]


@pytest.mark.parametrize(("value", "parsed"), [(True, True), (False, False)])
def test_booleans_parse(value: bool, parsed: bool) -> None:
    config = parse(with_target(groups=[{"from": "a", "to": "b", "privileged": value}]))
    assert config.targets["jira"].groups[0].privileged is parsed
    assert parse(minimal(policy={"create_groups": value})).policy.create_groups is parsed


@pytest.mark.parametrize(
    ("written", "env", "parsed"),
    [
        ("${FLAG}", {"FLAG": "true"}, True),
        ("${FLAG}", {"FLAG": "false"}, False),
        ("${FLAG:-false}", {}, False),
        ("${FLAG:-true}", {"FLAG": ""}, True),
    ],
)
def test_a_substituted_true_or_false_is_a_boolean(written: str, env: dict[str, str], parsed: bool) -> None:
    assert parse(minimal(policy={"create_groups": written}), env=env).policy.create_groups is parsed
    rules = [{"from": "a", "to": "b", "privileged": written}]
    assert parse(with_target(groups=rules), env=env).targets["jira"].groups[0].privileged is parsed


@pytest.mark.parametrize(
    ("written", "env"),
    [("${FLAG}", {"FLAG": "yes"}), ("${FLAG}", {"FLAG": "TRUE"}), ("x${FLAG}", {"FLAG": "true"})],
)
def test_a_substituted_value_is_a_boolean_only_when_exactly_true_or_false(
    written: str, env: dict[str, str]
) -> None:
    assert problems(minimal(policy={"create_groups": written}), env=env) == [
        "policy.create_groups: must be true or false"
    ]


def test_substituted_text_stays_plain_text() -> None:
    config = parse(minimal(policy={"owner_group": "${OWNER}"}), env={"OWNER": "true"})
    assert config.policy.owner_group == "true" and type(config.policy.owner_group) is str


def test_yaml_yes_and_no_are_not_booleans(tmp_path: Path) -> None:
    rule = "    groups: [{from: a, to: b, privileged: yes}]\n"
    assert load_problem(tmp_path, HEAD + TARGET + rule) == (
        "targets.jira.groups[0].privileged: must be true or false"
    )
    config = load_config(
        write(tmp_path, HEAD + TARGET + "policy: {protected_users: [off, no, On], create_groups: False}\n"),
        env={},
    )
    assert config.policy.protected_users == ["off", "no", "On"]
    assert config.policy.create_groups is False


# --- 3. match by id, the state file --------------------------------------------------


def test_match_defaults_to_id_first() -> None:
    assert parse(minimal()).match == ["id", "username", "email"]
    assert parse(minimal(match=["id"])).match == ["id"]
    assert parse(minimal(match=["email", "id"])).match == ["email", "id"]
    assert problems(minimal(match=["id", "id"])) == ["match: 'id' is listed more than once"]


def test_state_file_defaults_beside_the_config() -> None:
    assert parse(minimal()).state_file == BASE / "scimsync-state.json"


def test_state_file_relative_absolute_and_null() -> None:
    assert parse(minimal(state_file="state/links.json")).state_file == BASE / "state" / "links.json"
    assert parse(minimal(state_file="/var/lib/s.json")).state_file == Path("/var/lib/s.json")
    assert parse(minimal(state_file=None)).state_file is None
    assert parse(minimal(state_file="${DIR}/s.json"), env={"DIR": "/x"}).state_file == Path("/x/s.json")


def test_state_file_must_be_a_path() -> None:
    assert problems(minimal(state_file=["a"])) == ["state_file: must be a path"]


def test_digest_follows_the_state_file_but_not_the_checkout() -> None:
    def digest(data: dict[str, Any], base: Path = BASE) -> str:
        return config_digest(parse_config(copy.deepcopy(data), base_dir=base, env={"JIRA_PAT": "p"}))

    assert digest(minimal()) == digest(minimal(state_file="scimsync-state.json"))
    assert digest(minimal()) != digest(minimal(state_file="other.json"))
    assert digest(minimal()) != digest(minimal(state_file=None))
    assert digest(minimal(), Path("/a")) == digest(minimal(), Path("/b"))


def test_example_config_documents_the_state_file(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("JIRA_PAT", "x")
    config = load_config(ROOT / "config.example.yaml")
    assert config.state_file == ROOT / "scimsync-state.json"
    assert "\nstate_file: ./scimsync-state.json " in (ROOT / "config.example.yaml").read_text(
        encoding="utf-8"
    )


# --- 4. template field names ----------------------------------------------------------


@pytest.mark.parametrize(
    ("source", "names", "problem"),
    [
        (
            "{{ user.firstname }}",
            USER_NAMES,
            "unknown name 'user.firstname' (did you mean 'user.first_name'?)",
        ),
        (
            "{{ user['firstname'] }}",
            USER_NAMES,
            "unknown name 'user.firstname' (did you mean 'user.first_name'?)",
        ),
        ("{{ user.Email | lower }}", USER_NAMES, "unknown name 'user.Email' (did you mean 'user.email'?)"),
        ("{{ user.mail }}", USER_NAMES, "unknown name 'user.mail' (did you mean 'user.email'?)"),
        (
            "{% if user.is_active %}x{% endif %}",
            USER_NAMES,
            "unknown name 'user.is_active' (did you mean 'user.active'?)",
        ),
        (
            "{{ user.zz }}",
            USER_NAMES,
            "unknown name 'user.zz' (available: user.id, user.username, user.email, user.first_name, "
            "user.last_name, user.display_name, user.active, user.groups, user.attributes)",
        ),
        ("{{ group.nam }}", RULE_NAMES, "unknown name 'group.nam' (did you mean 'group.name'?)"),
        ("{{ group['ID'] }}", RULE_NAMES, "unknown name 'group.ID' (did you mean 'group.id'?)"),
        (
            "{{ group.name }}-{{ user.lastname }}",
            RULE_NAMES,
            "unknown name 'user.lastname' (did you mean 'user.last_name'?)",
        ),
    ],
)
def test_unknown_fields_are_template_errors(source: str, names: frozenset[str], problem: str) -> None:
    assert template_problem(source, names=names) == f"template error: {problem}"


@pytest.mark.parametrize(
    "source",
    [
        "{{ user.id }}{{ user.username }}{{ user.email }}{{ user.first_name }}{{ user.last_name }}",
        "{{ user.display_name }}{{ user.active }}{{ user.groups | join(',') }}",
        "{{ user.attributes.department }}{{ user.attributes['cost center'] }}{{ user.attributes.x.y }}",
        "{{ user['email'] }}",
        "{% set field = 'email' %}{{ user[field] }}",
        "{% for g in user.groups %}{{ g.anything }}{% endfor %}",
        "{{ group.name }}{{ group.id }}{{ group['name'] }}",
        "{{ user.email | localpart }}",
    ],
)
def test_known_fields_pass(source: str) -> None:
    assert template_problem(source, names=RULE_NAMES) is None


def test_the_checked_fields_are_the_template_context() -> None:
    user = User(id="1", username="u", email="u@x")
    expected = "available: " + ", ".join(f"user.{f}" for f in user_context(user))
    problem = template_problem("{{ user.zz }}")
    assert problem is not None and problem.endswith(f"({expected})")


def test_unknown_field_names_the_key_path() -> None:
    assert problems(minimal(mapping={"display_name": "{{ user.firstname }} {{ user.last_name }}"})) == [
        "mapping.display_name: template error: unknown name 'user.firstname' "
        "(did you mean 'user.first_name'?)"
    ]
    rules = [{"from": "a", "to": ["x", "{{ group.nmae }}"]}]
    assert problems(with_target(groups=rules, mapping={"email": "{{ user['mail'] }}"})) == [
        "targets.jira.groups[0].to[1]: template error: unknown name 'group.nmae' "
        "(did you mean 'group.name'?)",
        "targets.jira.mapping.email: template error: unknown name 'user.mail' (did you mean 'user.email'?)",
    ]


# --- 5. `$NAME` without braces is a warning ----------------------------------------------


def test_bare_reference_in_a_token_is_a_warning() -> None:
    config = parse(with_target(token="$JIRA_PAT"))
    assert config.warnings == (
        "targets.jira.token: '$JIRA_PAT' looks like an environment reference; write ${JIRA_PAT}",
    )
    assert config.targets["jira"].token is not None and config.targets["jira"].token.reveal() == "$JIRA_PAT"


def test_bare_reference_in_any_value_is_a_warning() -> None:
    data = minimal(
        policy={"owner_group": "sync-$TEAM", "protected_users": ["admin", "$OPS_USER and $OPS_USER"]},
        source={"type": "okta", "url": "https://o", "token": "${T}", "include_groups": ["$group_name"]},
    )
    assert parse(data, env={"T": "t"}).warnings == (
        "source.include_groups[0]: '$group_name' looks like an environment reference; write ${group_name}",
        "policy.owner_group: '$TEAM' looks like an environment reference; write ${TEAM}",
        "policy.protected_users[1]: '$OPS_USER' looks like an environment reference; write ${OPS_USER}",
    )


@pytest.mark.parametrize("value", ["${TEAM}", "$${TEAM}", "$$TEAM", "cost $5", "a$", "${TEAM:-$}"])
def test_no_warning_without_a_bare_name(value: str) -> None:
    assert parse(minimal(policy={"owner_group": value}), env={"TEAM": "t"}).warnings == ()


@pytest.mark.parametrize(
    "secret", ["hunter2$Secret", "$lowercase_pw", "pa$$WORD", "$JIRA_PAT trailing", "x$JIRA_PAT"]
)
def test_a_secret_is_warned_about_only_when_it_is_clearly_a_variable_name(secret: str) -> None:
    config = parse(with_target(token=secret))
    assert config.warnings == ()
    pw = with_target(token=None, username="bot", password=secret)
    del pw["targets"]["jira"]["token"]
    assert parse(pw).warnings == ()


def test_other_secret_keys_are_checked_too() -> None:
    source = {"type": "entra", "tenant_id": "t", "client_id": "c", "client_secret": " $ENTRA_SECRET "}
    assert parse(minimal(source=source)).warnings == (
        "source.client_secret: '$ENTRA_SECRET' looks like an environment reference; write ${ENTRA_SECRET}",
    )


def test_a_substituted_value_is_never_warned_about() -> None:
    config = parse(minimal(policy={"owner_group": "${OWNER}"}), env={"JIRA_PAT": "$NOT_A_REF", "OWNER": "$X"})
    assert config.warnings == ()


def test_warnings_are_not_part_of_the_config_value() -> None:
    warned = parse(with_target(token="$JIRA_PAT"))
    quiet = parse(with_target(token="a-plain-token-value"))  # a word would be scrubbed from every text
    assert warned.warnings and not quiet.warnings
    assert "warnings" not in warned.model_dump()
    assert "$JIRA_PAT" not in repr(warned)
    assert config_digest(warned) == config_digest(quiet)


def test_warnings_is_not_a_yaml_key() -> None:
    assert problems(minimal(warnings=["x"])) == ["warnings: unknown key"]


def test_cli_prints_each_warning_on_stderr(tmp_path: Path) -> None:
    (tmp_path / "users.csv").write_text("id,username,email\n1,a,a@x\n", encoding="utf-8")
    file = write(
        tmp_path, HEAD + TARGET.replace("token: t", "token: $JIRA_PAT") + "policy: {owner_group: o-$X}\n"
    )
    result = CliRunner().invoke(cli, ["-c", str(file), "validate"])
    assert result.exit_code == 0, result.output
    assert result.stderr.splitlines() == [
        f"warning: {file}: targets.jira.token: '$JIRA_PAT' looks like an environment reference; "
        "write ${JIRA_PAT}",
        f"warning: {file}: policy.owner_group: '$X' looks like an environment reference; write ${{X}}",
    ]
    assert result.stdout.startswith("config OK:")


# --- 6. a wrong choice names the value and the closest valid one -----------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (
            with_target(type="jria"),
            "targets.jira.type: 'jria' is not one of jira, confluence, atlassian-cloud, scim "
            "(did you mean 'jira'?)",
        ),
        (
            with_target(type="sharepoint"),
            "targets.jira.type: 'sharepoint' is not one of jira, confluence, atlassian-cloud, scim",
        ),
        (
            minimal(source={"type": "Okta", "url": "https://o", "token": "t"}),
            "source.type: 'Okta' is not one of okta, entra, google, onelogin, keycloak, scim, ldap, file "
            "(did you mean 'okta'?)",
        ),
        (
            minimal(policy={"deprovision": "deactivated"}),
            "policy.deprovision: 'deactivated' is not one of deactivate, delete, none "
            "(did you mean 'deactivate'?)",
        ),
        (
            minimal(match=["username", "mail"]),
            "match[1]: 'mail' is not one of id, username, email (did you mean 'email'?)",
        ),
        (
            minimal(policy={"sync_fields": ["displayname"]}),
            "policy.sync_fields[0]: 'displayname' is not one of email, display_name, username "
            "(did you mean 'display_name'?)",
        ),
        (with_target(type=5), "targets.jira.type: must be one of jira, confluence, atlassian-cloud, scim"),
        (
            with_target(type="x" * 61),
            "targets.jira.type: must be one of jira, confluence, atlassian-cloud, scim",
        ),
        (
            with_target(type="ji\nra"),
            "targets.jira.type: must be one of jira, confluence, atlassian-cloud, scim",
        ),
        (minimal(version=2), "version: must be 1"),
    ],
)
def test_wrong_choices_name_the_value_and_the_closest_choice(data: dict[str, Any], expected: str) -> None:
    assert expected in problems(data)


def test_a_wrong_choice_from_the_environment_is_named() -> None:
    data = minimal(policy={"deprovision": "${MODE}"})
    assert problems(data, env={"MODE": "delet"}) == [
        "policy.deprovision: 'delet' is not one of deactivate, delete, none (did you mean 'delete'?)"
    ]


@pytest.mark.parametrize(
    "keys",
    [
        {"token": "hunter2-secret-token", "url": "hunter2-url"},
        {"token": 12345678, "type": "jria"},
        {"token": ["hunter2-list"], "type": "jria"},
        {"token": None, "username": "u", "password": {"hunter2": "x"}, "type": "jria"},
    ],
)
def test_secrets_are_still_never_quoted(keys: dict[str, Any]) -> None:
    data = with_target(**keys)
    if keys.get("token", "") is None:
        del data["targets"]["jira"]["token"]
    with pytest.raises(ConfigError) as caught:
        parse(data)
    assert "hunter2" not in str(caught.value) and "12345678" not in str(caught.value)


# --- 7. hostile YAML --------------------------------------------------------------------

BILLION_LAUGHS = """\
a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]
b: &b [*a,*a,*a,*a,*a,*a,*a,*a,*a]
c: &c [*b,*b,*b,*b,*b,*b,*b,*b,*b]
d: &d [*c,*c,*c,*c,*c,*c,*c,*c,*c]
e: &e [*d,*d,*d,*d,*d,*d,*d,*d,*d]
f: &f [*e,*e,*e,*e,*e,*e,*e,*e,*e]
g: &g [*f,*f,*f,*f,*f,*f,*f,*f,*f]
h: &h [*g,*g,*g,*g,*g,*g,*g,*g,*g]
i: &i [*h,*h,*h,*h,*h,*h,*h,*h,*h]
version: 1
source: {type: file, path: users.csv, include_groups: *i}
"""


def test_a_billion_laughs_fails_fast_in_one_line(tmp_path: Path) -> None:
    started = time.monotonic()
    problem = load_problem(tmp_path, BILLION_LAUGHS)
    assert time.monotonic() - started < 2
    assert problem.startswith("YAML alias error at line ")
    assert problem.endswith(
        "aliases expand the document to more than 100000 values; write the values out instead"
    )
    assert "\n" not in problem


def test_aliases_are_bounded_even_when_expanding_them_would_be_feasible(tmp_path: Path) -> None:
    # 10**6 values: slow but finite to expand, so without the bound this fails instead of hanging.
    lines = ["a0: &a0 [x,x,x,x,x,x,x,x,x,x]"]
    lines += [f"a{n}: &a{n} [{','.join([f'*a{n - 1}'] * 10)}]" for n in range(1, 6)]
    problem = load_problem(tmp_path, "\n".join(lines) + "\n")
    assert problem.startswith("YAML alias error at line ")
    assert problem.endswith(
        "aliases expand the document to more than 100000 values; write the values out instead"
    )


@pytest.mark.parametrize(
    ("text", "where"),
    [
        ("version: 1\nsource: &s [*s]\n", "line 2, column 9"),
        ("version: 1\nsource: &s {type: file, self: *s}\n", "line 2, column 9"),
    ],
)
def test_a_recursive_alias_is_one_line(tmp_path: Path, text: str, where: str) -> None:
    assert load_problem(tmp_path, text) == (
        f"YAML alias error at {where}: an alias refers to the value that contains it (a recursive alias)"
    )


def test_plain_aliases_still_work(tmp_path: Path) -> None:
    text = HEAD.replace("path: users.csv}", "path: users.csv, include_groups: &g [a, b]}")
    config = load_config(write(tmp_path, text + TARGET + "policy: {protected_users: *g}\n"), env={})
    assert config.policy.protected_users == ["a", "b"]
    assert config.source.include_groups == ["a", "b"]


def test_a_deeply_nested_document_is_one_line(tmp_path: Path) -> None:
    started = time.monotonic()
    problem = load_problem(tmp_path, "version: " + "[" * 1000 + "]" * 1000 + "\n")
    assert time.monotonic() - started < 2
    assert problem == "YAML syntax error at line 1, column 58: values are nested more than 50 levels deep"
    ok = "version: 1\nsource: {type: file, path: users.csv, include_groups: " + "[" * 40 + "]" * 40 + "}\n"
    assert load_problem(tmp_path, ok + TARGET) == "source.include_groups[0]: must be a string"


def test_a_list_as_a_key_is_one_line(tmp_path: Path) -> None:
    assert load_problem(tmp_path, "version: 1\n? [a, b]\n: x\n") == (
        "YAML syntax error at line 2, column 3: a key must be a single value, not a list or mapping"
    )
