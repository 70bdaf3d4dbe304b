"""Config loading: defaults, the SPEC example, ${} substitution, error messages, digest."""

from __future__ import annotations

import copy
import hashlib
from pathlib import Path
from typing import Any

import pytest

from scimsync.config import (
    Config,
    FileSourceConfig,
    OktaSourceConfig,
    PolicyConfig,
    config_digest,
    load_config,
    parse_config,
)
from scimsync.errors import ConfigError
from scimsync.http import HttpSettings
from scimsync.secrets import Secret

SPEC_EXAMPLE = Path(__file__).parent / "fixtures" / "spec_example.yaml"
SPEC_ENV = {"OKTA_API_TOKEN": "okta-s3cret", "JIRA_PAT": "jira-s3cret", "CONFLUENCE_PASSWORD": "conf-s3cret"}
BASE = Path("/srv/scimsync")


def minimal(**overrides: Any) -> dict[str, Any]:
    """Return the smallest valid config data, with top-level keys replaced."""
    data: dict[str, Any] = {
        "version": 1,
        "source": {"type": "file", "path": "users.csv"},
        "targets": {"jira": {"type": "jira", "url": "https://jira.example.com", "token": "${JIRA_PAT}"}},
    }
    data.update(overrides)
    return data


def parse(data: Any, env: dict[str, str] | None = None) -> Config:
    return parse_config(data, base_dir=BASE, env={"JIRA_PAT": "pat-value"} if env is None else env)


def problems(data: Any, env: dict[str, str] | None = None) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        parse(data, env)
    return caught.value.problems


def with_target(**keys: Any) -> dict[str, Any]:
    """Return minimal config data whose jira target has ``keys`` merged in (None deletes)."""
    data = minimal()
    target = data["targets"]["jira"]
    for k, v in keys.items():
        if v is None:
            target.pop(k, None)
        else:
            target[k] = v
    return data


# --- defaults and the SPEC example ------------------------------------------------


def test_defaults_are_filled() -> None:
    config = parse(minimal())
    assert config.match == ["id", "username", "email"]
    assert config.mapping.username == "{{ user.username }}"
    assert config.mapping.email == "{{ user.email }}"
    assert config.mapping.display_name == "{{ user.display_name }}"
    assert config.policy == PolicyConfig()
    assert config.policy.deprovision == "deactivate"
    assert config.policy.max_deactivations == 25
    assert config.policy.max_write_failures == "20%"
    assert config.policy.owner_group == "scimsync-managed"
    assert config.policy.create_groups is True
    assert config.policy.sync_fields == ["email", "display_name"]
    assert "site-admins" in config.policy.privileged_groups
    assert config.http_settings() == HttpSettings(timeout=30.0, retries=5, concurrency=8)
    assert config.audit_log == BASE / "scimsync-audit.jsonl"
    assert config.lock_file == BASE / ".scimsync.lock"
    assert config.state_file == BASE / "scimsync-state.json"
    assert config.base_dir == BASE
    assert config.warnings == ()
    jira = config.targets["jira"]
    assert jira.default_groups == [] and jira.groups == []
    assert (jira.mapping.username, jira.mapping.email, jira.mapping.display_name) == (None, None, None)


def test_every_key_of_the_spec_example_parses() -> None:
    config = load_config(SPEC_EXAMPLE, env=SPEC_ENV)
    assert isinstance(config.source, OktaSourceConfig)
    assert config.source.url == "https://acme.okta.com"
    assert config.source.token.reveal() == "okta-s3cret"
    assert config.source.include_groups == ["atlassian-*"]
    assert config.source.exclude_users == ["svc-*"]
    assert config.mapping.username == "{{ user.email | localpart | lower }}"
    assert config.mapping.display_name == "{{ user.first_name }} {{ user.last_name }}"
    assert config.match == ["username", "email"]
    jira, confluence = config.targets["jira"], config.targets["confluence"]
    assert (jira.type, jira.url, jira.default_groups) == (
        "jira",
        "https://jira.acme.com",
        ["jira-software-users"],
    )
    assert jira.token is not None and jira.token.reveal() == "jira-s3cret"
    assert [r.from_ for r in jira.groups] == ["atlassian-jira-*", "engineering"]
    assert jira.groups[0].to == ["{{ group.name | replace('atlassian-', '') }}"]
    assert jira.groups[1].to == ["jira-developers"] and not jira.groups[1].privileged
    assert confluence.username == "sync-bot" and confluence.token is None
    assert confluence.password is not None and confluence.password.reveal() == "conf-s3cret"
    assert confluence.mapping.display_name == "{{ user.display_name }}" and confluence.mapping.email is None
    policy = config.policy
    assert (policy.deprovision, policy.max_deactivations, policy.max_write_failures) == (
        "deactivate",
        10,
        "20%",
    )
    assert policy.protected_users == ["admin", "sysadmin"]
    assert policy.owner_group == "scimsync-managed" and policy.create_groups is True
    assert policy.sync_fields == ["email", "display_name"]
    assert len(policy.privileged_groups) == 5
    assert config.http_settings() == HttpSettings(30.0, 5, 8, None, None)
    assert config.audit_log == SPEC_EXAMPLE.parent.absolute() / "scimsync-audit.jsonl"
    assert config.lock_file == SPEC_EXAMPLE.parent.absolute() / ".scimsync.lock"
    assert config.base_dir == SPEC_EXAMPLE.parent.absolute()


@pytest.mark.parametrize(
    "source",
    [
        {"type": "okta", "url": "https://acme.okta.com", "token": "t"},
        {"type": "entra", "tenant_id": "t", "client_id": "c", "client_secret": "s"},
        {"type": "google", "credentials_file": "sa.json", "subject": "admin@acme.com"},
        {"type": "onelogin", "url": "https://acme.onelogin.com", "client_id": "c", "client_secret": "s"},
        {
            "type": "keycloak",
            "url": "https://sso.acme.com",
            "realm": "r",
            "client_id": "c",
            "client_secret": "s",
        },
        {"type": "scim", "url": "https://idp.acme.com/scim/v2", "token": "t"},
        {
            "type": "ldap",
            "url": "ldaps://ldap.acme.com",
            "bind_dn": "cn=x",
            "password": "p",
            "base_dn": "dc=acme",
        },
        {"type": "file", "path": "users.yaml"},
    ],
    ids=lambda s: s["type"],
)
def test_every_source_type_parses(source: dict[str, Any]) -> None:
    config = parse(minimal(source={**source, "include_groups": ["a-*"], "exclude_users": ["svc-*"]}))
    assert config.source.type == source["type"]
    assert config.source.include_groups == ["a-*"]


def test_source_defaults() -> None:
    entra = parse(minimal(source={"type": "entra", "tenant_id": "t", "client_id": "c", "client_secret": "s"}))
    assert entra.source.model_dump()["login_url"] == "https://login.microsoftonline.com"
    assert entra.source.model_dump()["graph_url"] == "https://graph.microsoft.com"
    google = parse(minimal(source={"type": "google", "credentials_file": "sa.json", "subject": "a@b.c"}))
    assert google.source.model_dump() == {
        "type": "google",
        "credentials_file": BASE / "sa.json",
        "subject": "a@b.c",
        "customer": "my_customer",
        "url": "https://admin.googleapis.com",
        "token_url": "https://oauth2.googleapis.com/token",
        "include_groups": [],
        "exclude_users": [],
    }


@pytest.mark.parametrize(
    ("keys", "expected"),
    [
        ({"url": "https://jira.example.com/"}, "https://jira.example.com"),
        ({"url": "http://jira.local:8080/jira"}, "http://jira.local:8080/jira"),
    ],
)
def test_target_url_loses_trailing_slash(keys: dict[str, Any], expected: str) -> None:
    assert parse(with_target(**keys)).targets["jira"].url == expected


def test_rule_to_accepts_a_string_or_a_list() -> None:
    rules = [{"from": "a-*", "to": "x"}, {"from": "b", "to": ["y", "z"], "privileged": True}]
    config = parse(with_target(groups=rules))
    assert [(r.from_, r.to, r.privileged) for r in config.targets["jira"].groups] == [
        ("a-*", ["x"], False),
        ("b", ["y", "z"], True),
    ]


# --- paths ------------------------------------------------------------------------


def test_relative_paths_resolve_against_the_config_folder(tmp_path: Path) -> None:
    (tmp_path / "conf").mkdir()
    file = tmp_path / "conf" / "scimsync.yaml"
    file.write_text(
        "version: 1\n"
        "source: {type: file, path: data/users.csv}\n"
        "targets: {jira: {type: jira, url: 'https://j', token: t}}\n"
        "http: {ca_bundle: certs/ca.pem}\n"
        "audit_log: logs/audit.jsonl\n"
        "lock_file: /var/lock/scimsync.lock\n"
    )
    config = load_config(str(file), env={})
    folder = tmp_path / "conf"
    assert isinstance(config.source, FileSourceConfig)
    assert config.source.path == folder / "data" / "users.csv"
    assert config.http.ca_bundle == folder / "certs" / "ca.pem"
    assert config.http_settings().ca_bundle == str(folder / "certs" / "ca.pem")
    assert config.audit_log == folder / "logs" / "audit.jsonl"
    assert config.lock_file == Path("/var/lock/scimsync.lock")


def test_audit_log_null_disables_it() -> None:
    assert parse(minimal(audit_log=None)).audit_log is None


def test_base_dir_is_not_a_yaml_key() -> None:
    assert problems(minimal(base_dir="/tmp")) == ["base_dir: unknown key"]


# --- ${} substitution -------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "env", "expected"),
    [
        ("${NAME}", {"NAME": "v"}, "v"),
        ("pre-${NAME}-post", {"NAME": "v"}, "pre-v-post"),
        ("${NAME:-fallback}", {}, "fallback"),
        ("${NAME:-fallback}", {"NAME": ""}, "fallback"),
        ("${NAME:-fallback}", {"NAME": "set"}, "set"),
        ("${NAME:-}", {}, ""),
        ("${A}${B}", {"A": "1", "B": "2"}, "12"),
        ("$${NAME}", {"NAME": "v"}, "${NAME}"),
        ("no reference $HOME", {}, "no reference $HOME"),
    ],
)
def test_env_substitution(value: str, env: dict[str, str], expected: str) -> None:
    config = parse(minimal(policy={"owner_group": f"g{value}"}), env={"JIRA_PAT": "p", **env})
    assert config.policy.owner_group == f"g{expected}"


def test_substitution_reaches_nested_lists_and_numbers() -> None:
    env = {"JIRA_PAT": "p", "GROUP": "eng", "MAX": "7", "TIMEOUT": "2.5"}
    data = minimal(policy={"max_deactivations": "${MAX}"}, http={"timeout": "${TIMEOUT}"})
    data["targets"]["jira"]["groups"] = [{"from": "${GROUP}", "to": ["x-${GROUP}"]}]
    config = parse(data, env)
    assert config.policy.max_deactivations == 7
    assert config.http.timeout == 2.5
    assert config.targets["jira"].groups[0].from_ == "eng"
    assert config.targets["jira"].groups[0].to == ["x-eng"]


def test_missing_variable_names_the_key_path() -> None:
    assert problems(minimal(), env={}) == ["targets.jira.token: environment variable JIRA_PAT is not set"]


def test_missing_variable_in_a_list_names_the_index() -> None:
    data = minimal(policy={"protected_users": ["admin", "${OPS_USER}"]})
    assert problems(data) == ["policy.protected_users[1]: environment variable OPS_USER is not set"]


@pytest.mark.parametrize("value", ["${}", "${BAD NAME}", "${1X}", "${UNCLOSED"])
def test_invalid_reference_is_an_error(value: str) -> None:
    assert problems(minimal(policy={"owner_group": value})) == [
        "policy.owner_group: invalid reference '${...}' (use ${NAME} or ${NAME:-default})"
    ]


def test_load_config_reads_os_environ_by_default(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    file = tmp_path / "scimsync.yaml"
    file.write_text(SPEC_EXAMPLE.read_text())
    for name, value in SPEC_ENV.items():
        monkeypatch.setenv(name, value)
    assert load_config(file).targets["jira"].token == Secret("jira-s3cret")


# --- error messages ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (with_target(tokn="x", token=None), "targets.jira.tokn: unknown key (did you mean 'token'?)"),
        (minimal(polcy={}), "polcy: unknown key (did you mean 'policy'?)"),
        (minimal(zzz=1), "zzz: unknown key"),
        (
            minimal(policy={"max_deactivation": 1}),
            "policy.max_deactivation: unknown key (did you mean 'max_deactivations'?)",
        ),
        (
            minimal(source={"type": "okta", "url": "https://o", "token": "t", "tokn": "x"}),
            "source.tokn: unknown key (did you mean 'token'?)",
        ),
        (
            with_target(groups=[{"from": "a", "to": "b", "privilege": True}]),
            "targets.jira.groups[0].privilege: unknown key (did you mean 'privileged'?)",
        ),
        (
            with_target(groups=[{"frm": "a", "to": "b"}]),
            "targets.jira.groups[0].from: required key is missing",
        ),
        (
            with_target(mapping={"emial": "x"}),
            "targets.jira.mapping.emial: unknown key (did you mean 'email'?)",
        ),
        (minimal(http={"time_out": 3}), "http.time_out: unknown key (did you mean 'timeout'?)"),
    ],
)
def test_unknown_keys_name_the_path_and_closest_key(data: dict[str, Any], expected: str) -> None:
    assert expected in problems(data)


@pytest.mark.parametrize(
    ("data", "expected"),
    [
        (minimal(version=2), "version: must be 1"),
        ({k: v for k, v in minimal().items() if k != "version"}, "version: required key is missing"),
        ({k: v for k, v in minimal().items() if k != "source"}, "source: required key is missing"),
        (
            minimal(source={"type": "okt"}),
            "source.type: 'okt' is not one of okta, entra, google, onelogin, keycloak, scim, ldap, file "
            "(did you mean 'okta'?)",
        ),
        (minimal(source={"path": "x"}), "source.type: required key is missing"),
        (minimal(source="okta"), "source: must be a mapping"),
        (minimal(source={"type": "okta", "token": "t"}), "source.url: required key is missing"),
        (
            minimal(source={"type": "okta", "url": "acme.okta.com", "token": "t"}),
            "source.url: must be a URL starting with http:// or https://",
        ),
        (
            minimal(
                source={"type": "ldap", "url": "https://x", "bind_dn": "b", "password": "p", "base_dn": "d"}
            ),
            "source.url: must be a URL starting with ldap:// or ldaps://",
        ),
        (minimal(targets={}), "targets: must not be empty"),
        (
            minimal(targets={"bad name": {"type": "jira", "url": "https://j", "token": "t"}}),
            "targets: target name 'bad name' may only use letters, digits, '_' and '-'",
        ),
        (
            with_target(type="jiraa"),
            "targets.jira.type: 'jiraa' is not one of jira, confluence, atlassian-cloud, scim "
            "(did you mean 'jira'?)",
        ),
        (with_target(url=None), "targets.jira.url: required key is missing"),
        (with_target(token=None), "targets.jira: credentials missing: set token, or username and password"),
        (with_target(username="bot"), "targets.jira: set either token, or username and password, not both"),
        (with_target(token=None, username="bot"), "targets.jira.password: required when username is set"),
        (with_target(token=None, password="pw"), "targets.jira.username: required when password is set"),
        (
            with_target(type="atlassian-cloud", token=None, username="u", password="p"),
            "targets.jira.token: required: atlassian-cloud takes an API token, not a password",
        ),
        (with_target(groups=[{"from": "a", "to": []}]), "targets.jira.groups[0].to: must not be empty"),
        (with_target(default_groups="jira-users"), "targets.jira.default_groups: must be a list"),
        (minimal(match=[]), "match: must not be empty"),
        (minimal(match=["email", "email"]), "match: 'email' is listed more than once"),
        (minimal(match=["uid"]), "match[0]: 'uid' is not one of id, username, email (did you mean 'id'?)"),
        (
            minimal(policy={"deprovision": "purge"}),
            "policy.deprovision: 'purge' is not one of deactivate, delete, none",
        ),
        (
            minimal(policy={"sync_fields": ["email", "Email"]}),
            "policy.sync_fields[1]: 'Email' is not one of email, display_name, username "
            "(did you mean 'email'?)",
        ),
        (
            minimal(policy={"sync_fields": ["email", "email"]}),
            "policy.sync_fields: 'email' is listed more than once",
        ),
        (minimal(policy={"create_groups": "maybe"}), "policy.create_groups: must be true or false"),
        (minimal(policy={"owner_group": ""}), "policy.owner_group: must not be empty"),
        (minimal(http={"timeout": 0}), "http.timeout: must be greater than 0"),
        (minimal(http={"retries": -1}), "http.retries: must be at least 0"),
        (minimal(http={"retries": 1.5}), "http.retries: must be a whole number"),
        (minimal(http={"concurrency": 65}), "http.concurrency: must be at most 64"),
        (minimal(http={"concurrency": 0}), "http.concurrency: must be at least 1"),
        (minimal(http={"rate_limit": 0}), "http.rate_limit: must be greater than 0"),
        (minimal(http={"timeout": "soon"}), "http.timeout: must be a number"),
        (minimal(http=[]), "http: must be a mapping"),
    ],
)
def test_schema_errors_are_one_clean_line(data: dict[str, Any], expected: str) -> None:
    assert expected in problems(data)


@pytest.mark.parametrize("value", [-1, "x", "%", "101%", "-5%", "5 %%", "5.%", True, 2.5, None])
def test_limits_reject_bad_formats(value: Any) -> None:
    assert problems(minimal(policy={"max_deactivations": value})) == [
        "policy.max_deactivations: must be a number >= 0 or a percentage such as '5%'"
    ]


@pytest.mark.parametrize(
    ("value", "parsed"), [(0, 0), (10, 10), ("10", 10), ("5%", "5%"), ("2.5%", "2.5%"), ("100%", "100%")]
)
def test_limits_accept_numbers_and_percentages(value: Any, parsed: Any) -> None:
    assert parse(minimal(policy={"max_deactivations": value})).policy.max_deactivations == parsed


def test_every_problem_is_reported_at_once() -> None:
    data = minimal(
        polcy={},
        match=["username", "username"],
        mapping={"username": "{{ user.username }"},
        http={"timeout": -1},
    )
    data["targets"]["jira"]["tokn"] = "x"
    data["targets"]["wiki"] = {"type": "confluence", "url": "ftp://wiki", "username": "bot"}
    assert problems(data, env={}) == [
        "targets.jira.token: environment variable JIRA_PAT is not set",
        "mapping.username: template error: unexpected '}' (line 1)",
        "match: 'username' is listed more than once",
        "targets.jira.tokn: unknown key (did you mean 'token'?)",
        "targets.wiki.url: must be a URL starting with http:// or https://",
        "http.timeout: must be greater than 0",
        "polcy: unknown key (did you mean 'policy'?)",
    ]


def test_config_error_message_lists_every_problem() -> None:
    error = ConfigError(["a: x", "b: y"], path="/etc/scimsync.yaml")
    assert str(error) == "config /etc/scimsync.yaml: 2 problems:\n  - a: x\n  - b: y"


@pytest.mark.parametrize(
    ("mapping", "expected"),
    [
        ({"username": "{{ user.username }"}, "mapping.username: template error: unexpected '}' (line 1)"),
        (
            {"email": "{{ user.email | lowr }}"},
            "mapping.email: template error: no filter named 'lowr' (line 1)",
        ),
        ({"display_name": "{% if user.active %}x"}, "mapping.display_name: template error:"),
        (
            {"username": "{{ usr.name }}"},
            "mapping.username: template error: unknown name 'usr' (available: user)",
        ),
        (
            {"username": "{{ group.name }}"},
            "mapping.username: template error: unknown name 'group' (available: user)",
        ),
    ],
)
def test_broken_templates_name_the_key_path(mapping: dict[str, str], expected: str) -> None:
    (found,) = problems(minimal(mapping=mapping))
    assert found.startswith(expected)


@pytest.mark.parametrize(
    ("target", "expected"),
    [
        ({"mapping": {"email": "{{ user.email | }}"}}, "targets.jira.mapping.email: template error:"),
        (
            {"groups": [{"from": "a", "to": ["ok", "{{ group.name "]}]},
            "targets.jira.groups[0].to[1]: template error:",
        ),
        (
            {"groups": [{"from": "a", "to": "{{ grp.name }}"}]},
            "targets.jira.groups[0].to[0]: template error: unknown name 'grp'",
        ),
    ],
)
def test_broken_target_templates_name_the_key_path(target: dict[str, Any], expected: str) -> None:
    (found,) = problems(with_target(**target))
    assert found.startswith(expected)


def test_privileged_default_group_is_refused() -> None:
    data = with_target(default_groups=["jira-users", "JIRA-Administrators"])
    assert problems(data) == [
        "targets.jira.default_groups: 'JIRA-Administrators' is a privileged group; "
        "grant it through a rule with privileged: true"
    ]


def test_privileged_groups_are_configurable() -> None:
    data = with_target(default_groups=["jira-administrators"])
    data["policy"] = {"privileged_groups": ["root"]}
    assert parse(data).targets["jira"].default_groups == ["jira-administrators"]


# --- files and YAML ---------------------------------------------------------------


def load_problem(tmp_path: Path, text: str | bytes) -> str:
    file = tmp_path / "scimsync.yaml"
    file.write_bytes(text if isinstance(text, bytes) else text.encode())
    with pytest.raises(ConfigError) as caught:
        load_config(file, env={})
    assert caught.value.path == str(file)
    (problem,) = caught.value.problems
    return problem


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("version: 1\nsource: [\n", "YAML syntax error at line 3, column 1: expected the node content"),
        (
            "version: 1\n  bad: indent\n",
            "YAML syntax error at line 2, column 6: mapping values are not allowed here",
        ),
        ("version: 1\nversion: 1\n", "YAML syntax error at line 2, column 1: duplicate key 'version'"),
        ("", "the file is empty; it needs at least version, source and targets"),
        ("- a\n- b\n", "the top level must be a mapping of keys such as version, source, targets"),
        (b"version: \xff\n", "cannot read the file: not UTF-8 text"),
    ],
)
def test_unloadable_files_give_one_clear_line(tmp_path: Path, text: str | bytes, expected: str) -> None:
    assert load_problem(tmp_path, text).startswith(expected)


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as caught:
        load_config(tmp_path / "nope.yaml")
    assert str(caught.value) == f"config {tmp_path / 'nope.yaml'}: file not found"


def test_load_config_errors_carry_the_file_path(tmp_path: Path) -> None:
    file = tmp_path / "scimsync.yaml"
    file.write_text(SPEC_EXAMPLE.read_text())
    with pytest.raises(ConfigError) as caught:
        load_config(file, env={})
    assert caught.value.path == str(file)
    assert "targets.jira.token: environment variable JIRA_PAT is not set" in caught.value.problems


# --- secrets ----------------------------------------------------------------------


def test_secrets_are_masked_in_repr_and_dumps() -> None:
    config = load_config(SPEC_EXAMPLE, env=SPEC_ENV)
    for text in (repr(config), str(config), str(config.model_dump()), config.model_dump_json()):
        for secret in SPEC_ENV.values():
            assert secret not in text
    assert isinstance(config.targets["jira"].token, Secret)


@pytest.mark.parametrize(
    "source",
    [
        {"type": "okta", "url": "https://o", "token": ["hunter2-list"]},
        {"type": "okta", "url": "https://o", "token": {"value": "hunter2-map"}},
        {"type": "okta", "url": "hunter2-url", "token": "hunter2-ok", "tokn": "hunter2-typo"},
    ],
)
def test_secret_values_never_appear_in_errors(source: dict[str, Any]) -> None:
    with pytest.raises(ConfigError) as caught:
        parse(minimal(source=source))
    assert "hunter2" not in str(caught.value)


def test_empty_secret_is_an_error() -> None:
    assert problems(minimal(), env={"JIRA_PAT": ""}) == ["targets.jira.token: must not be empty"]


# --- digest -----------------------------------------------------------------------


def digest(data: dict[str, Any], env: dict[str, str] | None = None, base: Path = BASE) -> str:
    return config_digest(parse_config(copy.deepcopy(data), base_dir=base, env=env or {"JIRA_PAT": "a"}))


def test_digest_ignores_secret_values() -> None:
    data = minimal()
    assert digest(data, {"JIRA_PAT": "one"}) == digest(data, {"JIRA_PAT": "two"})
    assert len(digest(data)) == 64


def test_digest_follows_non_secret_values() -> None:
    base = digest(minimal())
    assert digest(minimal(policy={"max_deactivations": 3})) != base
    assert digest(with_target(url="https://other.example.com")) != base
    assert digest(minimal(), {"JIRA_PAT": "a", "X": "unused"}) == base


def test_digest_follows_substituted_non_secret_values() -> None:
    data = minimal(policy={"owner_group": "${OWNER}"})
    assert digest(data, {"JIRA_PAT": "a", "OWNER": "x"}) != digest(data, {"JIRA_PAT": "a", "OWNER": "y"})


def test_digest_does_not_depend_on_where_the_checkout_is() -> None:
    assert digest(minimal(), base=Path("/a/checkout")) == digest(minimal(), base=Path("/b/checkout"))


def test_digest_input_holds_no_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    fed: list[bytes] = []
    real = hashlib.sha256

    def spy(data: bytes = b"") -> Any:
        fed.append(data)
        return real(data)

    monkeypatch.setattr("scimsync.config.model.hashlib.sha256", spy)
    config_digest(load_config(SPEC_EXAMPLE, env=SPEC_ENV))
    (text,) = fed
    assert b"<secret>" in text
    assert not any(secret.encode() in text for secret in SPEC_ENV.values())


# --- policy helpers ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("budget", "failed", "attempted", "exceeded"),
    [
        ("20%", 9, 9, False),  # fewer than 10 writes: never judged
        ("20%", 2, 10, False),
        ("20%", 3, 10, True),
        ("20%", 20, 100, False),
        ("20%", 21, 100, True),
        (0, 0, 10, False),
        (0, 1, 10, True),
        (5, 5, 50, False),
        (5, 6, 50, True),
    ],
)
def test_write_failures_exceeded(budget: int | str, failed: int, attempted: int, exceeded: bool) -> None:
    assert PolicyConfig(max_write_failures=budget).write_failures_exceeded(failed, attempted) is exceeded


def test_config_is_frozen() -> None:
    config = parse(minimal())
    with pytest.raises(ValueError, match="frozen"):
        config.match = ["email"]
